import { createHash, type Hash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * One input of an image build. `label` names it in the hash instead of its absolute path, so two checkouts with the
 * same content share a cache entry.
 */
export type HashInput =
  /** A file's content and executable bit (symlinks followed). */
  | { readonly kind: 'file'; readonly label: string; readonly path: string }
  /** Every file, symlink and directory below `path`: relative name, type, mode bits and content. */
  | { readonly kind: 'tree'; readonly label: string; readonly path: string }
  /** A value such as a tool's version line. */
  | { readonly kind: 'text'; readonly label: string; readonly value: string };

function field(hash: Hash, value: string | Buffer): void {
  // Length-prefixed, so no two different input lists hash the same byte stream.
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  hash.update(`${bytes.length}:`);
  hash.update(bytes);
}

function hashTree(hash: Hash, root: string, relative: string): void {
  const full = path.join(root, relative);
  const stat = lstatSync(full);
  const mode = (stat.mode & 0o7777).toString(8);
  if (stat.isSymbolicLink()) {
    field(hash, `L ${relative} ${readlinkSync(full)}`);
  } else if (stat.isDirectory()) {
    field(hash, `D ${relative} ${mode}`);
    for (const name of readdirSync(full).sort()) hashTree(hash, root, path.join(relative, name));
  } else if (stat.isFile()) {
    field(hash, `F ${relative} ${mode}`);
    field(hash, readFileSync(full));
  } else {
    throw new Error(`${full}: only files, directories and symlinks can be image inputs`);
  }
}

/** SHA-256 (hex) over the inputs in the given order; a missing file or directory throws. */
export function hashInputs(inputs: readonly HashInput[]): string {
  const hash = createHash('sha256');
  for (const input of inputs) {
    field(hash, `${input.kind} ${input.label}`);
    switch (input.kind) {
      case 'text':
        field(hash, input.value);
        break;
      case 'file':
        field(hash, (statSync(input.path).mode & 0o111) !== 0 ? 'x' : '-');
        field(hash, readFileSync(input.path));
        break;
      case 'tree':
        hashTree(hash, input.path, '.');
        break;
    }
  }
  return hash.digest('hex');
}
