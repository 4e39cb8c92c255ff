/**
 * Decoding: HTTP request -> CloudEvent -> a `Notice` the restarter understands. The event is only a
 * hint (Reference mode carries no data, Resource mode data may be stale or forged): decoding keeps
 * the kind, namespace, name and action, never the object's content.
 */
import { CloudEvent, HTTP, ValidationError } from 'cloudevents';
import { isDnsSubdomain, isNamespaceName } from './kube-names.js';
import type { ConfigRef } from './model.js';
import { WORKLOAD_KINDS, type WorkloadKind } from './workload-kinds.js';

/** The event types of a Knative PingSource; such an event asks for a resync. */
export const RESYNC_EVENT_TYPE = 'dev.knative.sources.ping';

const APISERVER_TYPE = /^dev\.knative\.apiserver\.(resource|ref)\.(add|update|delete)$/;

/** A request that is not a valid CloudEvent, or an ApiServerSource event that contradicts itself. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** Attributes of the incoming event that every answer and log line carries. */
export interface EventInfo {
  id: string;
  type: string;
  source: string;
  subject: string | undefined;
}

/** What an event asks for. */
export type Notice =
  | {
      type: 'change';
      event: EventInfo;
      action: 'add' | 'update' | 'delete';
      /** `resource`: data is the object; `reference`: data is only its coordinates. */
      mode: 'resource' | 'reference';
      ref: ConfigRef;
    }
  /** A followed workload changed (its status): decide the outcome of its restart (rollout-follow.ts). */
  | { type: 'rollout'; event: EventInfo; ref: FollowedRef }
  | { type: 'resync'; event: EventInfo }
  | { type: 'ignored'; event: EventInfo; reason: string };

/** A workload whose rollout may be followed. */
export interface FollowedRef {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

/** Reads a CloudEvent from an HTTP request (binary or structured mode) and validates it. */
export function readCloudEvent(
  headers: Record<string, string | string[] | undefined>,
  body: string,
): CloudEvent<unknown> {
  const flatHeaders: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) flatHeaders[key] = Array.isArray(value) ? value.join(',') : value;
  }
  let decoded: CloudEvent<unknown> | CloudEvent<unknown>[];
  try {
    decoded = HTTP.toEvent({ headers: flatHeaders, body }) as CloudEvent<unknown> | CloudEvent<unknown>[];
  } catch (error) {
    throw new DecodeError(`not a CloudEvent: ${describeError(error)}`);
  }
  if (Array.isArray(decoded)) throw new DecodeError('batched CloudEvents are not supported; send one event');
  // The SDK's validate() accepts any specversion; only the published ones are.
  if (decoded.specversion !== '1.0' && decoded.specversion !== '0.3') {
    throw new DecodeError(`invalid CloudEvent: unsupported specversion "${String(decoded.specversion)}"`);
  }
  try {
    // toEvent does not validate; validate() checks the required attributes and their formats.
    decoded.validate();
  } catch (error) {
    throw new DecodeError(`invalid CloudEvent: ${describeError(error)}`);
  }
  return decoded;
}

