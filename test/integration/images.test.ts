/**
 * The image builder end to end: all four images built (or taken from the cache), imported into a private containerd
 * (own root, state and socket, in a network namespace of its own, CRI off: no pods needed), listed by `ctr`, and
 * run: helloworld's `node dist/index.js` answers on its port as uid 1000, the pause binary reaps orphans and exits 0
 * on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCommand } from '../../cluster/command.js';
import {
  DEFAULT_PATH,
  dockerfileRuntimeConfig,
  ociRuntimeConfig,
  parseCtrImageList,
  repositoryOf,
  type OciIndex,
} from '../../cluster/image-config.js';
import { buildImages, importImages, type BuiltImage, type ImageName } from '../../cluster/images.js';
import { REPO_ROOT, sleep, spawnLogged, tailFile, terminateProcess } from '../../cluster/util.js';

jest.setTimeout(600_000);

const NAMES: ImageName[] = ['pause', 'queue-proxy', 'helloworld', 'config-restarter'];
const lines: string[] = [];
const log = (line: string): void => {
  lines.push(line);
  process.stderr.write(`[images] ${line}\n`);
};

let images: Record<ImageName, BuiltImage>;
let dir: string;
let containerdPid: number;
let address: string;

/** `ctr` against the private containerd, in the namespace the CRI plugin uses. */
const ctr = (...args: string[]): Promise<string> =>
  runCommand('ctr', ['-a', address, '-n', 'k8s.io', ...args]);

/** Runs `argv` in the network namespace of the private containerd (where `--net-host` containers live). */
const inNetns = (argv: string[]): Promise<string> =>
  runCommand('nsenter', [`--net=/proc/${containerdPid}/ns/net`, '--', ...argv]);

/** An OCI blob of a layout, parsed. */
function blob<T>(ociDir: string, digest: string): T {
  return JSON.parse(readFileSync(path.join(ociDir, 'blobs', ...digest.split(':')), 'utf8')) as T;
}

/** The `config` object of the image's OCI config. */
function runtimeConfigOf(image: BuiltImage): Record<string, unknown> {
  const manifest = blob<{ config: { digest: string } }>(image.ociDir, image.digest);
  return blob<{ config: Record<string, unknown> }>(image.ociDir, manifest.config.digest).config;
}

beforeAll(async () => {
  const start = Date.now();
  images = await buildImages(NAMES, { log });
  log(`buildImages: ${((Date.now() - start) / 1000).toFixed(1)} s`);

  dir = mkdtempSync(path.join(os.tmpdir(), 'images-containerd-'));
  address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      // Images and tasks only: no CRI (no kubelet here), no tracing.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '',
    ].join('\n'),
  );
  // A network namespace of its own with only loopback up: the containers' ports never meet anyone else's.
  containerdPid = spawnLogged(
    'unshare',
    ['--net', '--', 'sh', '-c', `ip link set lo up && exec containerd --config ${config}`],
    path.join(dir, 'containerd.log'),
    dir,
    false,
  );
  for (let i = 0; ; i++) {
    if (
      await ctr('version').then(
        () => true,
        () => false,
      )
    )
      break;
    if (i > 100) throw new Error(`containerd did not start:\n${tailFile(path.join(dir, 'containerd.log'))}`);
    await sleep(100);
  }
});

