/**
 * {@linkcode WebSocketStream}: the WHATWG WebSocketStream shape over
 * {@linkcode connect}, for code written against that proposal.
 *
 * @module
 */

import type {
  WebSocketCloseInfo,
  WebSocketCloseOptions,
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./connection.ts";
import { connect, type ConnectOptions } from "./connect.ts";
import { checkConnectOptions } from "../_options.ts";
import { closeBodyFor } from "../codec/close.ts";

/**
 * What {@linkcode WebSocketStream.opened} resolves with: the same as a
 * connection's `opened`.
 */
export type WebSocketStreamOpenInfo = WebSocketOpenInfo;

/**
 * A client connection in the shape of the WHATWG WebSocketStream: the
 * constructor starts connecting, `opened` gives the streams, `closed` the
 * outcome, and `close()` ends it. It is {@linkcode connect} underneath, with
 * all its options and limits.
 *
 * @example Open, send, close
 * ```ts
 * import { serve, WebSocketStream } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}`);
 * const { readable, writable } = await wss.opened;
 * const writer = writable.getWriter();
 * await writer.write("ping");
 * const reader = readable.getReader();
 * assertEquals((await reader.read()).value, "ping");
 * wss.close({ closeCode: 1000, reason: "done" });
 * assertEquals(await wss.closed, { closeCode: 1000, reason: "done" });
 * await server.shutdown();
 * ```
 */
export class WebSocketStream {
  /** The URL being connected to. */
  readonly url: string;
  /** Resolves once the handshake is done; rejects if it fails. */
  readonly opened: Promise<WebSocketStreamOpenInfo>;
  /**
   * Resolves with the peer's close code and reason after a clean close;
   * rejects with a `WebSocketError` otherwise (the handshake's own error when
   * it never opened).
   */
  readonly closed: Promise<WebSocketCloseInfo>;

  #connection: WebSocketConnection | undefined;
  #pendingClose: WebSocketCloseOptions | undefined;
  #abort = new AbortController();

  /**
   * Starts connecting.
   *
   * @param url A `ws://` or `wss://` URL.
   * @param options Everything {@linkcode connect} takes; `protocols` as in
   * the WHATWG constructor.
   * @throws {RangeError | TypeError} For an option out of its range, or not
   * a number (a failure to connect rejects `opened` instead).
   */
  constructor(url: string | URL, options: ConnectOptions = {}) {
    checkConnectOptions("create WebSocketStream", options);
    this.url = String(url);
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    const connecting = connect(url, { ...options, signal });
    this.opened = connecting.then((connection) => {
      this.#connection = connection;
      if (this.#pendingClose) connection.close(this.#pendingClose);
      return {
        readable: connection.readable,
        writable: connection.writable,
        protocol: connection.protocol,
        extensions: connection.extensions,
      };
    });
    this.closed = connecting.then((connection) => connection.closed);
    this.opened.catch(() => {});
    this.closed.catch(() => {});
  }

  /**
   * Closes the connection; while still connecting, abandons the attempt.
   *
   * @param options The close code and reason.
   * @throws {TypeError | RangeError} For arguments `close()` refuses (see
   * `closeBodyFor`), even while connecting.
   */
  close(options: WebSocketCloseOptions = {}): void {
    // Now: a close asked for while connecting is sent only once open.
    closeBodyFor(options);
    if (this.#connection) {
      this.#connection.close(options);
    } else {
      this.#pendingClose = options;
      this.#abort.abort();
    }
  }
}
