import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type HashInput, hashInputs } from '../../../cluster/input-hash.js';
import { parseLdd } from '../../../cluster/rootfs.js';

describe('parseLdd', () => {
  it('lists the libraries and the loader of a dynamic binary, without the vDSO', () => {
    const output = [
      '\tlinux-vdso.so.1 (0x00007ffd6b3f5000)',
      '\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f409f8b9000)',
      '\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f409f600000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f409f33e000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f409f8d1000)',
      '',
    ].join('\n');
    expect(parseLdd(output)).toEqual([
      '/lib/x86_64-linux-gnu/libdl.so.2',
      '/lib/x86_64-linux-gnu/libstdc++.so.6',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ]);
  });

  it('lists a library once', () => {
    const line = '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f409f33e000)';
    expect(parseLdd(`${line}\n${line}\n`)).toEqual(['/lib/x86_64-linux-gnu/libc.so.6']);
  });

  it('fails on a library ldd could not find, naming it', () => {
    const output = '\tlibz.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n';
    expect(() => parseLdd(output)).toThrow('shared libraries not found: libz.so.1');
  });

  it('finds nothing in a static binary', () => {
    expect(parseLdd('\tstatically linked\n')).toEqual([]);
  });
});

describe('hashInputs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'image-inputs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A small package tree: dist/index.js, dist/lib/a.js and a symlink. */
  function tree(root: string, content = 'export {};'): string {
    mkdirSync(path.join(root, 'lib'), { recursive: true });
    writeFileSync(path.join(root, 'index.js'), content);
    writeFileSync(path.join(root, 'lib', 'a.js'), 'a');
    symlinkSync('index.js', path.join(root, 'main.js'));
    return root;
  }

  const hashOf = (inputs: HashInput[]): string => hashInputs(inputs);

  it('is a SHA-256 that does not depend on where the inputs live (labels name them)', () => {
    const a = tree(path.join(dir, 'a'));
    const b = tree(path.join(dir, 'b'));
    const first = hashOf([{ kind: 'tree', label: 'dist', path: a }]);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(hashOf([{ kind: 'tree', label: 'dist', path: b }])).toBe(first);
    expect(hashOf([{ kind: 'tree', label: 'other', path: a }])).not.toBe(first);
  });

  it('changes with content, file mode, symlink target or a new file in a tree', () => {
    const root = tree(path.join(dir, 'dist'));
    const inputs: HashInput[] = [{ kind: 'tree', label: 'dist', path: root }];
    const seen = new Set([hashOf(inputs)]);
    writeFileSync(path.join(root, 'lib', 'a.js'), 'b');
    seen.add(hashOf(inputs));
    chmodSync(path.join(root, 'lib', 'a.js'), 0o755);
    seen.add(hashOf(inputs));
    rmSync(path.join(root, 'main.js'));
    symlinkSync('lib/a.js', path.join(root, 'main.js'));
    seen.add(hashOf(inputs));
    writeFileSync(path.join(root, 'lib', 'b.js'), '');
    seen.add(hashOf(inputs));
    expect(seen.size).toBe(5);
  });

  it('a file counts with its content and executable bit; a text input with its value', () => {
    const file = path.join(dir, 'node');
    writeFileSync(file, 'binary');
    const base = hashOf([{ kind: 'file', label: 'node', path: file }]);
    chmodSync(file, 0o755);
    const executable = hashOf([{ kind: 'file', label: 'node', path: file }]);
    expect(executable).not.toBe(base);
    expect(hashOf([{ kind: 'text', label: 'gcc', value: 'gcc 12.2.0' }])).not.toBe(
      hashOf([{ kind: 'text', label: 'gcc', value: 'gcc 12.3.0' }]),
    );
  });

  it('keeps inputs apart: moving bytes between two inputs changes the hash', () => {
    expect(
      hashOf([
        { kind: 'text', label: 'a', value: 'xy' },
        { kind: 'text', label: 'b', value: '' },
      ]),
    ).not.toBe(
      hashOf([
        { kind: 'text', label: 'a', value: 'x' },
        { kind: 'text', label: 'b', value: 'y' },
      ]),
    );
  });

  it('fails on a missing input', () => {
    expect(() => hashOf([{ kind: 'file', label: 'x', path: path.join(dir, 'missing') }])).toThrow(/ENOENT/);
  });
});
