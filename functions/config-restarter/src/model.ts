/**
 * The small slice of Kubernetes object shapes the function reads. Everything is optional because
 * the data comes from the network; the pure code checks before it trusts.
 */
import type { ConfigKind } from './config.js';

/** One `metadata.managedFields` entry, as far as it is read (see last-write.ts). */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  subresource?: string;
}

/** Object metadata fields the function uses. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion?: string; kind?: string; name?: string; controller?: boolean }[];
  /** Who wrote which fields (see last-write.ts). */
  managedFields?: ManagedFieldsEntry[];
}

/** Any Kubernetes object, as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [key: string]: unknown;
}

/** A ConfigMap or Secret as read from the API server. */
export interface ConfigObject extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
  type?: string;
}

/** Identifies a ConfigMap or Secret. */
export interface ConfigRef {
  kind: ConfigKind;
  namespace: string;
  name: string;
}

/** Identifies a workload. */
export interface WorkloadRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

/** The `items` of a volume or projected source: only these keys are mounted. */
export type KeyItems = { key?: string }[];

/** The pieces of a pod spec that can reference configuration. */
export interface PodSpecLike {
  volumes?: {
    configMap?: { name?: string; items?: KeyItems };
    secret?: { secretName?: string; items?: KeyItems };
    projected?: {
      sources?: {
        configMap?: { name?: string; items?: KeyItems };
        secret?: { name?: string; items?: KeyItems };
      }[];
    };
  }[];
  containers?: ContainerLike[];
  initContainers?: ContainerLike[];
  ephemeralContainers?: ContainerLike[];
  imagePullSecrets?: { name?: string }[];
}

/** The pieces of a container that can reference configuration. */
export interface ContainerLike {
  envFrom?: { configMapRef?: { name?: string }; secretRef?: { name?: string } }[];
  env?: {
    valueFrom?: {
      configMapKeyRef?: { name?: string; key?: string };
      secretKeyRef?: { name?: string; key?: string };
    };
  }[];
}

/** A pod template: metadata + spec. */
export interface PodTemplateLike {
  metadata?: ObjectMeta;
  spec?: PodSpecLike;
}

/** `Kind namespace/name`, for messages. */
export function describeRef(ref: { kind: string; namespace: string; name: string }): string {
  return `${ref.kind} ${ref.namespace}/${ref.name}`;
}
