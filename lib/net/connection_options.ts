/**
 * The options and result types of `WebSocketConnection`, apart
 * from the class: what a user sets, with each default.
 *
 * @module
 */

import type { MessageLimits } from "../codec/assembler.ts";
import type { Role } from "../codec/frame.ts";
import type { NegotiatedDeflate } from "../deflate/negotiate.ts";

/** How a connection ended cleanly: the close code and reason received. */
export interface WebSocketCloseInfo {
  /** The code of the peer's close frame; 1005 when it carried none. */
  closeCode: number;
  /** The reason of the peer's close frame; `""` when none. */
  reason: string;
}

/** What `WebSocketConnection.close` sends. */
export interface WebSocketCloseOptions {
  /**
   * The close code: 1000, or any other code allowed on the wire.
   *
   * @default {1000 when a reason is given, else no code (the peer sees 1005)}
   */
  closeCode?: number;
  /**
   * The reason, at most 123 bytes of UTF-8.
   *
   * @default {""}
   */
  reason?: string;
}

/** Automatic pings that fail a dead peer. */
export interface HeartbeatOptions {
  /** Milliseconds between pings. */
  interval: number;
  /** Milliseconds to wait for each pong before failing the connection. */
  timeout: number;
}

/** Options for `WebSocketConnection`. */
export interface WebSocketConnectionOptions extends MessageLimits {
  /** Which end this is: it decides masking (RFC 6455 §5.1). */
  role: Role;
  /**
   * The largest frame accepted, in bytes.
   *
   * @default {33554432 (32 MiB)}
   */
  maxFrameSize?: number;
  /**
   * The subprotocol the handshake settled on.
   *
   * @default {""}
   */
  protocol?: string;
  /**
   * The extensions the handshake settled on.
   *
   * @default {""}
   */
  extensions?: string;
  /**
   * Bytes already read past the handshake: the start of the first frames.
   *
   * @default {none}
   */
  head?: Uint8Array;
  /**
   * Milliseconds to wait for the peer's half of the close handshake, and for
   * a server to end TCP after it. Past it the transport is closed and
   * `closed` rejects with `ERR_CLOSE_TIMEOUT`.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * Milliseconds that bytes may wait for the transport to take any of them
   * (a peer that stops reading, with the kernel's buffers full). Past it
   * the transport is closed and `closed` rejects with `ERR_SEND_TIMEOUT`.
   * A stall is seen between one and two times this after it starts.
   *
   * @default {30000}
   */
  sendTimeout?: number;
  /**
   * The bytes of received messages that may wait unread in `readable`
   * before the connection stops reading from the transport. In-process
   * buffering of a flood stays below this plus one read (64 KiB; inside a
   * frame with 256 KiB or more still to come, reads go straight into the
   * message's buffer) plus one message being assembled.
   *
   * @default {1048576 (1 MiB)}
   */
  readableHighWaterMark?: number;
  /**
   * The bytes that may wait to be written before `writer.write()` waits for
   * the transport to take them. 0 makes every write wait for the socket.
   * While writes wait, the writable's own queue holds up to
   * `min(writableHighWaterMark, 64 KiB)` more before `writer.ready` waits.
   *
   * @default {1048576 (1 MiB)}
   */
  writableHighWaterMark?: number;
  /**
   * Split outgoing data messages into frames of at most this many bytes.
   *
   * @default {Infinity (one frame per message)}
   */
  fragmentSize?: number;
  /**
   * Ping the peer every `interval` ms and fail the connection (closed
   * rejects with `ERR_HEARTBEAT_TIMEOUT`) when a pong is not back within
   * `timeout` ms.
   *
   * @default {off}
   */
  heartbeat?: HeartbeatOptions;
  /**
   * permessage-deflate as the handshake negotiated it (`connect`,
   * `acceptWebSocket` and `serve` fill it in). With it, RSV1 messages are
   * inflated, with `maxMessageSize` bounding the inflated size, and
   * messages of at least `threshold` bytes are sent compressed.
   *
   * @default {none (no compression)}
   */
  perMessageDeflate?: NegotiatedDeflate;
  /**
   * Let a binary message of up to 512 bytes (and a ping or pong payload)
   * be a view into a 2 KiB `ArrayBuffer` it shares with this connection's
   * earlier small messages, as Node's `Buffer` pool and `ws` do, instead of
   * owning an `ArrayBuffer`. In Deno a fresh `ArrayBuffer` costs about
   * 280 ns, a quarter of the JS work of echoing a small message.
   *
   * The message's bytes are its own either way: nothing is written over
   * them later. But its `buffer` is larger than it, starts at `byteOffset`,
   * and holds the connection's other messages; transferring that buffer
   * (`postMessage(data, [data.buffer])`) detaches them too. Transfer a
   * `slice()`, or set `false`.
   *
   * @default {true}
   */
  shareBuffers?: boolean;
}
