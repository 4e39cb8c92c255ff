import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import type { BuiltImage } from '../../cluster/images.js';
import { functionAudience, localManifests } from '../../cluster/local-manifests.js';
import { template } from './chart.js';
import { find, knativeServices, render, type K8sObject, type KnativeService } from './kustomize.js';

const HELLO_DIGEST = `sha256:${'1'.repeat(64)}`;
const FUNCTION_DIGEST = `sha256:${'2'.repeat(64)}`;
const images = {
  helloworld: {
    ref: 'localhost/config-restarter/helloworld:0123456789ab',
    digest: HELLO_DIGEST,
    ociDir: '/nowhere',
  },
  'config-restarter': {
    ref: 'localhost/config-restarter/config-restarter:0123456789ab',
    digest: FUNCTION_DIGEST,
    ociDir: '/nowhere',
  },
} satisfies Record<string, BuiltImage>;
const DISPLAY_DIGEST = `sha256:${'3'.repeat(64)}`;
const eventDisplay = {
  ref: 'localhost/config-restarter/event-display:0123456789ab',
  digest: DISPLAY_DIGEST,
  ociDir: '/nowhere',
} satisfies BuiltImage;

const imagesOf = (ksvc: KnativeService): string[] => ksvc.spec.template.spec.containers.map((c) => c.image);

