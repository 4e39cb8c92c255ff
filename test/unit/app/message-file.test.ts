import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { MessageFile, parseDotenv, type MessageFileSystem } from '../../../app/src/message-file.js';

/**
 * Lays out a directory like the kubelet does for a ConfigMap volume:
 * `<dir>/..<timestamp>/MESSAGE`, `<dir>/..data -> ..<timestamp>`, `<dir>/MESSAGE -> ..data/MESSAGE`.
 * An update writes a new timestamped directory and atomically renames a fresh symlink over `..data`.
 */
class ConfigMapVolume {
  #generation = 0;

  constructor(readonly dir: string) {}

  async write(files: Record<string, string>): Promise<void> {
    const generation = `..2024_01_01_00_00_00.${++this.#generation}`;
    await mkdir(path.join(this.dir, generation));
    for (const [name, content] of Object.entries(files)) {
      await writeFile(path.join(this.dir, generation, name), content);
    }
    const tmpLink = path.join(this.dir, '..data_tmp');
    await symlink(generation, tmpLink);
    await rename(tmpLink, path.join(this.dir, '..data'));
    for (const name of Object.keys(files)) {
      await symlink(path.join('..data', name), path.join(this.dir, name)).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err;
        },
      );
    }
    if (this.#generation > 1) {
      await rm(path.join(this.dir, `..2024_01_01_00_00_00.${this.#generation - 1}`), { recursive: true });
    }
  }
}

describe('MessageFile', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'helloworld-message-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('follows a kubelet-style ..data symlink swap', async () => {
    const volume = new ConfigMapVolume(dir);
    await volume.write({ MESSAGE: 'first\n' });
    const file = new MessageFile(path.join(dir, 'MESSAGE'));
    expect(file.format).toBe('raw');
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'first' });

    // Same size as before: only the inode tells the versions apart.
    await volume.write({ MESSAGE: 'again\n' });
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'again' });

    await volume.write({ MESSAGE: 'third value, longer' });
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'third value, longer' });
  });

  it('re-reads a file rewritten in place', async () => {
    const filePath = path.join(dir, 'MESSAGE');
    await writeFile(filePath, 'one');
    const file = new MessageFile(filePath);
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'one' });
    await writeFile(filePath, 'two, longer');
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'two, longer' });
  });

  it('reads the file only when its identity changed', async () => {
    const filePath = path.join(dir, 'MESSAGE');
    await writeFile(filePath, 'cached');
    const { open } = await import('node:fs/promises');
    let reads = 0;
    const fs: MessageFileSystem = {
      open: async (p) => {
        const handle = await open(p, 'r');
        return {
          stat: handle.stat.bind(handle),
          close: handle.close.bind(handle),
          readFile: ((options: never) => {
            reads += 1;
            return handle.readFile(options);
          }) as typeof handle.readFile,
        };
      },
    };
    const file = new MessageFile(filePath, 'auto', fs);
    await file.read();
    await file.read();
    await file.read();
    expect(reads).toBe(1);
  });

  it('keeps the raw content, stripping only one final line break', async () => {
    const filePath = path.join(dir, 'MESSAGE');
    await writeFile(filePath, '\uFEFFline 1\r\nline 2\r\n\r\n');
    await expect(new MessageFile(filePath).read()).resolves.toEqual({
      ok: true,
      message: 'line 1\r\nline 2\r\n',
    });
  });

  it('reads MESSAGE from a dotenv file', async () => {
    const filePath = path.join(dir, 'app.env');
    await writeFile(filePath, '# settings\nOTHER=1\nexport MESSAGE="Hello \\"env\\" file"\n');
    const file = new MessageFile(filePath);
    expect(file.format).toBe('dotenv');
    await expect(file.read()).resolves.toEqual({ ok: true, message: 'Hello "env" file' });
  });

  it('honours an explicit format', async () => {
    const filePath = path.join(dir, 'MESSAGE');
    await writeFile(filePath, 'MESSAGE=from dotenv\n');
    await expect(new MessageFile(filePath, 'dotenv').read()).resolves.toEqual({
      ok: true,
      message: 'from dotenv',
    });
    const other = path.join(dir, 'message.txt');
    await writeFile(other, 'MESSAGE=raw');
    await expect(new MessageFile(other, 'raw').read()).resolves.toEqual({ ok: true, message: 'MESSAGE=raw' });
  });

  it('answers 404 for a missing file and for a missing key', async () => {
    await expect(new MessageFile(path.join(dir, 'MESSAGE')).read()).resolves.toMatchObject({
      ok: false,
      status: 404,
      error: 'message file not found',
    });
    await expect(new MessageFile(path.join(dir, 'nodir', 'x.env')).read()).resolves.toMatchObject({
      status: 404,
    });
    const filePath = path.join(dir, 'app.env');
    await writeFile(filePath, 'OTHER=1\n');
    await expect(new MessageFile(filePath).read()).resolves.toEqual({
      ok: false,
      status: 404,
      error: 'message key not found',
      detail: `MESSAGE is not set in ${filePath}`,
    });
  });

  it('answers 500 without internals when the file cannot be read', async () => {
    await mkdir(path.join(dir, 'MESSAGE'));
    await expect(new MessageFile(path.join(dir, 'MESSAGE')).read()).resolves.toEqual({
      ok: false,
      status: 500,
      error: 'message file unreadable',
      detail: 'the path is a directory',
    });
    const denied: MessageFileSystem = {
      open: () =>
        Promise.reject(Object.assign(new Error('EACCES: permission denied, open /x'), { code: 'EACCES' })),
    };
    await expect(new MessageFile('/x/MESSAGE', 'auto', denied).read()).resolves.toEqual({
      ok: false,
      status: 500,
      error: 'message file unreadable',
      detail: 'EACCES',
    });
  });
});

describe('parseDotenv', () => {
  it.each<[string, string, string | undefined]>([
    ['plain', 'MESSAGE=hello world', 'hello world'],
    ['spaces around =', 'MESSAGE = hello ', 'hello'],
    ['export prefix', 'export MESSAGE=hi', 'hi'],
    ['inline comment', 'MESSAGE=hi # comment', 'hi'],
    ['hash without space', 'MESSAGE=a#b', 'a#b'],
    ['single quotes are literal', "MESSAGE='a\\nb # c'", 'a\\nb # c'],
    ['double quotes unescape', 'MESSAGE="a\\nb"', 'a\nb'],
    ['empty value', 'MESSAGE=', ''],
    ['last one wins', 'MESSAGE=1\nMESSAGE=2', '2'],
    ['CRLF lines', 'A=1\r\nMESSAGE=crlf\r\n', 'crlf'],
    ['comments and junk ignored', '# MESSAGE=no\nnot a pair\n', undefined],
  ])('%s', (_name, text, expected) => {
    expect(parseDotenv(text).get('MESSAGE')).toBe(expected);
  });
});
