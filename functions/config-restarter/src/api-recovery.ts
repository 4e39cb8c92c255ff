/**
 * A kube-apiserver that has just started (a restart, a control-plane upgrade) serves requests before its
 * RBAC informers have synced, and until then denies them with 403 (`RBAC: role ... not found`). Such a 403
 * says nothing about the Roles, so one that comes shortly after the API server was unavailable is taken as
 * part of the outage (retry later) instead of a denial no retry fixes. kube.ts keeps one of these per client.
 */

/** How long after the API server was last unavailable a 403 still counts as part of the outage. */
export const RECOVERY_GRACE_MS = 30_000;

/** Whether an answer status means the API server was unavailable (no answer, 429, 5xx). */
export function unavailable(status: number): boolean {
  return status === 0 || status === 429 || status >= 500;
}

/** Remembers when the API server was last unavailable, to tell a recovering server's 403 from RBAC's. */
export class ApiRecovery {
  private lastUnavailableAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly graceMs = RECOVERY_GRACE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Notes the status of an answer (0 when none came). */
  saw(status: number): void {
    if (unavailable(status)) this.lastUnavailableAt = this.now();
  }

  /** A 403 now is taken as the recovering server's, not as an RBAC denial. */
  recovering(): boolean {
    return this.now() - this.lastUnavailableAt <= this.graceMs;
  }
}
