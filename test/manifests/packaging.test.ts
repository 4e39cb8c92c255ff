/**
 * The function and the app are built alone (`func deploy`, `docker build <dir>`): their folders must be
 * self-contained, their lock files in step with their package.json, and func.yaml must keep the contract.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');
const json = <T>(file: string): T => JSON.parse(read(file)) as T;

interface PackageJson {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}
interface LockFile {
  name: string;
  packages: Record<
    string,
    { dependencies?: Record<string, string>; devDependencies?: Record<string, string>; version?: string }
  >;
}

describe.each(['functions/config-restarter', 'app'])('%s builds on its own', (dir) => {
  const pkg = json<PackageJson>(`${dir}/package.json`);

  it('has a standalone lock file in step with package.json', () => {
    const lock = json<LockFile>(`${dir}/package-lock.json`);
    expect(lock.name).toBe(pkg.name);
    expect(lock.packages['']?.dependencies ?? {}).toEqual(pkg.dependencies ?? {});
    expect(lock.packages['']?.devDependencies ?? {}).toEqual(pkg.devDependencies ?? {});
    for (const name of Object.keys(pkg.dependencies ?? {})) {
      expect(lock.packages[`node_modules/${name}`]?.version).toBeDefined();
    }
  });

  it('has a self-contained tsconfig (no extends outside its folder)', () => {
    const tsconfig = json<{ extends?: string; compilerOptions: Record<string, unknown> }>(
      `${dir}/tsconfig.json`,
    );
    expect(tsconfig.extends).toBeUndefined();
    expect(tsconfig.compilerOptions).toMatchObject({
      strict: true,
      noImplicitAny: true,
      useUnknownInCatchVariables: true,
    });
  });

  it('builds with `npm run build` and starts with node', () => {
    expect(pkg.scripts?.build).toBe('tsc -p tsconfig.json');
    expect(pkg.scripts?.start).toBe('node dist/index.js');
  });

  it('has a multi-stage, non-root Dockerfile that runs node directly', () => {
    const dockerfile = read(`${dir}/Dockerfile`);
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    // An LTS Node base image, directly or as the default of the NODE_IMAGE build argument.
    expect(dockerfile).toMatch(/^(FROM|ARG NODE_IMAGE=)node:(22|24)\b/m);
    expect(dockerfile).toMatch(/npm ci[^\n]*--omit=dev/);
    expect(dockerfile).toMatch(/^USER (node|\d+)/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/index\.js"\]/m);
  });
});

describe('func.yaml', () => {
  const func = yaml.load(read('functions/config-restarter/func.yaml')) as Record<string, unknown> & {
    build: { builder: string; buildEnvs: { name: string; value: string }[] };
    deploy: {
      namespace: string;
      serviceAccountName: string;
      healthEndpoints: Record<string, string>;
      labels: { key: string; value: string }[];
      options: { scale: { min: number; max: number } };
    };
  };

  it('keeps the contract names', () => {
    expect(func).toMatchObject({
      specVersion: '0.36.0',
      name: 'config-restarter',
      runtime: 'typescript',
      invoke: 'cloudevent',
    });
    expect(func.deploy).toMatchObject({
      namespace: 'helloworld',
      serviceAccountName: 'config-restarter',
      healthEndpoints: { liveness: '/health/liveness', readiness: '/health/readiness' },
    });
  });

  it('builds the TypeScript with the buildpack and stays cluster-local with one instance', () => {
    expect(func.build.buildEnvs).toContainEqual({ name: 'BP_NODE_RUN_SCRIPTS', value: 'build' });
    expect(func.deploy.labels).toContainEqual({
      key: 'networking.knative.dev/visibility',
      value: 'cluster-local',
    });
    expect(func.deploy.options.scale).toEqual({ min: 0, max: 3 });
  });

  it('holds no comments: func rewrites the file and drops them (the documentation lives in docs/function.md)', () => {
    const text = read('functions/config-restarter/func.yaml');
    expect(text.split('\n').filter((line) => /(^|\s)#/.test(line))).toEqual([]);
  });

  it('comes with the .gitignore func writes (its build state in .func stays out of git)', () => {
    expect(read('functions/config-restarter/.gitignore').split('\n')).toContain('/.func');
  });

  it('uses only top-level keys func 0.36 knows', () => {
    const known = [
      'specVersion',
      'name',
      'runtime',
      'registry',
      'image',
      'namespace',
      'created',
      'invoke',
      'build',
      'run',
      'deploy',
      'domain',
    ];
    expect(Object.keys(func).filter((key) => !known.includes(key))).toEqual([]);
  });
});
