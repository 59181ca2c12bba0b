/**
 * {@linkcode RealtimeConnection}: the one connection shape of `realtime()`
 * and `connectRealtime()`, whichever transport carries it.
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";

/**
 * The transports, in the order of the seed's table: the WebSocket itself
 * and the four Comet techniques that came before it.
 *
 * - `"websocket"`: RFC 6455, full duplex on one TCP connection.
 * - `"sse"`: server-sent events down one long response; messages up by
 *   `POST`.
 * - `"long-polling"`: a `GET` the server holds until it has messages (or
 *   `pollTimeout`), then answers; the client asks again at once.
 * - `"polling"`: a `GET` answered at once, repeated every `pollInterval`.
 * - `"iframe"`: a hidden iframe whose HTML document streams one `<script>`
 *   per message (the "forever frame"); messages up by `POST`.
 */
export type RealtimeTransport =
  | "websocket"
  | "sse"
  | "long-polling"
  | "polling"
  | "iframe";

/** Every transport, in the order `connectRealtime()` tries them. */
export const REALTIME_TRANSPORTS: readonly RealtimeTransport[] = [
  "websocket",
  "sse",
  "long-polling",
  "polling",
  "iframe",
];

/** How a connection ended cleanly: the WHATWG `WebSocketCloseInfo`. */
export interface RealtimeCloseInfo {
  /** The close code. */
  closeCode: number;
  /** The close reason. */
  reason: string;
}

/**
 * An open connection over any transport: messages in on `readable`,
 * messages out on `writable`, the end on `closed`. The names (and the
 * meaning of each) are those of the package's `WebSocketConnection`, so
 * that application code does not change when a fallback kicks in.
 */
export interface RealtimeConnection {
  /** Received messages, in order, each once: a string or a `Uint8Array`. */
  readonly readable: ReadableStream<string | Uint8Array>;
  /** Messages to send: a string as text, an `ArrayBuffer` or view as binary. */
  readonly writable: WritableStream<MessageData>;
  /**
   * Resolves with the peer's close code and reason after a clean close;
   * rejects with a `WebSocketError` otherwise.
   */
  readonly closed: Promise<RealtimeCloseInfo>;
  /** The transport that carries this connection. */
  readonly transport: RealtimeTransport;
  /**
   * Starts the close (RFC 6455's close handshake, or its Comet equivalent).
   * Calling it again does nothing.
   *
   * @param options The close code (1000 or 3000–4999) and a reason of at
   * most 123 bytes.
   */
  close(options?: { closeCode?: number; reason?: string }): void;
}
