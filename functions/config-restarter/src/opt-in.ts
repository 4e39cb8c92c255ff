/**
 * How a ConfigMap or Secret opts in: the label `<prefix>/watch: "true"` (what the shipped ApiServerSource
 * selects on, so the API server filters the events) or the annotation `<prefix>/triggerRestart: "true"`
 * (the original contract; an object carrying only the annotation produces no event through a selecting
 * source and is rolled out by the resync).
 */
import { annotationKeys } from './annotations.js';
import type { ObjectMeta } from './model.js';

/** The opt-in keys of config objects for one prefix. */
export interface ConfigOptIn {
  /** The label the ApiServerSource selects on, e.g. `rolling.restart.controller/watch`. */
  label: string;
  /** The annotation of the original contract, e.g. `rolling.restart.controller/triggerRestart`. */
  annotation: string;
}

/** The label key that opts a config object in and that the shipped sources select on. */
export function watchLabelKey(prefix: string): string {
  return `${prefix}/watch`;
}

/** The opt-in keys for a prefix such as `rolling.restart.controller`. */
export function configOptIn(prefix: string): ConfigOptIn {
  return { label: watchLabelKey(prefix), annotation: annotationKeys(prefix).triggerRestart };
}

/**
 * True when the object opted in: the label is exactly `"true"` (the value a selector matches) or the
 * annotation is `"true"` in any letter case (as it always was).
 */
export function isConfigOptedIn(metadata: ObjectMeta | undefined, optIn: ConfigOptIn): boolean {
  return (
    metadata?.labels?.[optIn.label] === 'true' ||
    String(metadata?.annotations?.[optIn.annotation] ?? '').toLowerCase() === 'true'
  );
}

/** Why an object is not opted in, for the `ignored` answer. */
export function notOptedInReason(optIn: ConfigOptIn): string {
  return `neither label ${optIn.label} nor annotation ${optIn.annotation} is "true"`;
}
