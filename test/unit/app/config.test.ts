import { ConfigError, loadConfig, type AppConfig } from '../../../app/src/config.js';

describe('loadConfig', () => {
  it('applies the defaults to an empty environment', () => {
    expect(loadConfig({})).toEqual<AppConfig>({
      port: 8080,
      message: undefined,
      messageFile: undefined,
      messageFileFormat: 'auto',
      serviceName: 'helloworld',
      environment: 'local',
      logLevel: 'info',
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 25_000,
    });
  });

  it.each<[string, Record<string, string>, Partial<AppConfig>]>([
    ['PORT', { PORT: '3000' }, { port: 3000 }],
    ['PORT 0 (ephemeral)', { PORT: '0' }, { port: 0 }],
    ['PORT with spaces', { PORT: ' 8081 ' }, { port: 8081 }],
    ['empty PORT falls back', { PORT: '' }, { port: 8080 }],
    ['ENV_MESSAGE verbatim', { ENV_MESSAGE: '  Hi <there>  ' }, { message: '  Hi <there>  ' }],
    ['MESSAGE_FILE', { MESSAGE_FILE: '/etc/helloworld/MESSAGE' }, { messageFile: '/etc/helloworld/MESSAGE' }],
    ['MESSAGE_FILE_FORMAT', { MESSAGE_FILE_FORMAT: 'DotEnv' }, { messageFileFormat: 'dotenv' }],
    ['SERVICE_NAME wins over K_SERVICE', { SERVICE_NAME: 'a', K_SERVICE: 'b' }, { serviceName: 'a' }],
    ['K_SERVICE as service name', { K_SERVICE: 'helloworld-test' }, { serviceName: 'helloworld-test' }],
    ['ENVIRONMENT wins over APP_ENV', { ENVIRONMENT: 'prod', APP_ENV: 'dev' }, { environment: 'prod' }],
    ['APP_ENV as environment', { APP_ENV: 'dev' }, { environment: 'dev' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'DEBUG' }, { logLevel: 'debug' }],
    [
      'shutdown timing',
      { SHUTDOWN_DELAY_MS: '500', SHUTDOWN_TIMEOUT_MS: '1000' },
      { shutdownDelayMs: 500, shutdownTimeoutMs: 1000 },
    ],
  ])('reads %s', (_name, env, expected) => {
    expect(loadConfig(env)).toMatchObject(expected);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['non-numeric PORT', { PORT: 'http' }, /^PORT must be an integer from 0 to 65535/],
    ['PORT out of range', { PORT: '65536' }, /^PORT must be an integer/],
    ['negative PORT', { PORT: '-1' }, /^PORT must be an integer/],
    ['fractional PORT', { PORT: '80.5' }, /^PORT must be an integer/],
    ['relative MESSAGE_FILE', { MESSAGE_FILE: 'etc/MESSAGE' }, /^MESSAGE_FILE must be an absolute path/],
    [
      'unknown MESSAGE_FILE_FORMAT',
      { MESSAGE_FILE_FORMAT: 'ini' },
      /^MESSAGE_FILE_FORMAT must be one of auto, raw, dotenv/,
    ],
    ['unknown LOG_LEVEL', { LOG_LEVEL: 'verbose' }, /^LOG_LEVEL must be one of debug, info, warn, error/],
    ['long SERVICE_NAME', { SERVICE_NAME: 'x'.repeat(64) }, /^SERVICE_NAME must be at most 63 characters/],
    ['long ENVIRONMENT', { ENVIRONMENT: 'x'.repeat(64) }, /^ENVIRONMENT must be at most 63 characters/],
    ['bad SHUTDOWN_DELAY_MS', { SHUTDOWN_DELAY_MS: 'soon' }, /^SHUTDOWN_DELAY_MS must be an integer/],
  ])('rejects %s', (_name, env, problem) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems } = error as ConfigError;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(problem);
  });

  it('lists every problem at once', () => {
    expect(() => loadConfig({ PORT: 'x', MESSAGE_FILE: 'rel', LOG_LEVEL: 'loud' })).toThrow(
      expect.objectContaining({
        name: 'ConfigError',
        problems: [
          expect.stringMatching(/^PORT /),
          expect.stringMatching(/^MESSAGE_FILE /),
          expect.stringMatching(/^LOG_LEVEL /),
        ],
      }) as Error,
    );
  });
});
