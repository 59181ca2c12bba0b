/**
 * {@linkcode WebSocketStream}: the WHATWG WebSocketStream proposal over
 * {@linkcode connect}, and {@linkcode asWebSocketStream}, the same shape
 * over a server's connection.
 *
 * The proposal: https://websockets.spec.whatwg.org/ ("The WebSocketStream
 * interface", whatwg/websockets PR 48), tested by the web-platform-tests in
 * `websockets/stream/tentative/`.
 *
 * @module
 */

import type {
  WebSocketCloseInfo,
  WebSocketCloseOptions,
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./connection.ts";
import {
  checkProtocols,
  checkRequestHeaders,
  connect,
  type ConnectOptions,
} from "./connect.ts";
import { checkConnectOptions } from "../_options.ts";
import { WebSocketError } from "../errors.ts";

/**
 * What {@linkcode WebSocketStream.opened} resolves with: the same as a
 * connection's `opened`.
 */
export type WebSocketStreamOpenInfo = WebSocketOpenInfo;

/**
 * The shape of the proposal's `WebSocketStream`, shared by the client
 * ({@linkcode WebSocketStream}) and the server
 * ({@linkcode asWebSocketStream}): code written against one runs on both
 * ends.
 */
export interface WebSocketStreamLike {
  /** The connection's URL, serialized. */
  readonly url: string;
  /** Resolves with the streams once open; rejects if it never opens. */
  readonly opened: Promise<WebSocketStreamOpenInfo>;
  /**
   * Resolves with the close code and reason after a clean close; rejects
   * with a {@linkcode WebSocketError} (its `closeCode` the connection's
   * close code) otherwise.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /**
   * Closes with the proposal's checks: see
   * {@linkcode WebSocketStream.close}.
   *
   * @param closeInfo The close code and reason.
   */
  close(closeInfo?: WebSocketCloseOptions): void;
}

/**
 * Options for {@linkcode WebSocketStream}: the proposal's `protocols` and
 * `signal`, and everything else {@linkcode connect} takes (`headers`, TLS
 * CAs, timeouts, limits, permessage-deflate, `credentials`, `dial`).
 */
export type WebSocketStreamOptions = ConnectOptions;

/**
 * A client connection in the shape of the WHATWG WebSocketStream proposal:
 * the constructor starts connecting, {@linkcode opened} gives the streams,
 * {@linkcode closed} the outcome, and {@linkcode close} ends it. It is
 * {@linkcode connect} underneath, with all its options and limits.
 *
 * What it does as the proposal says:
 * - the constructor throws a `SyntaxError` `DOMException` for a URL that
 *   does not parse, a scheme other than `ws:`/`wss:` (`http:`/`https:` are
 *   mapped to them), a fragment, or duplicate or malformed `protocols`;
 * - an aborted `signal` rejects `opened` and `closed` with its reason:
 *   before the constructor (nothing is dialed) or during the handshake
 *   (the attempt is dropped); after `opened` it does nothing;
 * - `close()` during the handshake drops the attempt and rejects both with
 *   a {@linkcode WebSocketError};
 * - `writable.abort(e)` and `readable.cancel(e)` close with `e.closeCode`
 *   and `e.reason` when `e` is a {@linkcode WebSocketError}, else with no
 *   code (the peer sees 1005); `writer.close()` closes with no code;
 * - `closed` rejects with a {@linkcode WebSocketError} after an unclean
 *   close (`closeCode` 1006 for a lost connection, the protocol error's
 *   code after a failure).
 *
 * Where it differs, and why:
 * - `writer.close()` resolves once our close frame is written, not once the
 *   close handshake is done: the streams are the connection's own, shared
 *   with `connect()`; await `closed` for the end;
 * - after a clean close, `writable` refuses writes with a `TypeError`
 *   instead of being errored with an `InvalidStateError`: the underlying
 *   connection keeps its writable unerrored so that
 *   `readable.pipeTo(writable)` resolves on a clean close;
 * - a failure to connect rejects with a {@linkcode WebSocketError} that
 *   says why (`ERR_CONNECTION_REFUSED`, `ERR_DNS`, `ERR_TLS`,
 *   `ERR_HANDSHAKE`, ...) and carries closeCode 1006, where the proposal
 *   gives no detail and a closeCode of `null`;
 * - `close({ code })` (the proposal's old key) throws a `TypeError` rather
 *   than being read as a close with no code.
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
export class WebSocketStream implements WebSocketStreamLike {
  /** The URL being connected to, serialized. */
  readonly url: string;
  /** Resolves once the handshake is done; rejects if it fails. */
  readonly opened: Promise<WebSocketStreamOpenInfo>;
  /**
   * Resolves with the peer's close code and reason after a clean close;
   * rejects otherwise: with a {@linkcode WebSocketError}, the signal's
   * reason after an abort during the handshake.
   */
  readonly closed: Promise<WebSocketCloseInfo>;

  #connection: WebSocketConnection | undefined;
  // Set once opened or closed has been rejected before the connection
  // opened (abort, or close() while connecting).
  #dropped = false;
  #attempt = new AbortController();
  #rejectOpened!: (reason: unknown) => void;
  #rejectClosed!: (reason: unknown) => void;

  /**
   * Starts connecting.
   *
   * @param url A `ws://` or `wss://` URL (`http://` and `https://` are
   * read as those), resolved against `location` when Deno has one.
   * @param options The proposal's `protocols` and `signal`, and everything
   * {@linkcode connect} takes.
   * @throws {DOMException} `SyntaxError` for a URL that does not parse, a
   * scheme other than `ws:`/`wss:`, a fragment, or repeated or malformed
   * protocols.
   * @throws {RangeError | TypeError} For an option out of its range, or not
   * a number, `protocols` that is not an array of strings, or a header
   * that the handshake writes itself (a failure to connect rejects `opened`
   * instead).
   */
  constructor(url: string | URL, options: WebSocketStreamOptions = {}) {
    const target = webSocketUrl(url);
    checkProtocols(
      "create WebSocketStream",
      // WebIDL's sequence<USVString>: each entry converted to a string.
      Array.isArray(options.protocols)
        ? options.protocols.map(String)
        : options.protocols,
      true,
    );
    checkConnectOptions("create WebSocketStream", options);
    checkRequestHeaders("create WebSocketStream", options.headers);
    this.url = target.href;
    const opened = Promise.withResolvers<WebSocketStreamOpenInfo>();
    const closed = Promise.withResolvers<WebSocketCloseInfo>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    this.opened.catch(() => {});
    this.closed.catch(() => {});
    this.#rejectOpened = opened.reject;
    this.#rejectClosed = closed.reject;

    const signal = options.signal;
    if (signal?.aborted) {
      this.#drop(signal.reason);
      return;
    }
    const onAbort = () => this.#drop(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    connect(target, { ...options, signal: this.#attempt.signal }).then(
      (connection) => {
        signal?.removeEventListener("abort", onAbort);
        if (this.#dropped) {
          // Dropped after connect() had already won its race.
          connection.closed.catch(() => {});
          connection.close();
          return;
        }
        this.#connection = connection;
        connection.closed.then(closed.resolve, closed.reject);
        opened.resolve({
          readable: connection.readable,
          writable: connection.writable,
          extensions: connection.extensions,
          protocol: connection.protocol,
        });
      },
      (error) => {
        signal?.removeEventListener("abort", onAbort);
        if (this.#dropped) return;
        opened.reject(error);
        closed.reject(error);
      },
    );
  }

  /**
   * Closes the connection as the proposal's `close()` does: the code must
   * be 1000 or 3000–4999, the reason at most 123 bytes of UTF-8, and a
   * reason alone means 1000; no argument sends a close frame with no code
   * (the peer sees 1005). While connecting, it drops the attempt and
   * rejects `opened` and `closed` with a {@linkcode WebSocketError}
   * (`ERR_ABORTED`). After the first call, it does nothing.
   *
   * @param closeInfo `{ closeCode, reason }`.
   * @throws {DOMException} `InvalidAccessError` for another code,
   * `SyntaxError` for a longer reason.
   * @throws {TypeError} For an argument that is not a dictionary, a
   * `closeCode` that is not a number from 0 to 65535, or the old key `code`.
   */
  close(closeInfo?: WebSocketCloseOptions): void {
    const options = validateCloseInfo(closeInfo);
    if (this.#connection) {
      this.#connection.close(options);
      return;
    }
    this.#drop(
      new WebSocketError(
        `Cannot connect to ${this.url}: close() was called before the handshake finished`,
        { code: "ERR_ABORTED" },
      ),
    );
  }

  // Rejects opened and closed before the connection opened, and drops the
  // attempt.
  #drop(reason: unknown): void {
    if (this.#dropped || this.#connection) return;
    this.#dropped = true;
    this.#rejectOpened(reason);
    this.#rejectClosed(reason);
    this.#attempt.abort(reason);
  }
}