function describeError(error: unknown): string {
  if (error instanceof ValidationError) {
    const details = Array.isArray(error.errors)
      ? error.errors.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).join('; ')
      : '';
    return details ? `${error.message}: ${details}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function stringAttribute(event: CloudEvent<unknown>, name: string): string | undefined {
  const value = (event as unknown as Record<string, unknown>)[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function dataObject(event: CloudEvent<unknown>): Record<string, unknown> | undefined {
  let data: unknown = event.data;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {
      throw new DecodeError('event data is not JSON');
    }
  }
  if (data === undefined || data === null) return undefined;
  if (typeof data !== 'object' || Array.isArray(data))
    throw new DecodeError('event data must be a JSON object');
  return data as Record<string, unknown>;
}

function field(object: Record<string, unknown> | undefined, key: string): string | undefined {
  const value = object?.[key];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Picks one value from the extension and the data, refusing a contradiction. */
function agree(
  what: string,
  fromExtension: string | undefined,
  fromData: string | undefined,
): string | undefined {
  if (fromExtension && fromData && fromExtension !== fromData) {
    throw new DecodeError(`event ${what} "${fromExtension}" contradicts its data ("${fromData}")`);
  }
  return fromExtension ?? fromData;
}

/** The workload kind whose rollouts are followed that `kind` and `apiVersion` name, if any. */
function followedKind(kind: string, apiVersion: string | undefined): WorkloadKind | undefined {
  return WORKLOAD_KINDS.find((k) => k.rollout && k.kind === kind && apiVersion === `${k.group}/${k.version}`);
}

/**
 * The config kind (or followed workload kind) an ApiServerSource event names, or why the event is about
 * neither.
 */
function configKindOf(
  event: CloudEvent<unknown>,
  data: Record<string, unknown> | undefined,
): { kind: ConfigRef['kind'] } | { workload: WorkloadKind } | { ignored: string } {
  const kind = agree('kind', stringAttribute(event, 'kind'), field(data, 'kind'));
  const apiVersion = agree('apiversion', stringAttribute(event, 'apiversion'), field(data, 'apiVersion'));
  if (!kind) throw new DecodeError('event names no kind (extension "kind" or data.kind)');
  const workload = followedKind(kind, apiVersion);
  if (workload) return { workload };
  if (kind !== 'ConfigMap' && kind !== 'Secret')
    return {
      ignored: `kind ${kind} is not a ConfigMap or Secret, nor a workload whose rollouts are followed`,
    };
  if (apiVersion && apiVersion !== 'v1') return { ignored: `apiVersion ${apiVersion} of ${kind} is not v1` };
  return { kind };
}

/** The namespace and name an event names (extensions, or the data's coordinates), checked. */
function objectRef<K extends string>(
  event: CloudEvent<unknown>,
  kind: K,
  coordinates: Record<string, unknown> | undefined,
): { kind: K; namespace: string; name: string } {
  const namespace = agree('namespace', stringAttribute(event, 'namespace'), field(coordinates, 'namespace'));
  const name = agree('name', stringAttribute(event, 'name'), field(coordinates, 'name'));
  if (!namespace) throw new DecodeError('event names no namespace (extension "namespace" or data)');
  if (!name) throw new DecodeError('event names no object name (extension "name" or data)');
  if (!isNamespaceName(namespace)) throw new DecodeError(`"${namespace}" is not a valid namespace name`);
  if (!isDnsSubdomain(name)) throw new DecodeError(`"${name}" is not a valid ${kind} name`);
  return { kind, namespace, name };
}

/**
 * Where the object's coordinates are in the data: its metadata in Resource mode (the data is the
 * object), the data itself in Reference mode.
 */
function coordinatesOf(
  data: Record<string, unknown> | undefined,
  mode: 'resource' | 'reference',
): Record<string, unknown> | undefined {
  if (mode === 'reference') return data;
  return data?.metadata && typeof data.metadata === 'object'
    ? (data.metadata as Record<string, unknown>)
    : undefined;
}

/** Turns a validated CloudEvent into a {@link Notice}. Throws {@link DecodeError} on contradictions. */
export function toNotice(event: CloudEvent<unknown>): Notice {
  const info: EventInfo = {
    id: event.id,
    type: event.type,
    source: event.source,
    subject: stringAttribute(event, 'subject'),
  };
  if (event.type === RESYNC_EVENT_TYPE) return { type: 'resync', event: info };
  const match = APISERVER_TYPE.exec(event.type);
  if (!match) return { type: 'ignored', event: info, reason: `event type ${event.type} is not handled` };
  const mode = match[1] === 'ref' ? 'reference' : 'resource';
  const action = match[2] as 'add' | 'update' | 'delete';
  const data = dataObject(event);
  const kind = configKindOf(event, data);
  if ('ignored' in kind) return { type: 'ignored', event: info, reason: kind.ignored };
  if ('workload' in kind) return rolloutNotice(event, info, action, kind.workload, coordinatesOf(data, mode));
  const ref = objectRef(event, kind.kind, coordinatesOf(data, mode));
  return { type: 'change', event: info, action, mode, ref };
}

/** An event about a followed workload: its changes may end a rollout; its deletion ends nothing. */
function rolloutNotice(
  event: CloudEvent<unknown>,
  info: EventInfo,
  action: 'add' | 'update' | 'delete',
  kind: WorkloadKind,
  coordinates: Record<string, unknown> | undefined,
): Notice {
  const { namespace, name } = objectRef(event, kind.kind, coordinates);
  if (action === 'delete')
    return { type: 'ignored', event: info, reason: `${kind.kind} ${namespace}/${name} was deleted` };
  return { type: 'rollout', event: info, ref: { kind, namespace, name } };
}
