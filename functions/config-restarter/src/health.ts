/**
 * Readiness of the process. It starts ready and goes not-ready for good once shutdown begins, so the
 * platform stops sending new requests while in-flight ones finish.
 */
export class HealthState {
  #shuttingDown = false;

  /** True until {@link HealthState.beginShutdown} was called. */
  get ready(): boolean {
    return !this.#shuttingDown;
  }

  /** True once shutdown began. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Marks the process as draining: readiness answers 503 from now on. */
  beginShutdown(): void {
    this.#shuttingDown = true;
  }
}
