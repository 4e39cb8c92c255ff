import express, { type Express, type NextFunction, type Request, type Response } from 'express';

import type { AppConfig } from './config.js';
import { HealthState } from './health.js';
import { escapeHtml } from './html.js';
import { silentLogger, type Logger } from './logger.js';
import { MessageFile, type MessageResult, type MessageSource } from './message-file.js';

/** Collaborators of {@link createApp}; only `config` is required. */
export interface AppDeps {
  readonly config: AppConfig;
  /** Request and error log (default: silent). */
  readonly logger?: Logger;
  /** Readiness state shared with the shutdown logic (default: a fresh, ready state). */
  readonly health?: HealthState;
  /** Source of `GET /messageFromFile` (default: {@link MessageFile} on `config.messageFile`). */
  readonly messageSource?: MessageSource;
}

const notConfigured = (variable: string): MessageResult => ({
  ok: false,
  status: 404,
  error: 'message not configured',
  detail: `${variable} is not set`,
});

/** Logs one line per request (probes at debug) and sets `nosniff` on every answer. */
function requestLog(logger: Logger): express.RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.on('finish', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      // Probes arrive every few seconds: keep them out of the info log.
      const level = req.path.startsWith('/health/') ? 'debug' : 'info';
      logger[level]('request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        durationMs: Math.round(durationMs * 1000) / 1000,
        userAgent: req.get('user-agent'),
      });
    });
    next();
  };
}

function sendMessage(res: Response, result: MessageResult): void {
  res.setHeader('Cache-Control', 'no-store');
  if (result.ok) {
    res.type('text/plain; charset=utf-8').send(result.message);
  } else {
    res.status(result.status).json({ error: result.error, detail: result.detail });
  }
}

/** `GET /`: the HTML page naming the service, its environment and its message. */
function homePage(config: AppConfig): express.RequestHandler {
  return (_req, res) => {
    const service = escapeHtml(config.serviceName);
    const environment = escapeHtml(config.environment);
    const message = config.message === undefined ? '' : `\n<p>${escapeHtml(config.message)}</p>`;
    res.setHeader('Content-Security-Policy', "default-src 'none'");
    res.setHeader('Cache-Control', 'no-store');
    res.type('html').send(
      `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${service} (${environment})</title></head>
<body>
<h1>${service} (${environment})</h1>${message}
<ul>
<li><a href="message">message</a> (from the environment, fixed at start)</li>
<li><a href="messageFromFile">messageFromFile</a> (from the mounted ConfigMap, follows edits)</li>
</ul>
</body>
</html>
`,
    );
  };
}

/** Errors as JSON `{error, detail}` without stack traces (Express knows error handlers by their 4 parameters). */
function errorHandler(logger: Logger): express.ErrorRequestHandler {
  return (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    logger.error('request failed', { error: err instanceof Error ? err.message : String(err) });
    // Too late for an error body: let Express end the connection.
    if (res.headersSent) {
      next(err);
      return;
    }
    const status = httpStatusOf(err);
    res
      .status(status)
      .json(
        status < 500
          ? { error: 'bad request', detail: err instanceof Error ? err.message : 'invalid request' }
          : { error: 'internal error', detail: 'unexpected error' },
      );
  };
}

/** The message source of the config: the file at `MESSAGE_FILE`, or "not configured". */
function messageSourceOf(config: AppConfig): MessageSource {
  return config.messageFile === undefined
    ? { read: () => Promise.resolve(notConfigured('MESSAGE_FILE')) }
    : new MessageFile(config.messageFile, config.messageFileFormat);
}

/**
 * Builds the helloworld HTTP app. Pure wiring: no listening, no environment access and no I/O happen here.
 *
 * Routes: `GET /` (HTML page), `GET /message` (ENV_MESSAGE), `GET /messageFromFile` (MESSAGE from the file
 * at MESSAGE_FILE, re-read when it changes), `GET /health/liveness`, `GET /health/readiness`. Errors are
 * JSON `{error, detail}` without stack traces.
 */
export function createApp(deps: AppDeps): Express {
  const { config } = deps;
  const logger = deps.logger ?? silentLogger;
  const health = deps.health ?? new HealthState();
  const messageSource = deps.messageSource ?? messageSourceOf(config);

  const app = express();
  app.disable('x-powered-by');
  // Messages change out of band (ConfigMap edits): never let a client revalidate into a stale 304.
  app.set('etag', false);
  app.use(requestLog(logger));
  app.get('/', homePage(config));
  app.get('/message', (_req, res) => {
    sendMessage(
      res,
      config.message === undefined ? notConfigured('ENV_MESSAGE') : { ok: true, message: config.message },
    );
  });
  app.get('/messageFromFile', async (_req, res) => {
    const result = await messageSource.read();
    if (!result.ok && result.status === 500)
      logger.warn('message file read failed', { detail: result.detail });
    sendMessage(res, result);
  });
  app.get('/health/liveness', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/health/readiness', (_req, res) => {
    if (health.ready) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'shutting down' });
  });
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: 'not found', detail: `no route for ${req.method} ${req.path}` });
  });
  app.use(errorHandler(logger));
  return app;
}

function httpStatusOf(err: unknown): number {
  if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number') {
    return err.status >= 400 && err.status < 600 ? err.status : 500;
  }
  return 500;
}
