import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import type { MessageFileFormat } from './config.js';

/** The name of the key read from the message file. */
export const MESSAGE_KEY = 'MESSAGE';

/** Outcome of reading the message: the text, or an HTTP-ready error. */
export type MessageResult =
  | { readonly ok: true; readonly message: string }
  | { readonly ok: false; readonly status: 404 | 500; readonly error: string; readonly detail: string };

/** Anything that can produce the message on demand. */
export interface MessageSource {
  read(): Promise<MessageResult>;
}

/** The subset of `node:fs/promises` used by {@link MessageFile} (injectable for tests). */
export interface MessageFileSystem {
  open(filePath: string): Promise<Pick<FileHandle, 'stat' | 'readFile' | 'close'>>;
}

const nodeFs: MessageFileSystem = { open: (filePath) => open(filePath, 'r') };

/**
 * Reads the message from a file and re-reads it whenever the file changes.
 *
 * The kubelet updates a mounted ConfigMap by writing a new timestamped directory and swapping the `..data`
 * symlink, so the path keeps its name while it resolves to a different inode. Every read opens the path
 * (following the symlinks), compares the opened file's identity (device, inode, size, mtime and ctime in
 * nanoseconds) with the cached one and reads the content only when it differs. Opening first and then
 * stat-ing the handle means the cached content always belongs to the identity it is stored with, even when
 * the swap happens between two requests.
 */
export class MessageFile implements MessageSource {
  readonly #filePath: string;
  readonly #format: 'raw' | 'dotenv';
  readonly #fs: MessageFileSystem;
  #cache: { readonly identity: string; readonly result: MessageResult } | undefined;

  /**
   * @param filePath absolute path of the file.
   * @param format `auto` picks `raw` for a file named `MESSAGE` (a mounted ConfigMap key), `dotenv` otherwise.
   * @param fs file system access, `node:fs/promises` by default.
   */
  constructor(filePath: string, format: MessageFileFormat = 'auto', fs: MessageFileSystem = nodeFs) {
    this.#filePath = filePath;
    this.#format = format === 'auto' ? (path.basename(filePath) === MESSAGE_KEY ? 'raw' : 'dotenv') : format;
    this.#fs = fs;
  }

  /** The effective format (after resolving `auto`). */
  get format(): 'raw' | 'dotenv' {
    return this.#format;
  }

  /** Returns the current message, reading the file only if it changed since the last call. */
  async read(): Promise<MessageResult> {
    let handle: Pick<FileHandle, 'stat' | 'readFile' | 'close'>;
    try {
      handle = await this.#fs.open(this.#filePath);
    } catch (err) {
      return this.#failure(err);
    }
    try {
      const stats = await handle.stat({ bigint: true });
      if (stats.isDirectory()) {
        return {
          ok: false,
          status: 500,
          error: 'message file unreadable',
          detail: 'the path is a directory',
        };
      }
      const identity = [stats.dev, stats.ino, stats.size, stats.mtimeNs, stats.ctimeNs].join(':');
      if (this.#cache?.identity === identity) return this.#cache.result;
      const content = await handle.readFile({ encoding: 'utf8' });
      const result = this.#parse(content);
      this.#cache = { identity, result };
      return result;
    } catch (err) {
      return this.#failure(err);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  #parse(content: string): MessageResult {
    const text = content.startsWith('\uFEFF') ? content.slice(1) : content;
    if (this.#format === 'raw') return { ok: true, message: stripFinalNewline(text) };
    const value = parseDotenv(text).get(MESSAGE_KEY);
    if (value === undefined) {
      return {
        ok: false,
        status: 404,
        error: 'message key not found',
        detail: `${MESSAGE_KEY} is not set in ${this.#filePath}`,
      };
    }
    return { ok: true, message: value };
  }

  #failure(err: unknown): MessageResult {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return {
        ok: false,
        status: 404,
        error: 'message file not found',
        detail: `${this.#filePath} does not exist`,
      };
    }
    // Only the error code leaves the process: no stack, no internals.
    const reason = code === 'EISDIR' ? 'the path is a directory' : (code ?? 'read failed');
    return { ok: false, status: 500, error: 'message file unreadable', detail: reason };
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

/** Removes one trailing line break (`\n` or `\r\n`): a YAML block scalar ends with one. */
function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

const DOTENV_LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$/;

/**
 * Parses dotenv-style text: `KEY=value` lines, optional `export `, `#` comments, blank lines.
 * Values may be unquoted (an inline ` #comment` is cut), single-quoted (literal) or double-quoted
 * (`\n`, `\r`, `\t`, `\"` and `\\` are unescaped). A later line wins over an earlier one.
 */
export function parseDotenv(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*(#|$)/.test(line)) continue;
    const match = DOTENV_LINE.exec(line);
    if (match === null) continue;
    const [, key = '', rawValue = ''] = match;
    values.set(key, unquote(rawValue));
  }
  return values;
}

function unquote(value: string): string {
  const quote = value[0];
  if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
    const inner = value.slice(1, -1);
    if (quote === "'") return inner;
    const escapes: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' };
    return inner.replace(/\\(.)/g, (all, c: string) => escapes[c] ?? all);
  }
  const comment = value.search(/\s#/);
  return (comment === -1 ? value : value.slice(0, comment)).trimEnd();
}
