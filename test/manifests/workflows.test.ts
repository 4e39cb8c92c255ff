/**
 * The GitHub Actions workflows in .github/workflows: checked by the real actionlint (built from
 * github.com/rhysd/actionlint, pinned) and held to the delivery contract (what CI runs, how images are built and
 * pushed, how each environment is deployed).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { COMPONENTS } from '../../cluster/binaries.js';
import { repoRoot } from './kustomize.js';

const WORKFLOW_DIR = '.github/workflows';
const files = readdirSync(path.join(repoRoot, WORKFLOW_DIR))
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  'working-directory'?: string;
}
interface Job {
  uses?: string;
  needs?: string | string[];
  environment?: string;
  with?: Record<string, unknown>;
  steps?: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}

const read = (file: string): string => readFileSync(path.join(repoRoot, WORKFLOW_DIR, file), 'utf8');
const workflow = (file: string): Workflow => yaml.load(read(file)) as Workflow;
const steps = (w: Workflow, job: string): Step[] => w.jobs[job]?.steps ?? [];
const runs = (w: Workflow, job: string): string =>
  steps(w, job)
    .map((s) => s.run ?? '')
    .join('\n');

interface Lint {
  code: number;
  output: string;
}

/**
 * actionlint with its shellcheck and pyflakes integrations off, so the result does not depend on what else
 * happens to be installed; `stdin` lints that text instead of files.
 */
function actionlint(args: string[], stdin?: string): Promise<Lint> {
  const binary = process.env.TEST_ASSET_ACTIONLINT;
  if (!binary)
    throw new Error('TEST_ASSET_ACTIONLINT is not set: run through `npm run test:unit` (global setup)');
  return new Promise((resolve, reject) => {
    const child = execFile(
      binary,
      ['-shellcheck=', '-pyflakes=', '-no-color', '-oneline', ...args],
      { cwd: repoRoot },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(new Error(`could not run ${binary}: ${err.message}`));
        else resolve({ code: typeof err?.code === 'number' ? err.code : 0, output: stdout + stderr });
      },
    );
    child.stdin?.end(stdin ?? '');
  });
}

