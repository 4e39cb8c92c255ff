import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CONTAINERD_IMAGE_NAME,
  DEFAULT_PATH,
  dockerfileRuntimeConfig,
  type ImageConfig,
  imageRef,
  OCI_REF_NAME,
  ociRuntimeConfig,
  parseCtrImageList,
  repositoryOf,
  umociConfigArgs,
  withContainerdName,
} from '../../../cluster/image-config.js';
import { REPO_ROOT } from '../../../cluster/util.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('dockerfileRuntimeConfig', () => {
  it.each(['app', 'functions/config-restarter'])(
    '%s/Dockerfile: the final stage as the node images start',
    (dir) => {
      const dockerfile = readFileSync(path.join(REPO_ROOT, dir, 'Dockerfile'), 'utf8');
      expect(dockerfileRuntimeConfig(dockerfile, { PATH: DEFAULT_PATH })).toEqual({
        user: '1000:1000',
        env: {
          PATH: DEFAULT_PATH,
          NODE_ENV: 'production',
          NODE_OPTIONS: '--enable-source-maps',
          PORT: '8080',
        },
        workingDir: '/app',
        exposedPorts: [8080],
        cmd: ['node', 'dist/index.js'],
      });
    },
  );

  it('reads only the last stage, joins continuation lines and skips comments', () => {
    const dockerfile = [
      'FROM node AS build',
      'ENV BUILD_ONLY=1',
      'USER 0',
      'WORKDIR /src',
      'FROM scratch',
      '# ENV COMMENTED=1',
      'ENV A=1 \\',
      '    B="two"',
      'user 10:20',
      'EXPOSE 80/tcp 443',
      'ENTRYPOINT ["/bin/app"]',
      'CMD ["--flag"]',
    ].join('\n');
    expect(dockerfileRuntimeConfig(dockerfile)).toEqual({
      user: '10:20',
      env: { A: '1', B: 'two' },
      exposedPorts: [80, 443],
      entrypoint: ['/bin/app'],
      cmd: ['--flag'],
    });
  });

  it.each([
    ['a named user', 'FROM x\nUSER node\nCMD ["a"]', /numeric USER/],
    ['no user', 'FROM x\nCMD ["a"]', /numeric USER.*none/],
    ['a shell-form CMD', 'FROM x\nUSER 1\nCMD node index.js', /exec \(JSON array\) form/],
    ['a legacy ENV', 'FROM x\nUSER 1\nENV A 1', /KEY=value/],
    ['a UDP port', 'FROM x\nUSER 1\nEXPOSE 53/udp', /only TCP/],
    ['no FROM', 'USER 1', /no FROM/],
  ])('rejects %s', (_what, dockerfile, message) => {
    expect(() => dockerfileRuntimeConfig(dockerfile)).toThrow(message);
  });
});

describe('image config', () => {
  const config: ImageConfig = {
    user: '1000:1000',
    env: { PATH: '/usr/bin', PORT: '8080' },
    entrypoint: ['/ko-app/queue'],
    cmd: ['node', 'dist/index.js'],
    workingDir: '/app',
    exposedPorts: [8080],
  };

  it('umoci config arguments: fixed creation time, no history, every field in order', () => {
    expect(umociConfigArgs(config)).toEqual([
      '--no-history',
      '--created=1970-01-01T00:00:00Z',
      '--config.user=1000:1000',
      '--config.env=PATH=/usr/bin',
      '--config.env=PORT=8080',
      '--config.entrypoint=/ko-app/queue',
      '--config.cmd=node',
      '--config.cmd=dist/index.js',
      '--config.workingdir=/app',
      '--config.exposedports=8080/tcp',
    ]);
  });

  it('only what is set: the pause image has no env, cmd, working directory or ports', () => {
    const pause: ImageConfig = { user: '65535:65535', env: {}, entrypoint: ['/pause'] };
    expect(umociConfigArgs(pause)).toEqual([
      '--no-history',
      '--created=1970-01-01T00:00:00Z',
      '--config.user=65535:65535',
      '--config.entrypoint=/pause',
    ]);
    expect(ociRuntimeConfig(pause)).toEqual({ User: '65535:65535', Entrypoint: ['/pause'] });
  });

  it('the OCI config object those arguments give', () => {
    expect(ociRuntimeConfig(config)).toEqual({
      User: '1000:1000',
      Env: ['PATH=/usr/bin', 'PORT=8080'],
      Entrypoint: ['/ko-app/queue'],
      Cmd: ['node', 'dist/index.js'],
      WorkingDir: '/app',
      ExposedPorts: { '8080/tcp': {} },
    });
  });
});

describe('references', () => {
  it('names images under localhost/config-restarter', () => {
    expect(imageRef('pause', '0123456789ab')).toBe('localhost/config-restarter/pause:0123456789ab');
  });

  it.each([
    ['localhost/config-restarter/pause:0123', 'localhost/config-restarter/pause'],
    ['localhost:5000/a/b:tag', 'localhost:5000/a/b'],
    ['localhost:5000/a/b', 'localhost:5000/a/b'],
  ])('repository of %s', (ref, repository) => {
    expect(repositoryOf(ref)).toBe(repository);
  });
});

describe('withContainerdName', () => {
  const manifest = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 348 };

  it('gives the one manifest its full name for ctr import and keeps the tag for OCI tools', () => {
    const index = { schemaVersion: 2, manifests: [{ ...manifest, annotations: { [OCI_REF_NAME]: 'x' } }] };
    expect(withContainerdName(index, 'localhost/config-restarter/pause:0123456789ab')).toEqual({
      schemaVersion: 2,
      manifests: [
        {
          ...manifest,
          annotations: {
            [OCI_REF_NAME]: '0123456789ab',
            [CONTAINERD_IMAGE_NAME]: 'localhost/config-restarter/pause:0123456789ab',
          },
        },
      ],
    });
  });

  it('refuses an index that is not one image', () => {
    expect(() => withContainerdName({ schemaVersion: 2, manifests: [manifest, manifest] }, 'a/b:c')).toThrow(
      /one manifest/,
    );
  });
});

describe('parseCtrImageList', () => {
  it('maps references to manifest digests (sizes hold a space)', () => {
    const output = [
      'REF                                  TYPE                                       DIGEST    SIZE      PLATFORMS   LABELS ',
      `localhost/config-restarter/pause:01 application/vnd.oci.image.manifest.v1+json ${DIGEST} 314.4 KiB linux/amd64 -      `,
      `localhost/config-restarter/pause@${DIGEST} application/vnd.oci.image.manifest.v1+json ${DIGEST} 314.4 KiB linux/amd64 -`,
      '',
    ].join('\n');
    expect([...parseCtrImageList(output)]).toEqual([
      ['localhost/config-restarter/pause:01', DIGEST],
      [`localhost/config-restarter/pause@${DIGEST}`, DIGEST],
    ]);
  });

  it('is empty for an empty store', () => {
    expect(parseCtrImageList('REF TYPE DIGEST SIZE PLATFORMS LABELS\n').size).toBe(0);
  });
});
