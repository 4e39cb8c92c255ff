/**
 * Builds HTTP requests in exactly the wire format of the Knative ApiServerSource adapter
 * (knative.dev/eventing v0.49.2, pkg/adapter/apiserver/events): binary content mode, ce-* headers,
 * the `kind`/`apiversion`/`name`/`namespace` extensions and a `Kn-Namespace` header.
 */
import { randomUUID } from 'node:crypto';

/** ApiServerSource actions. */
export type ApiServerAction = 'add' | 'update' | 'delete';
/** ApiServerSource modes. */
export type ApiServerMode = 'Reference' | 'Resource';

/** An HTTP request ready to send. */
export interface WireRequest {
  headers: Record<string, string>;
  body: string;
}

/** The object an event is about: at least apiVersion, kind and metadata.name/namespace. */
export interface EventObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** Options of {@link apiServerSourceRequest}. */
export interface ApiServerEventOptions {
  action: ApiServerAction;
  mode: ApiServerMode;
  object: EventObject;
  /** ce-source: the API server URL the adapter talks to. */
  source?: string;
  /** ce-id: a new UUID unless given (a retry resends the same id). */
  id?: string;
  /** Value of the Kn-Namespace header: the adapter's namespace. */
  adapterNamespace?: string;
  time?: Date;
}

const PLURALS: Record<string, string> = { ConfigMap: 'configmaps', Secret: 'secrets' };

/** `/apis/<apiVersion>/namespaces/<ns>/<plural>/<name>`, as the adapter writes it (core kinds too). */
export function subjectOf(object: EventObject): string {
  const plural = PLURALS[object.kind] ?? `${object.kind.toLowerCase()}s`;
  return `/apis/${object.apiVersion}/namespaces/${object.metadata.namespace}/${plural}/${object.metadata.name}`;
}

/** Builds the request the adapter would send for `object`. */
export function apiServerSourceRequest(options: ApiServerEventOptions): WireRequest {
  const { object } = options;
  const prefix = options.mode === 'Reference' ? 'ref' : 'resource';
  const data =
    options.mode === 'Reference'
      ? {
          kind: object.kind,
          namespace: object.metadata.namespace,
          name: object.metadata.name,
          apiVersion: object.apiVersion,
        }
      : object;
  return {
    headers: {
      'ce-specversion': '1.0',
      'ce-type': `dev.knative.apiserver.${prefix}.${options.action}`,
      'ce-source': options.source ?? 'https://10.96.0.1:443',
      'ce-subject': subjectOf(object),
      'ce-id': options.id ?? randomUUID(),
      'ce-time': (options.time ?? new Date()).toISOString(),
      'ce-kind': object.kind,
      'ce-apiversion': object.apiVersion,
      'ce-name': object.metadata.name,
      'ce-namespace': object.metadata.namespace,
      'Content-Type': 'application/json',
      'Kn-Namespace': options.adapterNamespace ?? object.metadata.namespace,
    },
    body: JSON.stringify(data),
  };
}

/** Builds a resync request as a Knative PingSource sends it (binary mode, type dev.knative.sources.ping). */
export function pingSourceRequest(
  options: { namespace?: string; name?: string; id?: string; data?: unknown } = {},
): WireRequest {
  const namespace = options.namespace ?? 'helloworld';
  const name = options.name ?? 'config-restarter-resync';
  return {
    headers: {
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.sources.ping',
      'ce-source': `/apis/v1/namespaces/${namespace}/pingsources/${name}`,
      'ce-id': options.id ?? randomUUID(),
      'ce-time': new Date().toISOString(),
      'Content-Type': 'application/json',
    },
    body: JSON.stringify(options.data ?? { reason: 'resync' }),
  };
}