/**
 * The server's end in the shape of the WHATWG `WebSocketStream`: `{ url,
 * opened, closed, close }`, with `opened` resolving to `{ readable,
 * writable, protocol, extensions }`, so that one piece of code serves both
 * ends. It takes a connection from `serve()`, `acceptWebSocket()` or
 * `upgradeWebSocket()` and adds nothing to it: `opened`, the streams, the
 * limits and `closed` are the connection's own, and `url` is its `url`
 * with `http:`/`https:` read as `ws:`/`wss:` (`""` when it has none).
 * `close()` checks its argument as {@linkcode WebSocketStream.close} does
 * (1000 or 3000–4999); `connection.close()` takes any code allowed on the
 * wire, such as 1001 for a server going away.
 *
 * @param connection The server's connection (any `WebSocketConnection`).
 * @returns The connection, seen as a `WebSocketStream`.
 *
 * @example One echo for both ends
 * ```ts
 * import {
 *   asWebSocketStream,
 *   serve,
 *   WebSocketStream,
 *   type WebSocketStreamLike,
 * } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * async function echo(wss: WebSocketStreamLike) {
 *   const { readable, writable } = await wss.opened;
 *   await readable.pipeTo(writable).catch(() => {});
 * }
 * const server = serve(
 *   { port: 0, hostname: "127.0.0.1", onListen() {} },
 *   (connection) => echo(asWebSocketStream(connection)),
 * );
 * const client = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/echo`);
 * const { readable, writable } = await client.opened;
 * const writer = writable.getWriter();
 * await writer.write("both ends");
 * const reader = readable.getReader();
 * assertEquals((await reader.read()).value, "both ends");
 * client.close({ closeCode: 3001 });
 * assertEquals((await client.closed).closeCode, 3001);
 * await server.shutdown();
 * ```
 */