/** The objects with every container image blanked, to compare everything else. */
function withoutImages(objects: readonly K8sObject[]): unknown[] {
  return objects.map(
    (o) => JSON.parse(JSON.stringify(o).replace(/"image":"[^"]*"/g, '"image":""')) as unknown,
  );
}

describe('localManifests', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'local-manifests-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['test', 'prod'] as const)(
    'helloworld: kustomize/overlays/%s unchanged but for the image, by digest under its local name',
    async (environment) => {
      const written = localManifests(images, { dir: path.join(dir, environment), environment });
      const local = (await render(written.helloworld)).objects;
      const published = (await render(`kustomize/overlays/${environment}`)).objects;
      expect(knativeServices(local).map(imagesOf)).toEqual([
        [`localhost/config-restarter/helloworld@${HELLO_DIGEST}`],
      ]);
      expect(withoutImages(local)).toEqual(withoutImages(published));
    },
  );

  it('the function: the plumbing of knative/ plus the Knative Service func deploy creates, running the image', async () => {
    const written = localManifests(images, { dir: path.join(dir, 'function') });
    const local = (await render(written.function)).objects;
    const plumbing = (await render('knative')).objects;
    const service = find<KnativeService & { spec: { template: { spec: { serviceAccountName: string } } } }>(
      local,
      'Service',
      'config-restarter',
    );
    expect(service.metadata.namespace).toBe('helloworld');
    expect(service.spec.template.spec.serviceAccountName).toBe('config-restarter');
    expect(imagesOf(service)).toEqual([`localhost/config-restarter/config-restarter@${FUNCTION_DIGEST}`]);
    expect(local.filter((o) => o !== service)).toEqual(plumbing);
  });

  it('the Broker variant: knative/broker as published, its dead-letter Service running the local event_display', async () => {
    const written = localManifests(
      { ...images, 'event-display': eventDisplay },
      { dir: path.join(dir, 'broker'), components: ['broker'] },
    );
    const local = (await render(written.function)).objects;
    const plumbing = (await render('knative/broker')).objects;
    const service = find<KnativeService>(local, 'Service', 'config-restarter');
    const deadLetter = find<KnativeService>(local, 'Service', 'config-restarter-dead-letter');
    expect(imagesOf(deadLetter)).toEqual([`localhost/config-restarter/event-display@${DISPLAY_DIGEST}`]);
    expect(withoutImages(local.filter((o) => o !== service))).toEqual(withoutImages(plumbing));
    expect(() =>
      localManifests(images, { dir: path.join(dir, 'no-display'), components: ['broker'] }),
    ).toThrow(/event-display/);
  });

  it('the authentication variant: knative/authentication, and the function started with AUTH_AUDIENCE', async () => {
    const written = localManifests(images, {
      dir: path.join(dir, 'auth'),
      components: ['authentication'],
    });
    const local = (await render(written.function)).objects;
    const plumbing = (await render('knative/authentication')).objects;
    const service = find<
      KnativeService & {
        spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } };
      }
    >(local, 'Service', 'config-restarter');
    expect(service.spec.template.spec.containers[0]?.env).toContainEqual({
      name: 'AUTH_AUDIENCE',
      value: functionAudience(),
    });
    expect(local.filter((o) => o !== service)).toEqual(plumbing);
    // The audience every sender of the variant asks tokens for: both ApiServerSources and the PingSource.
    const sinks = plumbing
      .filter((o) => o.apiVersion === 'sources.knative.dev/v1')
      .map((o) => (o as unknown as { spec: { sink: { audience?: string } } }).spec.sink.audience);
    expect(sinks).toEqual([functionAudience(), functionAudience(), functionAudience()]);
  });

  it('several components: knative/base with each of them, as docs/manifests.md combines them', async () => {
    const written = localManifests(
      { ...images, 'event-display': eventDisplay },
      { dir: path.join(dir, 'combined'), components: ['broker', 'authentication'] },
    );
    const local = (await render(written.function)).objects;
    const service = find<KnativeService>(local, 'Service', 'config-restarter');
    const names = (kind: string): string[] =>
      local
        .filter((o) => o.kind === kind)
        .map((o) => o.metadata.name)
        .sort();
    expect(names('Broker')).toEqual(['config-events']);
    expect(names('Trigger')).toEqual(['config-restarter']);
    expect(names('ClusterRoleBinding')).toEqual(['config-restarter-tokenreview']);
    expect(JSON.stringify(service)).toContain('AUTH_AUDIENCE');
    const broker = (await render('knative/broker')).objects;
    const auth = (await render('knative/authentication')).objects;
    const key = (o: K8sObject): string => `${o.kind}/${o.metadata.name}`;
    expect(new Set(local.filter((o) => o !== service).map(key))).toEqual(
      new Set([...broker, ...auth].map(key)),
    );
  });

  it('moves everything to another namespace when asked', async () => {
    const written = localManifests(images, { dir: path.join(dir, 'moved'), namespace: 'elsewhere' });
    for (const kustomization of [written.helloworld, written.function]) {
      const namespaced = (await render(kustomization)).objects.filter((o) => o.kind !== 'Namespace');
      expect(new Set(namespaced.map((o) => o.metadata.namespace))).toEqual(new Set(['elsewhere']));
    }
  });

  it('writes the same files for the same images (re-applying makes no new Revision)', () => {
    const read = (root: string): string[] =>
      ['helloworld/kustomization.yaml', 'function/kustomization.yaml', 'function/function-service.yaml'].map(
        (file) => readFileSync(path.join(root, 'manifests', file), 'utf8'),
      );
    localManifests(images, { dir: path.join(dir, 'again') });
    const first = read(path.join(dir, 'again'));
    localManifests(images, { dir: path.join(dir, 'again') });
    expect(read(path.join(dir, 'again'))).toEqual(first);
  });

  it('chart values: the chart renders the function with the local image', async () => {
    const written = localManifests(images, { dir: path.join(dir, 'chart') });
    expect(yaml.load(readFileSync(written.chartValues, 'utf8'))).toEqual({
      function: {
        image: { repository: 'localhost/config-restarter/config-restarter', digest: FUNCTION_DIGEST },
      },
    });
    const objects = await template({ values: [written.chartValues] });
    expect(knativeServices(objects).map(imagesOf)).toEqual([
      [`localhost/config-restarter/config-restarter@${FUNCTION_DIGEST}`],
    ]);
  });
});