describe('actionlint', () => {
  it('finds the workflows', () => {
    expect(files).toEqual(['ci.yml', 'deploy-prod.yml', 'deploy-test.yml', 'deploy.yml', 'images.yml']);
  });

  it('reports nothing for every workflow (reusable workflow calls, expressions, needs, permissions)', async () => {
    const result = await actionlint(files.map((f) => path.join(WORKFLOW_DIR, f)));
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it('does report a broken workflow (the check is real)', async () => {
    const broken = [
      'on: push',
      'jobs:',
      '  build:',
      '    runs-on: ubuntu-24.04',
      '    needs: missing',
      '    steps:',
      '      - run: echo "${{ github.event.nope.deeper }}"',
      '      - uses: actions/checkout@v4',
      '        with:',
      '          fetch-depth: ${{ inputs.depth }}',
    ].join('\n');
    const result = await actionlint(['-stdin-filename', 'broken.yml', '-'], broken);
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/job "build" needs job "missing" which does not exist/);
    expect(result.output).toMatch(/property "depth" is not defined/);
  });
});

describe('ci.yml', () => {
  const ci = workflow('ci.yml');

  it('runs on pull requests, on branches other than main, and when called by the deploy workflows', () => {
    expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push', 'workflow_call', 'workflow_dispatch']);
    expect(ci.on.push).toEqual({ 'branches-ignore': ['main'] });
  });

  it('runs the npm scripts of .ci/run as parallel jobs', () => {
    expect(runs(ci, 'lint')).toMatch(/npm run lint/);
    expect(runs(ci, 'unit')).toMatch(/npm run test:unit/);
    expect(runs(ci, 'integration')).toMatch(/npm run test:integration/);
    for (const job of ['lint', 'unit', 'integration']) expect(runs(ci, job)).toMatch(/npm ci/);
  });

  it.each(['unit', 'integration'])(
    '%s caches the built binaries under its own key, hashed on the wrappers',
    (job) => {
      const cache = steps(ci, job).find((s) => s.uses?.startsWith('actions/cache@'));
      expect(cache?.with?.path).toBe('~/.cache/config-restarter/bin');
      expect(String(cache?.with?.key)).toMatch(/^binaries-\$\{\{ runner\.os \}\}-\$\{\{ github\.job \}\}-/);
      expect(String(cache?.with?.key)).toContain("hashFiles('cluster/go/*/go.sum'");
      expect(String(cache?.with?.key)).toContain('cluster/binaries.ts');
    },
  );

  it('integration keeps the Go build cache, keyed on the wrapper modules', () => {
    const go = steps(ci, 'integration').find((s) => s.uses?.startsWith('actions/setup-go@'));
    expect(go?.with?.['cache-dependency-path']).toBe('cluster/go/*/go.sum');
    expect(go?.with?.cache).toBeUndefined();
  });
});

describe('images.yml', () => {
  const images = workflow('images.yml');
  const builds = steps(images, 'build').filter((s) => s.uses?.startsWith('docker/build-push-action@'));

  it('builds the function and the app', () => {
    expect(builds.map((s) => s.with?.context)).toEqual(['functions/config-restarter', 'app']);
  });

  it.each(['functions/config-restarter', 'app'])(
    '%s: multi-arch, SBOM, provenance, pushed by digest to vars.REGISTRY',
    (context) => {
      const build = builds.find((s) => s.with?.context === context);
      expect(build?.with).toMatchObject({
        platforms: 'linux/amd64,linux/arm64',
        sbom: true,
        provenance: 'mode=max',
      });
      expect(build?.with?.outputs).toMatch(
        /^type=image,name=\$\{\{ env\.REGISTRY \}\}\/[a-z-]+,push-by-digest=true,name-canonical=true,push=true$/,
      );
      expect(build?.with).not.toHaveProperty('tags');
    },
  );

  it('takes the registry from a repository variable and exposes both digests', () => {
    expect(read('images.yml')).toContain('REGISTRY: ${{ vars.REGISTRY }}');
    expect(Object.keys((images.on.workflow_call as { outputs: object }).outputs).sort()).toEqual([
      'app-digest',
      'function-digest',
    ]);
  });
});

describe('deploy workflows', () => {
  it.each([
    ['deploy-test.yml', 'test', { branches: ['main'] }],
    ['deploy-prod.yml', 'prod', { tags: ['v*.*.*'] }],
  ])('%s: tests, builds, then deploys %s', (file, environment, push) => {
    const w = workflow(file);
    expect(w.on).toEqual({ push });
    expect(w.jobs.ci?.uses).toBe('./.github/workflows/ci.yml');
    expect(w.jobs.images).toMatchObject({ uses: './.github/workflows/images.yml', needs: 'ci' });
    expect(w.jobs.deploy).toMatchObject({
      uses: './.github/workflows/deploy.yml',
      needs: 'images',
      with: {
        environment,
        'function-digest': '${{ needs.images.outputs.function-digest }}',
        'app-digest': '${{ needs.images.outputs.app-digest }}',
      },
    });
  });

  const deploy = workflow('deploy.yml');

  it('runs in the GitHub environment of its input (approvals and secrets per environment)', () => {
    expect(deploy.jobs.deploy?.environment).toBe('${{ inputs.environment }}');
  });

  it('pins the app digest in the overlay with kustomize edit set image, then applies the overlay', () => {
    const pin = steps(deploy, 'deploy').find((s) => s.run?.includes('kustomize edit set image'));
    expect(pin?.['working-directory']).toBe('kustomize/overlays/${{ inputs.environment }}');
    expect(pin?.run).toContain('kustomize edit set image "helloworld=${REGISTRY}/helloworld@${APP_DIGEST}"');
    expect(runs(deploy, 'deploy')).toContain('kubectl apply -k "kustomize/overlays/$ENVIRONMENT"');
  });

  it('installs the environment restarter with the chart, its values file and the function digest', () => {
    const script = runs(deploy, 'deploy');
    expect(script).toContain(
      'helm upgrade --install "config-restarter-$ENVIRONMENT" charts/config-restarter',
    );
    expect(script).toContain('--values "deploy/$ENVIRONMENT.values.yaml"');
    expect(script).toContain('function.image.digest=${FUNCTION_DIGEST}');
  });

  it('uses the helm version the tests use', () => {
    expect(read('deploy.yml')).toContain(`HELM_VERSION: ${COMPONENTS.helm.version}`);
  });
});

describe('.ci/run', () => {
  it('stays the local entry point: exactly npm ci, then npm test', () => {
    const script = readFileSync(path.join(repoRoot, '.ci/run'), 'utf8');
    const commands = script.split('\n').filter((line) => /^npm /.test(line));
    expect(commands).toEqual(['npm ci --no-audit --no-fund', 'npm test']);
  });
});
