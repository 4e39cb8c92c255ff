/**
 * The one logger shape of both services (app/src/logger.ts, functions/config-restarter/src/log.ts): the same
 * file in both, and the JSON line it writes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, silentLogger } from '../../functions/config-restarter/src/log.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

it('is the same module in the function and the app', () => {
  expect(readFileSync(path.join(root, 'app/src/logger.ts'), 'utf8')).toBe(
    readFileSync(path.join(root, 'functions/config-restarter/src/log.ts'), 'utf8'),
  );
});

it('writes one JSON object per line: level name, ISO time, base and child fields, the call fields, msg', () => {
  const lines: string[] = [];
  const logger = createLogger({
    level: 'info',
    write: (line) => lines.push(line),
    now: () => new Date('2026-01-02T03:04:05.678Z'),
    base: { service: 'svc' },
  });
  logger.child({ eventId: 'e1' }).info('decision', { action: 'restart', n: 2 });
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toContain('\n');
  expect(JSON.parse(lines[0]!)).toEqual({
    level: 'info',
    time: '2026-01-02T03:04:05.678Z',
    service: 'svc',
    eventId: 'e1',
    action: 'restart',
    n: 2,
    msg: 'decision',
  });
});

it('drops lines below its level, and the silent logger writes nothing', () => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', write: (line) => lines.push(line) });
  logger.debug('d');
  logger.info('i');
  logger.warn('w');
  logger.error('e', { detail: 'x' });
  expect(lines.map((line) => (JSON.parse(line) as { level: string }).level)).toEqual(['warn', 'error']);
  expect(() => silentLogger.error('nothing')).not.toThrow();
});
