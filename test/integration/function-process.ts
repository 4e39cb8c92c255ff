/** Moved to test/cluster/function-process.ts; this re-export only keeps scripts/bench.ts building until it imports it. */
export * from '../cluster/function-process.js';
