/** Moved to test/cluster/objects.ts; this re-export only keeps scripts/bench.ts building until it imports it. */
export * from '../cluster/objects.js';