export function asWebSocketStream(
  connection: WebSocketConnection,
): WebSocketStreamLike {
  let url = "";
  if (connection.url !== undefined) {
    const target = new URL(connection.url);
    if (target.protocol === "http:") target.protocol = "ws:";
    if (target.protocol === "https:") target.protocol = "wss:";
    url = target.href;
  }
  return {
    url,
    opened: connection.opened,
    closed: connection.closed,
    close(closeInfo?: WebSocketCloseOptions): void {
      connection.close(validateCloseInfo(closeInfo));
    },
  };
}

// The proposal's "get a URL record": parse (against the base URL, if any),
// map http(s) to ws(s), and refuse other schemes and any fragment, each a
// SyntaxError DOMException.
function webSocketUrl(url: string | URL): URL {
  let base: string | undefined;
  try {
    base = (globalThis as { location?: { href: string } }).location?.href;
  } catch {
    // Deno without --location has no base URL.
  }
  let target: URL;
  try {
    target = new URL(String(url), base);
  } catch {
    throw new DOMException(
      `Cannot create WebSocketStream: ${
        JSON.stringify(String(url))
      } is not a URL`,
      "SyntaxError",
    );
  }
  if (target.protocol === "http:") target.protocol = "ws:";
  else if (target.protocol === "https:") target.protocol = "wss:";
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new DOMException(
      `Cannot create WebSocketStream: the scheme ${target.protocol} is not ws: or wss:`,
      "SyntaxError",
    );
  }
  // A serialized URL has "#" only before its fragment, even an empty one.
  if (target.href.includes("#")) {
    throw new DOMException(
      "Cannot create WebSocketStream: a WebSocket URL has no fragment",
      "SyntaxError",
    );
  }
  return target;
}

/**
 * The proposal's `close(closeInfo)` argument: its WebIDL conversion (a
 * dictionary; `closeCode` an `[EnforceRange] unsigned short`, `reason` a
 * `USVString`), then "validate close code and reason".
 */
function validateCloseInfo(closeInfo: unknown): WebSocketCloseOptions {
  if (closeInfo === undefined || closeInfo === null) return {};
  if (typeof closeInfo !== "object" && typeof closeInfo !== "function") {
    const hint = typeof closeInfo === "number"
      ? `; for close(code, reason), pass { closeCode: ${closeInfo}, reason }`
      : typeof closeInfo === "string"
      ? `; for a reason alone, pass { reason: ${JSON.stringify(closeInfo)} }`
      : "";
    throw new TypeError(
      `Cannot close: the argument must be { closeCode, reason }, not ${
        String(closeInfo)
      }${hint}`,
    );
  }
  const info = closeInfo as { closeCode?: unknown; reason?: unknown };
  if ("code" in info && info.closeCode === undefined) {
    throw new TypeError(
      "Cannot close: the key is closeCode, not code; pass { closeCode, reason }",
    );
  }
  let closeCode: number | undefined;
  if (info.closeCode !== undefined) {
    const n = Number(info.closeCode);
    if (!Number.isFinite(n) || Math.trunc(n) < 0 || Math.trunc(n) > 65535) {
      throw new TypeError(
        `Cannot close: closeCode must be a number from 0 to 65535, not ${
          String(info.closeCode)
        }`,
      );
    }
    closeCode = Math.trunc(n);
  }
  const reason = info.reason === undefined
    ? ""
    : String(info.reason).toWellFormed();
  if (
    closeCode !== undefined &&
    closeCode !== 1000 && !(closeCode >= 3000 && closeCode <= 4999)
  ) {
    throw new DOMException(
      `Cannot close: code ${closeCode} is neither 1000 nor in 3000-4999`,
      "InvalidAccessError",
    );
  }
  const bytes = new TextEncoder().encode(reason).length;
  if (bytes > 123) {
    throw new DOMException(
      `Cannot close: the reason takes ${bytes} bytes of UTF-8, over 123`,
      "SyntaxError",
    );
  }
  if (closeCode === undefined) {
    return reason === "" ? {} : { closeCode: 1000, reason };
  }
  return { closeCode, reason };
}