afterAll(async () => {
  if (containerdPid) await terminateProcess(containerdPid, 'containerd');
  // Snapshots are overlay directories, no mounts remain once every task is deleted.
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('image builder', () => {
  it('tags every image with its input hash under localhost/config-restarter and records its digest', () => {
    for (const name of NAMES) {
      expect(images[name].ref).toMatch(new RegExp(`^localhost/config-restarter/${name}:[0-9a-f]{12}$`));
      const index = JSON.parse(
        readFileSync(path.join(images[name].ociDir, 'index.json'), 'utf8'),
      ) as OciIndex;
      expect(index.manifests.map((m) => [m.digest, m.annotations?.['io.containerd.image.name']])).toEqual([
        [images[name].digest, images[name].ref],
      ]);
    }
  });

  it('sets the runtime config: the Dockerfiles for the node images, non-root users everywhere', () => {
    for (const [name, dockerfile] of [
      ['helloworld', 'app/Dockerfile'],
      ['config-restarter', 'functions/config-restarter/Dockerfile'],
    ] as const) {
      const expected = dockerfileRuntimeConfig(readFileSync(path.join(REPO_ROOT, dockerfile), 'utf8'), {
        PATH: DEFAULT_PATH,
      });
      expect(runtimeConfigOf(images[name])).toEqual(ociRuntimeConfig(expected));
    }
    expect(runtimeConfigOf(images.pause)).toEqual({ User: '65535:65535', Entrypoint: ['/pause'] });
    expect(runtimeConfigOf(images['queue-proxy'])).toMatchObject({
      User: '65532:65532',
      Entrypoint: ['/ko-app/queue'],
    });
  });

  it('takes a second build from the cache', async () => {
    const start = Date.now();
    expect(await buildImages(NAMES, { log })).toEqual(images);
    expect(Date.now() - start).toBeLessThan(20_000);
  });

  it('imports them into containerd under the tag and the digest, and skips them the second time', async () => {
    const start = Date.now();
    await importImages(images, { containerdAddress: address, log });
    log(`importImages: ${((Date.now() - start) / 1000).toFixed(1)} s`);
    const listing = await ctr('images', 'ls');
    process.stderr.write(`${listing}\n`);
    const listed = parseCtrImageList(listing);
    for (const image of Object.values(images)) {
      expect(listed.get(image.ref)).toBe(image.digest);
      expect(listed.get(`${repositoryOf(image.ref)}@${image.digest}`)).toBe(image.digest);
    }
    expect(listed.size).toBe(2 * NAMES.length);

    const before = lines.length;
    await importImages(images, { containerdAddress: address, log });
    expect(lines.slice(before)).toEqual(
      Object.values(images).map((i) => `image ${i.ref} already in containerd`),
    );
    expect(parseCtrImageList(await ctr('images', 'ls'))).toEqual(listed);
  });

  it('runs helloworld: `node dist/index.js` answers on port 8080 as uid 1000, and exits 0 on SIGTERM', async () => {
    const id = `helloworld-${process.pid}`;
    const message = 'hello from the local image';
    const container = spawn(
      'ctr',
      [
        '-a',
        address,
        '-n',
        'k8s.io',
        'run',
        '--rm',
        '--net-host',
        '--env',
        `ENV_MESSAGE=${message}`,
        images.helloworld.ref,
        id,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    container.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    container.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => container.once('close', resolve));

    const fetchScript = (route: string): string[] => [
      process.execPath,
      '-e',
      `fetch('http://127.0.0.1:8080${route}').then(async (r) => console.log(r.status, await r.text()), () => console.log('down'))`,
    ];
    let answer = 'down';
    for (let i = 0; i < 100 && answer.startsWith('down'); i++) {
      await sleep(200);
      answer = (await inNetns(fetchScript('/message'))).trim();
    }
    expect(answer).toBe(`200 ${message}`);
    expect((await inNetns(fetchScript('/health/readiness'))).trim()).toBe('200 {"status":"ready"}');

    const task = (await ctr('task', 'ls')).split('\n').find((l) => l.startsWith(`${id} `));
    const pid = task?.trim().split(/\s+/)[1];
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(['node', 'dist/index.js', '']);

    await ctr('task', 'kill', '--signal', 'SIGTERM', id);
    expect(await exited).toBe(0);
    expect(output).toMatch(/shutting down/);
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
  });

  it('pause: reaps the orphans of its PID namespace and exits 0 on SIGTERM', async () => {
    const unpacked = path.join(dir, 'pause-bundle');
    await runCommand('umoci', [
      'unpack',
      '--image',
      `${images.pause.ociDir}:${images.pause.ref.split(':')[1]}`,
      unpacked,
    ]);
    const pause = path.join(unpacked, 'rootfs', 'pause');
    // pause becomes PID 1 of a new PID namespace, like in a pod whose containers share one.
    const ns = spawn('unshare', ['--pid', '--fork', '--', pause], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => ns.once('close', resolve));
    let pausePid: string | undefined;
    try {
      for (let i = 0; i < 50 && !pausePid; i++) {
        await sleep(100);
        pausePid = readFileSync(`/proc/${ns.pid}/task/${ns.pid}/children`, 'utf8').trim() || undefined;
      }
      expect(pausePid).toBeDefined();
      /** The state letter of each child of pause (PPid as seen from here). */
      const childrenOfPause = (): string[] =>
        readdirSync('/proc')
          .filter((entry) => /^\d+$/.test(entry))
          .flatMap((entry) => {
            try {
              const status = readFileSync(`/proc/${entry}/status`, 'utf8');
              return new RegExp(`^PPid:\\s+${pausePid}$`, 'm').test(status)
                ? [/^State:\s+(\S)/m.exec(status)?.[1] ?? '?']
                : [];
            } catch {
              return [];
            }
          });
      // The shell exits at once; its background sleep is orphaned and handed to the namespace's init: pause.
      await runCommand('nsenter', [
        `--target=${pausePid}`,
        '--pid',
        '--',
        'sh',
        '-c',
        'sleep 1 >/dev/null 2>&1 & exit 0',
      ]);
      await sleep(300);
      expect(childrenOfPause()).toEqual(['S']);
      await sleep(1500);
      // Reaped, not left a zombie ('Z').
      expect(childrenOfPause()).toEqual([]);

      process.kill(Number(pausePid), 'SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      // Killing a PID namespace's init ends the whole namespace.
      if (ns.exitCode === null && pausePid) process.kill(Number(pausePid), 'SIGKILL');
    }
  });
});
