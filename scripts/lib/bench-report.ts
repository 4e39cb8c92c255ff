/** Renders the figures of the cluster benchmark as Markdown tables, with the goals they are held against. */
import type { ClusterBenchResult, SizeResult } from './cluster-bench.js';
import { percentile } from './stats.js';

const MiB = 1024 * 1024;
const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : 'n/a');
const megabytes = (bytes: number): string => (bytes / MiB).toFixed(0);
const ratio = (value: number): string => (Number.isFinite(value) ? value.toFixed(2) : 'n/a');
const median = (values: number[]): number => percentile(values, 50);
const peak = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);

/** `p50 / p90 / p99` in ms. */
const triple = (values: number[]): string => [50, 90, 99].map((p) => ms(percentile(values, p))).join(' / ');

function row(label: string, cells: string[]): string {
  return `| ${label} | ${cells.join(' | ')} |`;
}

/** One goal of the design, measured. */
interface Goal {
  name: string;
  measured: string;
  bar: string;
  pass: boolean | undefined;
}

function goals(result: ClusterBenchResult): Goal[] {
  const at = (n: number): SizeResult | undefined => result.sizes.find((s) => s.n === n);
  const small = at(10);
  const large = at(2000);
  const list: Goal[] = [];
  const check = (name: string, value: number | undefined, bar: number, unit = '', shown?: string): void => {
    const defined = value !== undefined && Number.isFinite(value);
    list.push({
      name,
      measured: defined ? (shown ?? `${ratio(value)}${unit}`) : 'not measured',
      bar: `<= ${bar}${unit}`,
      pass: defined ? value <= bar : undefined,
    });
  };
  const p50 = (s: SizeResult | undefined) => (s ? median(s.latenciesMs) : undefined);
  const p99 = (s: SizeResult | undefined) => (s ? percentile(s.latenciesMs, 99) : undefined);
  check('p50 edit -> restart, N=2000 / N=10', large && small && p50(large)! / p50(small)!, 1.5);
  check(
    'p50 edit -> restart at N=10 / API floor p50',
    small && p50(small)! / median(small.floor.requestsMs),
    1.3,
  );
  for (const s of result.sizes) check(`p99 / p50 edit -> restart, N=${s.n}`, p99(s)! / p50(s)!, 2);
  const rss = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / MiB);
  check(
    'function RSS idle (N=10)',
    rss(small?.idleRss),
    90,
    ' MB',
    small && `${megabytes(small.idleRss)} MB`,
  );
  const largePeak = large ? peak(large.rssSamples) : undefined;
  check(
    'function RSS at N=2000 (peak during the edits)',
    rss(largePeak),
    100,
    ' MB',
    largePeak === undefined ? undefined : `${megabytes(largePeak)} MB`,
  );
  check('CPU per edit, N=2000 / N=10', large && small && large.cpuPerEditMs / small.cpuPerEditMs, 1.5);
  const cold = result.coldStart && median(result.coldStart.answeredMs) / 1000;
  check('cold start (median), s', cold, 1.5, ' s', cold === undefined ? undefined : `${cold.toFixed(2)} s`);
  if (result.noise) {
    list.push({
      name: 'noise: events from an unrelated, unlabelled ConfigMap, source as shipped',
      measured: `${result.noise.selected.events} for ${result.noise.selected.writes} writes`,
      bar: '0',
      pass: result.noise.selected.events === 0,
    });
  }
  if (result.burst) {
    const most = peak(result.burst.restartsPerDeployment);
    list.push({
      name: 'burst: restarts per Deployment <= edits of its ConfigMap',
      measured: `at most ${most} for ${result.burst.editsPerConfigMap} edits`,
      bar: `<= ${result.burst.editsPerConfigMap}`,
      pass: most <= result.burst.editsPerConfigMap,
    });
    list.push({
      name: 'burst: records naming stale content afterwards',
      measured: String(result.burst.staleRecords),
      bar: '0',
      pass: result.burst.staleRecords === 0,
    });
  }
  return list;
}

