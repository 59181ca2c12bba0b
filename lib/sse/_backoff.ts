/**
 * Private: how long a client waits before it reconnects. Shared by the
 * server-sent events client and the polling client.
 *
 * @module
 */

// setTimeout's largest delay: a longer one fires at once.
const MAX_DELAY = 2 ** 31 - 1;
/** The most jitter added, as a fraction of the delay. */
export const JITTER = 0.25;

/**
 * The wait before a reconnection: the server's reconnection time after a
 * stream that worked (`failures` 0), doubled for each attempt since that
 * failed, at most `cap` (but never below `base`: the server's `retry`
 * is a floor), plus up to 25% random jitter so that clients dropped at
 * once do not all come back at once.
 *
 * @param base The reconnection time in milliseconds.
 * @param failures Attempts that failed since the last stream that worked.
 * @param cap The most the doubling may reach.
 * @param random A number in [0, 1).
 * @returns The delay in milliseconds, at most 2^31 - 1.
 */
export function reconnectDelay(
  base: number,
  failures: number,
  cap: number,
  random: number,
): number {
  const ceiling = Math.max(base, cap);
  const delay = Math.min(ceiling, base * 2 ** Math.min(failures, 52));
  return Math.min(MAX_DELAY, Math.round(delay * (1 + JITTER * random)));
}

/**
 * Waits `ms`, or rejects with the signal's reason when it aborts; the
 * timer is cleared either way.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
