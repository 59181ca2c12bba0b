/**
 * Private: who wants to hear that a connection has finished, without a
 * promise reaction per connection. `serve()` keeps its live set with it:
 * `closed.then(forget, forget)` cost each idle connection a promise, two
 * reactions and a closure.
 *
 * @module
 */

/** Called once, when the connection is done (closed or failed). */
export type FinishListener = (connection: object) => void;

/** Listeners by connection; the connection calls and drops its own. */
export const finishListeners: WeakMap<object, FinishListener> = new WeakMap();
