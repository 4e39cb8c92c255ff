/** The namespaces the function acts in (`WATCH_NAMESPACES`, resolved at start). */

/** Namespaces the restarter may act in. */
export type NamespaceScope = { all: true } | { all: false; namespaces: string[] };

/** True when `namespace` is inside the scope. */
export function inScope(scope: NamespaceScope, namespace: string): boolean {
  return scope.all || scope.namespaces.includes(namespace);
}

/** Human-readable scope, for messages. */
export function describeScope(scope: NamespaceScope): string {
  return scope.all ? '*' : scope.namespaces.join(',');
}
