import { execFile, spawn } from 'node:child_process';

/** Options of {@link runCommand}. */
export interface CommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a program to completion and returns its stdout; a non-zero exit throws with the command line and the tail of
 * its output, so a failed build step names itself.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...options, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
        const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : err.message;
        reject(new Error(`${command} ${args.join(' ')}: ${reason}${tail ? `\n${tail}` : ''}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Whether `command` can be started (looked up on PATH). */
export async function commandExists(command: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, ['--version'], { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('close', () => resolve(true));
  });
}

/**
 * Runs `producer | consumer` without a shell; resolves with the consumer's stdout once both exited 0, otherwise
 * rejects naming the side that failed.
 */
export function runPipe(
  producer: { command: string; args: readonly string[] },
  consumer: { command: string; args: readonly string[] },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const left = spawn(producer.command, producer.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const right = spawn(consumer.command, consumer.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let leftErr = '';
    let rightOut = '';
    let rightErr = '';
    left.stderr.on('data', (chunk: Buffer) => (leftErr += chunk.toString('utf8')));
    right.stdout.on('data', (chunk: Buffer) => (rightOut += chunk.toString('utf8')));
    right.stderr.on('data', (chunk: Buffer) => (rightErr += chunk.toString('utf8')));
    // EPIPE when the consumer quits early: its own exit code tells why.
    right.stdin.on('error', () => undefined);
    left.stdout.pipe(right.stdin);
    const exits = [left, right].map(
      (child) =>
        new Promise<number | null>((done, fail) => {
          child.once('error', fail);
          child.once('close', done);
        }),
    );
    Promise.all(exits).then(([leftCode, rightCode]) => {
      if (leftCode !== 0) {
        reject(
          new Error(`${producer.command} ${producer.args.join(' ')} exited ${leftCode}: ${leftErr.trim()}`),
        );
      } else if (rightCode !== 0) {
        const output = `${rightOut}\n${rightErr}`.trim();
        reject(new Error(`${consumer.command} ${consumer.args.join(' ')} exited ${rightCode}: ${output}`));
      } else {
        resolve(rightOut);
      }
    }, reject);
  });
}
