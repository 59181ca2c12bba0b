/**
 * Private: one deadline for a multi-step wait (a Comet client's close:
 * deliver what was written, then the close handshake), as an AbortSignal
 * that every step shares, so that the steps need no arithmetic on what is
 * left of it.
 *
 * @module
 */

/** A signal that aborts once `ms` have passed; `clear()` stops its timer. */
export interface Deadline {
  readonly signal: AbortSignal;
  clear(): void;
}

/**
 * Starts a deadline.
 *
 * @param ms Milliseconds until the signal aborts.
 * @returns The signal, and `clear()`, to call when the wait is over.
 */
export function deadline(ms: number): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, ms));
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/**
 * Whether `promise` settles before `signal` aborts (false once it has).
 *
 * @param promise What is waited for; its outcome is not looked at.
 * @param signal The deadline's signal.
 * @returns True if `promise` settled first.
 */
export function before(
  promise: Promise<unknown>,
  signal: AbortSignal,
): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    const settled = () => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}
