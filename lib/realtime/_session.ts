/**
 * Private: a Comet session of `realtime()`, the face of the session engine
 * (`../_comet_session.ts`) that the request/response transports (SSE, long
 * and short polling, iframe) share, and the {@linkcode RealtimeConnection}
 * it hands to the application.
 *
 * The engine's rules with `realtime()`'s knobs:
 *
 * - **Up**: `POST send` carries `{ seq, m: [...] }`, seq from 0; the
 *   queue in `readable` is bounded by `maxQueuedBytes` (a message counts
 *   its length). A value that is not a message fails the session (1007).
 * - **Down**: every message gets an id; a stream or a poll says the last id
 *   it has (`ack`). Sent messages stay in a replay window
 *   (`maxReplayBytes`) until acknowledged; a poll answer holds at most what
 *   fits the window. A request whose ack is older than the window gets a
 *   410 (a stream: a close item, 1006), and the client fails with
 *   `ERR_SESSION_CLOSED`. The session itself goes on (that request may be a
 *   stale retry of a client that is fine) until the client closes it or
 *   `sessionTimeout` passes.
 * - **Bounds** (`admit: "unsent"`): writes wait while the unsent messages
 *   pass `writableHighWaterMark`, for at most `sendTimeout`; a session no
 *   request has touched for `sessionTimeout` (while no stream or poll is
 *   open) ends with `ERR_SESSION_TIMEOUT`; the client answers our close
 *   within `closeTimeout`, or the session fails with `ERR_CLOSE_TIMEOUT`.
 * - **The client's close**: `POST close` with `w: 1` (the client reads on)
 *   is the engine's `closeRequested`: writes fail, the queued messages and
 *   then the close item go down, and the session ends when that item is
 *   taken (or fails after `closeTimeout`); without `w` (an older client)
 *   it ends at once.
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";
import { closeBodyFor } from "../codec/close.ts";
import { WebSocketError } from "../errors.ts";
import { CometSession } from "../_comet_session.ts";
import { fromWire, toWire, type WireMessage, wireSize } from "./_wire.ts";
import type { RealtimeConnection, RealtimeTransport } from "./connection.ts";

/** The bounds of a session; every one has a default in `realtime()`. */
export interface SessionLimits {
  sessionTimeout: number;
  writableHighWaterMark: number;
  maxQueuedBytes: number;
  maxReplayBytes: number;
  sendTimeout: number;
  closeTimeout: number;
}

/**
 * One client's session: the queues the transports read and write, and
 * `connection`, what the application holds (never the engine: its methods,
 * acknowledge, hold, sendAll, …, are the transports', and would break its
 * rules from outside).
 */
export class RealtimeSession extends CometSession<WireMessage> {
  readonly transport: RealtimeTransport;
  /** What the application holds: the documented shape, nothing more. */
  readonly connection: RealtimeConnection;

  #sessionTimeout: number;
  #onEnd: (session: RealtimeSession) => void;

  constructor(
    id: string,
    transport: RealtimeTransport,
    limits: SessionLimits,
    onEnd: (session: RealtimeSession) => void,
  ) {
    super(id, {
      sessionTimeout: limits.sessionTimeout,
      admit: "unsent",
      maxOutbound: limits.writableHighWaterMark,
      sendTimeout: limits.sendTimeout,
      maxReplay: limits.maxReplayBytes,
      maxInbound: limits.maxQueuedBytes,
      closeTimeout: limits.closeTimeout,
    }, (chunk) => Math.max(1, chunk.length));
    this.transport = transport;
    this.connection = {
      readable: this.readable,
      writable: this.writable,
      closed: this.closed,
      transport,
      close: (options) => this.close(options),
    };
    this.#sessionTimeout = limits.sessionTimeout;
    this.#onEnd = onEnd;
  }

  override close(options: { closeCode?: number; reason?: string } = {}): void {
    const { closeCode, reason } = closeBodyFor(options);
    this.sendClose(closeCode ?? 1005, reason);
  }

  protected override encode(
    data: MessageData,
  ): { message: WireMessage; size: number } {
    const message = toWire(data);
    if (message === undefined) {
      throw new TypeError(
        "Cannot send: a message is a string, an ArrayBuffer or a view",
      );
    }
    return { message, size: wireSize(message) + 16 };
  }

  protected override decode(value: unknown): string | Uint8Array | undefined {
    return fromWire(value);
  }

  protected override sendError(): Error {
    return new WebSocketError("Cannot send: the connection is closing", {
      code: "ERR_ABNORMAL_CLOSURE",
    });
  }

  protected override idleError(): WebSocketError {
    return new WebSocketError(
      `Cannot keep session: no request from the client in ${this.#sessionTimeout} ms`,
      { code: "ERR_SESSION_TIMEOUT" },
    );
  }

  protected override readableCancelled(): void {
    this.close();
  }

  protected override ended(): void {
    this.#onEnd(this);
  }
}
