/**
 * Resource readings of another process from Linux `/proc`: resident memory and CPU time, as `ps` and `top`
 * report them. Used by the benchmark to measure the function process from outside.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | undefined;

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux in practice). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`). */
export function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** User + system CPU time consumed so far, in milliseconds (`utime` + `stime` of `/proc/<pid>/stat`). */
export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces); utime and stime are fields 14
  // and 15 of the whole line, i.e. 12 and 13 after the name.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / ticksPerSecond();
}

/** Samples a process's RSS at a fixed interval until stopped. */
export interface RssSampler {
  /** Stops sampling and returns the samples in bytes (at least one). */
  stop(): number[];
}

/** Starts sampling `VmRSS` of `pid` every `intervalMs` (one sample at once). */
export function sampleRss(pid: number, intervalMs = 100): RssSampler {
  const samples = [readRssBytes(pid)];
  const timer = setInterval(() => {
    try {
      samples.push(readRssBytes(pid));
    } catch {
      // The process is gone: keep what was sampled.
    }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}

/**
 * The processes of one pod on this machine's node (the kubelet's cgroupfs driver puts each under
 * `.../pod<uid>/<container>`, which `/proc/<pid>/cgroup` names): its containers' processes and its sandbox's.
 */
export function podPids(podUid: string): number[] {
  const marker = `pod${podUid}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
