/**
 * {@linkcode WebSocketDuplex}: the whole protocol as one duplex stream,
 * bytes on one side and messages on the other.
 *
 * @module
 */

import {
  TransportWebSocket,
  type WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./connection.ts";

// The bytes for the peer that may wait in `readable` unread.
const BUFFERED_BYTES = 64 * 1024;

/** Options for {@linkcode WebSocketDuplex}: those of a connection. */
export type WebSocketDuplexOptions = WebSocketConnectionOptions;

/**
 * The WebSocket protocol after the opening handshake, as a duplex stream:
 * the peer's bytes go into {@linkcode writable}, the bytes for the peer come
 * out of {@linkcode readable}, and {@linkcode connection} reads and writes
 * messages. It answers pings, completes the close handshake, and inflates
 * and deflates with a negotiated `perMessageDeflate`, as `connect()` does:
 * it is the same connection, over in-memory streams, so any byte pair can
 * carry it with `pipeThrough`.
 *
 * Do the opening handshake first (a client: `generateKey` and
 * `validateServerResponse`; a server: `validateUpgradeRequest` and
 * `serverResponseHead`), then pipe the bytes that follow it through a
 * duplex.
 *
 * Every chunk that comes out of `readable` is the reader's own: nothing
 * writes over it later. Up to 64 KiB of it may wait there unread, as in a
 * socket's send buffer; past that the connection's writes wait for the
 * reader (and `sendTimeout` bounds the wait).
 *
 * @example Two ends of the protocol over in-memory pipes
 * ```ts
 * import { WebSocketDuplex } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const client = new WebSocketDuplex({ role: "client" });
 * const server = new WebSocketDuplex({ role: "server" });
 * // Each end's bytes go to the other: the wire. Its pipes resolve on a
 * // clean close, and reject with the WebSocketError on a failure.
 * const wire = Promise.all([
 *   client.readable.pipeTo(server.writable),
 *   server.readable.pipeTo(client.writable),
 * ]);
 *
 * const writer = client.connection.writable.getWriter();
 * await writer.write("hello");
 * const reader = server.connection.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 *
 * client.connection.close({ closeCode: 1000, reason: "done" });
 * assertEquals(await server.connection.closed, { closeCode: 1000, reason: "done" });
 * assertEquals(await client.connection.closed, { closeCode: 1000, reason: "done" });
 * await wire;
 * ```
 */
export class WebSocketDuplex {
  /** The bytes from the peer, as they arrive (any split). */
  readonly writable: WritableStream<Uint8Array>;
  /** The bytes for the peer: frames, in order. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The messages: `readable`, `writable`, `closed`, `close()`, `ping()`. */
  readonly connection: WebSocketConnection;

  /**
   * Makes the two sides.
   *
   * @param options The role, the handshake's outcome and the limits, as for
   * a {@linkcode WebSocketConnection} from `connect()` or `serve()`.
   * @throws {RangeError | TypeError} For an option out of its range.
   */
  constructor(options: WebSocketDuplexOptions) {
    const inbound = new TransformStream<Uint8Array, Uint8Array>();
    // Like a socket's send buffer: up to 64 KiB of frames wait for a reader
    // of `readable` before the connection's writes wait, so that a close
    // handshake completes before the bytes are read.
    const outbound = new TransformStream<Uint8Array, Uint8Array>(
      undefined,
      undefined,
      { highWaterMark: BUFFERED_BYTES, size: (chunk) => chunk.byteLength },
    );
    const connection = new TransportWebSocket(
      { readable: inbound.readable, writable: outbound.writable },
      options,
    );
    this.connection = connection;
    this.readable = outbound.readable;
    // The connection's end cancels its side of `inbound` (as a server ends
    // TCP first). What is written after that is dropped when the end was
    // clean, so that the pipe feeding this writable resolves, and refused
    // with the connection's error when it failed.
    const forward = inbound.writable.getWriter();
    const afterEnd = () => connection.closed.then(() => {});
    this.writable = new WritableStream<Uint8Array>({
      write(chunk) {
        return forward.write(chunk).catch(afterEnd);
      },
      close() {
        return forward.close().catch(afterEnd);
      },
      abort(reason) {
        return forward.abort(reason).catch(() => {});
      },
    });
  }
}
