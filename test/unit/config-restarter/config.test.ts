import { ConfigError, loadConfig } from '../../../functions/config-restarter/src/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      port: 8080,
      annotationPrefix: 'rolling.restart.controller',
      matchLabels: ['app', 'env'],
      watchNamespaces: { mode: 'own' },
      dryRun: false,
      logLevel: 'info',
      configKinds: ['ConfigMap'],
      workloadSelector: undefined,
      patchConcurrency: 4,
      apiTimeoutMs: 10000,
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 10000,
      auth: undefined,
      minRestartIntervalMs: 0,
      settleWindowMs: 0,
      restartOnDelete: false,
      maxConcurrentRollouts: 0,
    });
  });

  it.each([
    [{ PORT: '9090' }, { port: 9090 }],
    [{ ANNOTATION_PREFIX: 'example.com' }, { annotationPrefix: 'example.com' }],
    [{ MATCH_LABELS: 'app' }, { matchLabels: ['app'] }],
    [
      { MATCH_LABELS: ' app , app.kubernetes.io/part-of ' },
      { matchLabels: ['app', 'app.kubernetes.io/part-of'] },
    ],
    [{ MATCH_LABELS: '' }, { matchLabels: [] }],
    [{ WATCH_NAMESPACES: '*' }, { watchNamespaces: { mode: 'all' } }],
    [{ WATCH_NAMESPACES: 'a, b,a' }, { watchNamespaces: { mode: 'list', namespaces: ['a', 'b'] } }],
    [{ DRY_RUN: 'true' }, { dryRun: true }],
    [{ DRY_RUN: 'FALSE' }, { dryRun: false }],
    [{ LOG_LEVEL: 'DEBUG' }, { logLevel: 'debug' }],
    [{ CONFIG_KINDS: 'ConfigMap,Secret' }, { configKinds: ['ConfigMap', 'Secret'] }],
    [{ PATCH_CONCURRENCY: '16' }, { patchConcurrency: 16 }],
    [{ MAX_CONCURRENT_ROLLOUTS: '3' }, { maxConcurrentRollouts: 3 }],
    [{ MAX_CONCURRENT_ROLLOUTS: '0' }, { maxConcurrentRollouts: 0 }],
    [{ SHUTDOWN_DELAY_MS: '3000' }, { shutdownDelayMs: 3000 }],
    [
      { WORKLOAD_SELECTOR: 'restart in (enabled),tier!=db' },
      { workloadSelector: 'restart in (enabled),tier!=db' },
    ],
    [
      { AUTH_AUDIENCE: 'serving.knative.dev/service/helloworld/config-restarter' },
      {
        auth: {
          audience: 'serving.knative.dev/service/helloworld/config-restarter',
          allowedSubjects: undefined,
        },
      },
    ],
    [
      { AUTH_AUDIENCE: 'aud', AUTH_ALLOWED_SUBJECTS: 'system:serviceaccount:ns:sa, alice,alice' },
      { auth: { audience: 'aud', allowedSubjects: ['system:serviceaccount:ns:sa', 'alice'] } },
    ],
    [{ MIN_RESTART_INTERVAL: '5m' }, { minRestartIntervalMs: 300_000 }],
    [{ MIN_RESTART_INTERVAL: '1h30m' }, { minRestartIntervalMs: 5_400_000 }],
    [{ MIN_RESTART_INTERVAL: '0' }, { minRestartIntervalMs: 0 }],
    [{ SETTLE_WINDOW: '2s' }, { settleWindowMs: 2000 }],
    [{ SETTLE_WINDOW: '1m30s' }, { settleWindowMs: 90_000 }],
    [{ SETTLE_WINDOW: '250ms' }, { settleWindowMs: 250 }],
    [{ SETTLE_WINDOW: ' 0 ' }, { settleWindowMs: 0 }],
    [{ RESTART_ON_DELETE: 'true' }, { restartOnDelete: true }],
  ])('reads %j', (env, expected) => {
    expect(loadConfig(env)).toMatchObject(expected);
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ ANNOTATION_PREFIX: 'Not A Prefix' }, 'ANNOTATION_PREFIX'],
    [{ MATCH_LABELS: 'app,bad key' }, 'MATCH_LABELS'],
    [{ WATCH_NAMESPACES: 'Prod_NS' }, 'WATCH_NAMESPACES'],
    [{ DRY_RUN: 'maybe' }, 'DRY_RUN'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'],
    [{ CONFIG_KINDS: 'ConfigMap,Deployment' }, 'CONFIG_KINDS'],
    [{ PATCH_CONCURRENCY: '0' }, 'PATCH_CONCURRENCY'],
    [{ MAX_CONCURRENT_ROLLOUTS: '-1' }, 'MAX_CONCURRENT_ROLLOUTS'],
    [{ MAX_CONCURRENT_ROLLOUTS: 'many' }, 'MAX_CONCURRENT_ROLLOUTS'],
    [{ WORKLOAD_SELECTOR: 'app="x"' }, 'WORKLOAD_SELECTOR'],
    [{ AUTH_AUDIENCE: 'two audiences' }, 'AUTH_AUDIENCE'],
    [{ AUTH_AUDIENCE: 'a,b' }, 'AUTH_AUDIENCE'],
    [
      { AUTH_ALLOWED_SUBJECTS: 'system:serviceaccount:ns:sa' },
      'AUTH_ALLOWED_SUBJECTS is set but AUTH_AUDIENCE',
    ],
    [
      { AUTH_AUDIENCE: 'aud', AUTH_ALLOWED_SUBJECTS: 'system:serviceaccount:Bad_NS:sa' },
      'AUTH_ALLOWED_SUBJECTS',
    ],
    [{ AUTH_AUDIENCE: 'aud', AUTH_ALLOWED_SUBJECTS: 'system:serviceaccount:ns' }, 'AUTH_ALLOWED_SUBJECTS'],
    [{ AUTH_AUDIENCE: 'aud', AUTH_ALLOWED_SUBJECTS: ' , ' }, 'AUTH_ALLOWED_SUBJECTS'],
    [{ MIN_RESTART_INTERVAL: '5 minutes' }, 'MIN_RESTART_INTERVAL'],
    [{ MIN_RESTART_INTERVAL: '-5m' }, 'MIN_RESTART_INTERVAL'],
    [{ MIN_RESTART_INTERVAL: '300' }, 'MIN_RESTART_INTERVAL'],
    [{ SETTLE_WINDOW: '2 seconds' }, 'SETTLE_WINDOW must be a duration such as 2s, 30s or 1m'],
    [{ SETTLE_WINDOW: '-2s' }, 'SETTLE_WINDOW'],
    [{ SETTLE_WINDOW: '30' }, 'SETTLE_WINDOW'],
    [{ RESTART_ON_DELETE: 'sometimes' }, 'RESTART_ON_DELETE'],
  ])('refuses %j naming the variable', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(variable);
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({
        PORT: 'x',
        DRY_RUN: 'x',
        LOG_LEVEL: 'x',
        WATCH_NAMESPACES: 'A',
        MIN_RESTART_INTERVAL: 'soon',
        SETTLE_WINDOW: 'later',
        RESTART_ON_DELETE: 'x',
      });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems.join('\n');
      for (const name of [
        'PORT',
        'DRY_RUN',
        'LOG_LEVEL',
        'WATCH_NAMESPACES',
        'MIN_RESTART_INTERVAL',
        'SETTLE_WINDOW',
        'RESTART_ON_DELETE',
      ])
        expect(problems).toContain(name);
    }
  });
});
