/** Moved to test/cluster/apiserver-event.ts; this re-export only keeps scripts/bench.ts building until it imports it. */
export * from '../../test/cluster/apiserver-event.js';
