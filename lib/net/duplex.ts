/**
 * {@linkcode WebSocketDuplex}: the whole protocol as one duplex stream,
 * bytes on one side and messages on the other.
 *
 * @module
 */

import {
  WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./connection.ts";

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
 * writes over it later.
 *
 * @example Two ends of the protocol over in-memory pipes
 * ```ts
 * import { WebSocketDuplex } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const client = new WebSocketDuplex({ role: "client" });
 * const server = new WebSocketDuplex({ role: "server" });
 * // Each end's bytes go to the other: the wire.
 * client.readable.pipeTo(server.writable).catch(() => {});
 * server.readable.pipeTo(client.writable).catch(() => {});
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
   * a {@linkcode WebSocketConnection}.
   * @throws {RangeError | TypeError} For an option out of its range.
   */
  constructor(options: WebSocketDuplexOptions) {
    const inbound = new TransformStream<Uint8Array, Uint8Array>();
    const outbound = new TransformStream<Uint8Array, Uint8Array>();
    this.writable = inbound.writable;
    this.readable = outbound.readable;
    this.connection = new WebSocketConnection(
      { readable: inbound.readable, writable: outbound.writable },
      options,
    );
  }
}
