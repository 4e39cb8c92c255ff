/**
 * The Kubernetes name rules the function checks before it trusts a name: namespaces, object names,
 * annotation prefixes and label keys (the API server's own validation, restated).
 */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// DNS subdomain: object names, and the prefix before "/" of annotation and label keys.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Label key: optional DNS-subdomain prefix, then a name of up to 63 characters.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** True when `value` is a DNS subdomain (an object name, an annotation prefix). */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

/** True when `value` is a valid Kubernetes namespace name. */
export function isNamespaceName(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

/** True when `value` is a valid Kubernetes label key (`[prefix/]name`). */
export function isLabelKey(value: string): boolean {
  const slash = value.lastIndexOf('/');
  const prefix = slash >= 0 ? value.slice(0, slash) : undefined;
  const name = slash >= 0 ? value.slice(slash + 1) : value;
  if (prefix !== undefined && !isDnsSubdomain(prefix)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}
