/**
 * {@linkcode WebSocketConnection}: the one shape of an open connection,
 * whichever face made it.
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";
import type {
  WebSocketCloseInfo,
  WebSocketCloseOptions,
} from "./connection_options.ts";

/**
 * What {@linkcode WebSocketConnection.opened} resolves with: the streams and
 * what the handshake settled on, as the WHATWG WebSocketStream's `opened`.
 */
export interface WebSocketOpenInfo {
  /** Received messages: a string per text message, a `Uint8Array` per binary one. */
  readable: ReadableStream<string | Uint8Array>;
  /** Messages to send: a string as text, an `ArrayBuffer` or a view as binary. */
  writable: WritableStream<MessageData>;
  /** The subprotocol the handshake settled on, or `""`. */
  protocol: string;
  /** The extensions the handshake settled on, or `""`. */
  extensions: string;
}

/**
 * An open WebSocket connection, as every face hands it out: `connect()`,
 * `serve()`, `acceptWebSocket()` and `WebSocketDuplex` (the protocol run by
 * this library on a byte transport), and `upgradeWebSocket()` (Deno's
 * native socket under `Deno.serve`, behind the same streams). The names are
 * the WHATWG WebSocketStream's.
 *
 * Where the two kinds differ, the member says so: under `upgradeWebSocket`,
 * {@linkcode WebSocketConnection.ping} rejects with a `TypeError` (Deno's
 * server socket has no ping API), and
 * {@linkcode WebSocketConnection.remoteAddr} is `undefined`.
 *
 * @example The same echo for every face
 * ```ts
 * import {
 *   connect,
 *   serve,
 *   upgradeWebSocket,
 *   type WebSocketConnection,
 * } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * function echo(connection: WebSocketConnection): void {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * }
 *
 * const ours = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, echo);
 * const native = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
 *   const { response, connection } = upgradeWebSocket(request);
 *   echo(connection);
 *   return response;
 * });
 * for (const port of [ours.addr.port, native.addr.port]) {
 *   const client = await connect(`ws://127.0.0.1:${port}/`);
 *   const { readable, writable } = await client.opened;
 *   const writer = writable.getWriter();
 *   const reader = readable.getReader();
 *   await writer.write("hello");
 *   assertEquals((await reader.read()).value, "hello");
 *   reader.releaseLock();
 *   writer.releaseLock();
 *   client.close({ closeCode: 1000 });
 *   await client.closed;
 * }
 * await ours.shutdown();
 * await native.shutdown();
 * ```
 */
export interface WebSocketConnection {
  /**
   * Received messages: a string per text message, a `Uint8Array` per binary
   * one. A failure takes effect after the messages before it. Cancelling it
   * closes the connection (with the reason's `closeCode` when the reason is
   * a `WebSocketError`).
   */
  readonly readable: ReadableStream<string | Uint8Array>;
  /**
   * Messages to send: a string as text, an `ArrayBuffer` or a view as
   * binary. `write()` waits while {@linkcode bufferedAmount} is past the
   * `writableHighWaterMark`. A clean close does not error it, so
   * `readable.pipeTo(writable)` resolves when the peer closes cleanly.
   */
  readonly writable: WritableStream<MessageData>;
  /**
   * Resolves with the streams, the subprotocol and the extensions once the
   * connection is open. A connection from `connect()`, `serve()`,
   * `acceptWebSocket()` or `WebSocketDuplex` is open when it is handed out,
   * so this is already resolved; under `upgradeWebSocket()` it resolves when
   * Deno opens the socket, and rejects (`ERR_HANDSHAKE`) if it never does.
   */
  readonly opened: Promise<WebSocketOpenInfo>;
  /**
   * Resolves with the peer's close code and reason after a clean close
   * handshake; rejects with a `WebSocketError` otherwise (1006 for an end
   * without one).
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /** The subprotocol the handshake settled on, or `""`. */
  readonly protocol: string;
  /**
   * The extensions the handshake settled on, or `""` (always `""` under
   * `upgradeWebSocket()`: Deno negotiates none).
   */
  readonly extensions: string;
  /**
   * The URL of the connection: the one dialed for `connect()`, the
   * request's URL for `serve()`, `acceptWebSocket()` and
   * `upgradeWebSocket()`. `undefined` for a `WebSocketDuplex`, which has no
   * handshake of its own.
   */
  readonly url: string | undefined;
  /**
   * The peer's address, where the connection runs on a `Deno.Conn`
   * (`connect()` without `dial`, `serve()`, `acceptWebSocket()` given a
   * `Deno.Conn`). `undefined` over a byte pair (`dial`, a `node:http`
   * socket, `WebSocketDuplex`) and under `upgradeWebSocket()`, whose
   * request does not carry it: take `info.remoteAddr` from the `Deno.serve`
   * handler there.
   */
  readonly remoteAddr: Deno.Addr | undefined;
  /** The bytes queued to send and not yet taken by the transport. */
  readonly bufferedAmount: number;
  /**
   * Starts the close handshake (RFC 6455 §7.1.2). Calling it again does
   * nothing; await {@linkcode closed} for the outcome.
   *
   * @param options The close code and reason.
   * @throws {RangeError} For a code not allowed on the wire, or a reason
   * over 123 bytes.
   * @throws {TypeError} For an argument in another shape (the browser's
   * `close(1000, "bye")` or `{ code }`).
   */
  close(options?: WebSocketCloseOptions): void;
  /**
   * Sends a ping and resolves with the round-trip time in milliseconds when
   * its pong comes back (RFC 6455 §5.5.2).
   *
   * Under `upgradeWebSocket()` it rejects with a `TypeError`: Deno's
   * native server socket gives no ping API (Deno pings on its own, see the
   * `idleTimeout` option).
   *
   * @param data At most 125 bytes of payload; 8 random bytes when omitted.
   * @returns The round-trip time in milliseconds.
   */
  ping(data?: Uint8Array): Promise<number>;
}