/** The whole report: per-size table, cold start, burst, goals and where the time went. */
export function renderReport(result: ClusterBenchResult, options: { edits: number; warmup: number }): string {
  const lines: string[] = [];
  const sizes = result.sizes;
  lines.push(`Machine: ${result.machine}.`, '');
  lines.push(
    `Spaced edits: ${options.edits} measured per size (after ${options.warmup} warm-up edits), one at a time, ` +
      'each waiting for its restart' +
      (options.edits <= 100 ? `; p99 of ${options.edits} samples is their maximum.` : '.'),
    '',
  );
  lines.push(
    row(
      '',
      sizes.map((s) => `N = ${s.n}`),
    ),
    row(
      '---',
      sizes.map(() => '---:'),
    ),
  );
  lines.push(
    row(
      'edit -> restart p50 / p90 / p99 (ms)',
      sizes.map((s) => triple(s.latenciesMs)),
    ),
    row(
      'warm-up edits (ms, first edits after start)',
      sizes.map((s) => s.warmupMs.map((v) => ms(v)).join(', ') || '-'),
    ),
    row(
      'API floor GET + PATCH p50 / p90 / p99 (ms)',
      sizes.map((s) => triple(s.floor.requestsMs)),
    ),
    row(
      'API floor GET + PATCH until the watch sees it, p50 / p90 / p99 (ms)',
      sizes.map((s) => triple(s.floor.watchedMs)),
    ),
    row(
      'p50 edit -> restart / floor p50',
      sizes.map((s) => ratio(median(s.latenciesMs) / median(s.floor.requestsMs))),
    ),
    row(
      'function RSS idle (MB)',
      sizes.map((s) => megabytes(s.idleRss)),
    ),
    row(
      'function RSS during the edits, median / peak (MB)',
      sizes.map((s) => `${megabytes(median(s.rssSamples))} / ${megabytes(peak(s.rssSamples))}`),
    ),
    row(
      'function CPU per edit (ms)',
      sizes.map((s) => ms(s.cpuPerEditMs)),
    ),
    row(
      'creating the Deployments (s)',
      sizes.map((s) => s.createSeconds.toFixed(1)),
    ),
  );
  lines.push('');
  if (result.coldStart) {
    const c = result.coldStart;
    const early = Object.entries(c.earlyAnswers)
      .map(([what, count]) => `${count} x ${what}`)
      .join(', ');
    lines.push(
      `Cold start (N = ${sizes[0]?.n}, ${c.answeredMs.length} run${c.answeredMs.length === 1 ? '' : 's'}): new process -> first event answered 2xx: ` +
        `median ${ms(median(c.answeredMs))} ms (runs: ${c.answeredMs.map((v) => ms(v)).join(', ')} ms); ` +
        `-> restart visible: median ${ms(median(c.restartVisibleMs))} ms. ` +
        `Before the first 2xx: ${early || 'nothing'}.`,
      '',
    );
  }
  if (result.burst) {
    const b = result.burst;
    lines.push(
      `Burst (N = ${b.n}): ${b.edits} edits over ${b.configMaps} ConfigMaps, sent in ${b.editSeconds.toFixed(2)} s ` +
        `(${(b.edits / b.editSeconds).toFixed(0)} edits/s); the function handled ${b.eventsHandled} events in ` +
        `${b.eventsSeconds.toFixed(2)} s (${(b.eventsHandled / b.eventsSeconds).toFixed(0)} events/s, ` +
        `polled every 100 ms); all restarts visible after ${b.restartsSeconds.toFixed(2)} s; restarts per ` +
        `Deployment ${Math.min(...b.restartsPerDeployment)}-${peak(b.restartsPerDeployment)} ` +
        `(${b.editsPerConfigMap} edits per ConfigMap); hash records naming stale content afterwards: ${b.staleRecords}.`,
      '',
    );
  }
  if (result.noise) {
    const z = result.noise;
    const perMinute = (events: number) => ((events * 60) / z.seconds).toFixed(1);
    lines.push(
      `Noise (N = ${z.n}): an unrelated ConfigMap (no label, no annotation, referenced by nothing) written once a ` +
        `second for ${z.seconds} s. Source without a selector: ${z.unselected.writes} writes, ` +
        `${z.unselected.events} events at the function (${perMinute(z.unselected.events)} per minute). ` +
        `Source as shipped (${z.selector}): ${z.selected.writes} writes, ${z.selected.events} events ` +
        `(${perMinute(z.selected.events)} per minute).`,
      '',
    );
  }
  lines.push('| goal | measured | bar | |', '|---|---:|---:|---|');
  for (const g of goals(result)) {
    lines.push(
      `| ${g.name} | ${g.measured} | ${g.bar} | ${g.pass === undefined ? '-' : g.pass ? 'PASS' : 'MISS'} |`,
    );
  }
  lines.push('');
  lines.push(
    `Run time ${result.totalSeconds.toFixed(0)} s: ` +
      result.phases.map((p) => `${p.name} ${p.seconds.toFixed(1)} s`).join('; ') +
      '.',
  );
  return lines.join('\n');
}
