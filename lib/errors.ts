/**
 * The one error type of the library, and the table of its stable codes.
 *
 * @module
 */

import { truncateUtf8 } from "./codec/utf8.ts";

/**
 * Every stable error code, with the close code it fails the connection with
 * and what it means. The codes are part of the public API: they never change
 * meaning, and new ones are only added.
 *
 * | code | close code | meaning |
 * | --- | ---: | --- |
 * | `ERR_RESERVED_OPCODE` | 1002 | a frame used a reserved opcode (0x3–0x7, 0xB–0xF) |
 * | `ERR_UNEXPECTED_RSV` | 1002 | an RSV bit was set that no negotiated extension allows |
 * | `ERR_EXPECTED_MASK` | 1002 | a server received an unmasked frame |
 * | `ERR_UNEXPECTED_MASK` | 1002 | a client received a masked frame |
 * | `ERR_CONTROL_FRAME_TOO_LONG` | 1002 | a control frame carried more than 125 bytes |
 * | `ERR_FRAGMENTED_CONTROL_FRAME` | 1002 | a control frame had FIN clear |
 * | `ERR_INVALID_PAYLOAD_LENGTH` | 1002 | a 64-bit payload length had its most significant bit set |
 * | `ERR_FRAME_TOO_LARGE` | 1009 | a frame's declared length exceeds `maxFrameSize` |
 * | `ERR_MESSAGE_TOO_LARGE` | 1009 | a message exceeds `maxMessageSize`; `connectPolling()` and `connectRealtime()`: a written message cannot fit one request body (`maxBodySize`, `maxRequestBytes`) |
 * | `ERR_TOO_MANY_FRAGMENTS` | 1009 | a message has more than `maxFragments` frames |
 * | `ERR_UNEXPECTED_CONTINUATION` | 1002 | a continuation frame arrived with no message open |
 * | `ERR_EXPECTED_CONTINUATION` | 1002 | a new data frame arrived inside an unfinished message |
 * | `ERR_INVALID_UTF8` | 1007 | a text message or close reason is not valid UTF-8 |
 * | `ERR_INVALID_COMPRESSED_DATA` | 1007 | a permessage-deflate message did not inflate (RFC 7692 §8) |
 * | `ERR_INVALID_CLOSE_CODE` | 1002 | a close frame carried a code that is not allowed on the wire |
 * | `ERR_INVALID_CLOSE_BODY` | 1002 | a close frame carried a 1-byte body |
 * | `ERR_TRUNCATED_FRAME` | 1002 | the byte stream ended inside a frame |
 * | `ERR_TRUNCATED_MESSAGE` | 1002 | the frame stream ended inside a fragmented message |
 * | `ERR_HANDSHAKE` | 1006 | the opening handshake failed; the message says why (a refused one is a {@linkcode WebSocketHandshakeError} with the HTTP `status`) |
 * | `ERR_HANDSHAKE_TIMEOUT` | 1006 | the opening handshake took longer than its timeout |
 * | `ERR_CONNECTION_REFUSED` | 1006 | nothing listens at the URL's host and port (the TCP connect was refused) |
 * | `ERR_DNS` | 1006 | the URL's host name did not resolve |
 * | `ERR_TLS` | 1015 | the TLS handshake of a `wss://` URL failed (for example a certificate the client does not trust) |
 * | `ERR_UPGRADE_REQUIRED` | 1006 | `upgradeWebSocket`: the request is not a WebSocket upgrade; a {@linkcode WebSocketHandshakeError} whose `toResponse()` is the 426 to answer with |
 * | `ERR_ABORTED` | 1006 | the caller's `AbortSignal` ended the connection attempt |
 * | `ERR_ABNORMAL_CLOSURE` | 1006 | the transport ended without a close handshake |
 * | `ERR_CLOSE_TIMEOUT` | 1006 | the peer did not finish the close handshake in `closeTimeout`; `connectRealtime()` and `connectPolling()`: the server had not taken all that was written before `close()` within `closeTimeout` |
 * | `ERR_HEARTBEAT_TIMEOUT` | 1006 | the peer did not answer a heartbeat ping in time |
 * | `ERR_SEND_TIMEOUT` | 1006 | the transport took none of our bytes for `sendTimeout` (a peer that stops reading) |
 * | `ERR_INVALID_MESSAGE` | 1011 | the application wrote a value that is not a message (a string, an `ArrayBuffer` or a view) |
 * | `ERR_INBOUND_QUEUE_FULL` | 1008 | `upgradeWebSocket`: unread messages passed `maxQueuedBytes` (a socket that cannot pause) |
 * | `ERR_EVENT_TOO_LARGE` | 1009 | server-sent events: an event (its data plus the line being read) passed `maxEventSize` |
 * | `ERR_EVENT_STREAM` | 1006 | server-sent events: the server answered with a status other than 200 or a type other than `text/event-stream`, so the client does not reconnect |
 * | `ERR_SESSION_TIMEOUT` | 1006 | polling server and `realtime()`: the client made no request (and had no stream open) for `sessionTimeout` |
 * | `ERR_SESSION_CLOSED` | 1006 | polling client and `connectRealtime()`: the server no longer knows the session (it timed out or ended), or `maxRetries` requests in a row failed, or messages left `realtime()`'s replay window before the client had them |
 * | `ERR_NO_TRANSPORT` | 1006 | `connectRealtime()`: every transport failed or timed out; the error's `cause` lists why |
 * | `ERR_BODY_TOO_LARGE` | 1009 | `serve`: a plain HTTP request body passed `maxBodySize` (the client gets 413; no WebSocket is closed) |
 * | `ERR_BODY_TIMEOUT` | 1006 | `serve`: a plain HTTP request body sent no bytes for `handshakeTimeout` while they were awaited (the client gets 408) |
 * | `ERR_APPLICATION` | as given | made by the application, `new WebSocketError(message, { closeCode, reason })`, to close with that code |
 */
export const ERROR_CODES = {
  ERR_RESERVED_OPCODE: 1002,
  ERR_UNEXPECTED_RSV: 1002,
  ERR_EXPECTED_MASK: 1002,
  ERR_UNEXPECTED_MASK: 1002,
  ERR_CONTROL_FRAME_TOO_LONG: 1002,
  ERR_FRAGMENTED_CONTROL_FRAME: 1002,
  ERR_INVALID_PAYLOAD_LENGTH: 1002,
  ERR_FRAME_TOO_LARGE: 1009,
  ERR_MESSAGE_TOO_LARGE: 1009,
  ERR_TOO_MANY_FRAGMENTS: 1009,
  ERR_UNEXPECTED_CONTINUATION: 1002,
  ERR_EXPECTED_CONTINUATION: 1002,
  ERR_INVALID_UTF8: 1007,
  ERR_INVALID_COMPRESSED_DATA: 1007,
  ERR_INVALID_CLOSE_CODE: 1002,
  ERR_INVALID_CLOSE_BODY: 1002,
  ERR_TRUNCATED_FRAME: 1002,
  ERR_TRUNCATED_MESSAGE: 1002,
  ERR_HANDSHAKE: 1006,
  ERR_HANDSHAKE_TIMEOUT: 1006,
  ERR_CONNECTION_REFUSED: 1006,
  ERR_DNS: 1006,
  ERR_TLS: 1015,
  ERR_UPGRADE_REQUIRED: 1006,
  ERR_ABORTED: 1006,
  ERR_ABNORMAL_CLOSURE: 1006,
  ERR_CLOSE_TIMEOUT: 1006,
  ERR_HEARTBEAT_TIMEOUT: 1006,
  ERR_SEND_TIMEOUT: 1006,
  ERR_INVALID_MESSAGE: 1011,
  ERR_INBOUND_QUEUE_FULL: 1008,
  ERR_EVENT_TOO_LARGE: 1009,
  ERR_EVENT_STREAM: 1006,
  ERR_SESSION_TIMEOUT: 1006,
  ERR_SESSION_CLOSED: 1006,
  ERR_NO_TRANSPORT: 1006,
  ERR_BODY_TOO_LARGE: 1009,
  ERR_BODY_TIMEOUT: 1006,
  ERR_APPLICATION: 1000,
} as const;

/** A stable string that names the cause of a {@linkcode WebSocketError}. */
export type WebSocketErrorCode = keyof typeof ERROR_CODES;

/**
 * The second argument of {@linkcode WebSocketError}: the WHATWG proposal's
 * `WebSocketCloseInfo` (`closeCode`, `reason`), plus this library's stable
 * `code` and the `cause`.
 */
export interface WebSocketErrorInit {
  /**
   * The close code sent to the peer. Without `code`, it must be 1000 or
   * 3000–4999, as the proposal says (a reason alone means 1000). With
   * `code`, it defaults to the code's entry in {@linkcode ERROR_CODES}.
   *
   * @default {null without `code`; the table's close code with it}
   */
  closeCode?: number;
  /**
   * The close reason sent to the peer, at most 123 bytes of UTF-8.
   *
   * @default {"" without `code`; with it, the part of the message after "Cannot <action>: ", cut to 123 bytes}
   */
  reason?: string;
  /**
   * The stable code from {@linkcode ERROR_CODES}; the library sets it on
   * the errors it makes.
   *
   * @default {"ERR_APPLICATION"}
   */
  code?: WebSocketErrorCode;
  /**
   * The underlying error, if any.
   *
   * @default {undefined}
   */
  cause?: unknown;
}

/**
 * The error a WebSocket stream fails with, and the value that closes one
 * with a chosen code: `writable.abort(error)` and `readable.cancel(error)`
 * close with its `closeCode` and `reason`. It follows the WHATWG
 * WebSocketStream proposal's `WebSocketError` (`new WebSocketError(message,
 * { closeCode, reason })`, `closeCode` `null` when none was given) and adds
 * a stable string `code` from {@linkcode ERROR_CODES}.
 *
 * Two differences from the proposal, on purpose: it extends `Error`, not
 * `DOMException`, because `DOMException` already has a numeric `code`
 * (always 0 here) and this library's `code` is the stable string a program
 * switches on; and it is this module's own class, so that it exists where
 * the runtime has no `WebSocketError` (Deno has one only with
 * `--unstable-net`). Importing it shadows Deno's global in that module
 * only; `instanceof` tells ours from Deno's, and `writable.abort()` and
 * `readable.cancel()` close with the code of either.
 *
 * @example Inspect a protocol error
 * ```ts
 * import { WebSocketError } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const error = new WebSocketError(
 *   "Cannot decode text message: invalid UTF-8",
 *   { code: "ERR_INVALID_UTF8" },
 * );
 * assertEquals(error.closeCode, 1007);
 * assertEquals(error.reason, "invalid UTF-8");
 * assertEquals(error.name, "WebSocketError");
 * ```
 *
 * @example Make one to close with, as the proposal does
 * ```ts
 * import { WebSocketError } from "@seed/websocket-streams";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = new WebSocketError("done", { reason: "bye" });
 * assertEquals([error.closeCode, error.reason, error.code], [1000, "bye", "ERR_APPLICATION"]);
 * assertEquals(new WebSocketError().closeCode, null);
 * assertThrows(() => new WebSocketError("", { closeCode: 1001 }), DOMException);
 * ```
 */
export class WebSocketError extends Error {
  /** The stable code from {@linkcode ERROR_CODES}. */
  readonly code: WebSocketErrorCode;
  /**
   * The close code the connection is (or was) failed with; `null` for an
   * error made without one, which closes with no code (the peer sees 1005).
   */
  readonly closeCode: number | null;
  /** The close reason sent with {@linkcode WebSocketError.closeCode}. */
  readonly reason: string;

  /**
   * Makes an error.
   *
   * @param message A message of the form "Cannot <action>: <reason>".
   * @param init The close code and reason (the proposal's
   * `WebSocketCloseInfo`), the stable `code` and the cause.
   * @throws {DOMException} Without `init.code`: `InvalidAccessError` for a
   * close code other than 1000 or 3000–4999, `SyntaxError` for a reason over
   * 123 bytes of UTF-8, as the proposal specifies.
   */
  constructor(message: string = "", init: WebSocketErrorInit = {}) {
    super(message, init.cause === undefined ? {} : { cause: init.cause });
    this.name = "WebSocketError";
    if (init.code !== undefined) {
      this.code = init.code;
      this.closeCode = init.closeCode ?? ERROR_CODES[init.code];
      // RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them
      // the code, so the reason is cut to 123 bytes on a UTF-8 boundary.
      this.reason = truncateUtf8(
        init.reason ?? message.slice(message.indexOf(": ") + 1).trim(),
        123,
      );
      return;
    }
    // The proposal's "validate close code and reason".
    const reason = init.reason === undefined ? "" : String(init.reason);
    let closeCode = init.closeCode === undefined
      ? null
      : Number(init.closeCode);
    if (
      closeCode !== null &&
      !(closeCode === 1000 || (closeCode >= 3000 && closeCode <= 4999))
    ) {
      throw new DOMException(
        `Cannot create WebSocketError: close code ${init.closeCode} is neither 1000 nor in 3000-4999`,
        "InvalidAccessError",
      );
    }
    const bytes = new TextEncoder().encode(reason).length;
    if (bytes > 123) {
      throw new DOMException(
        `Cannot create WebSocketError: the reason takes ${bytes} bytes of UTF-8, over 123`,
        "SyntaxError",
      );
    }
    if (reason !== "" && closeCode === null) closeCode = 1000;
    this.code = "ERR_APPLICATION";
    this.closeCode = closeCode === null ? null : Math.trunc(closeCode);
    this.reason = reason;
  }
}

/** The second argument of {@linkcode WebSocketHandshakeError}. */
export interface WebSocketHandshakeErrorInit {
  /** The HTTP status of the answer: the server's, or the one to give. */
  status: number;
  /**
   * The HTTP reason phrase.
   *
   * @default {""}
   */
  statusText?: string;
  /**
   * The answer's headers (for example `Location` on a 3xx,
   * `WWW-Authenticate` on a 401).
   *
   * @default {no headers}
   */
  headers?: HeadersInit;
  /**
   * The stable code.
   *
   * @default {"ERR_HANDSHAKE"}
   */
  code?: WebSocketErrorCode;
  /**
   * The underlying error, if any.
   *
   * @default {undefined}
   */
  cause?: unknown;
}

/**
 * An opening handshake refused with an HTTP status instead of 101, with
 * that status, reason phrase and headers as properties, so that a program
 * tells 401 from 404 from a redirect without parsing the message.
 *
 * - `connect()` and `WebSocketStream` reject with one (`ERR_HANDSHAKE`) when
 *   the server answers anything but 101: `status` and `headers` are the
 *   server's (a 3xx's target is `headers.get("location")`; no redirect is
 *   followed).
 * - `upgradeWebSocket()` throws one (`ERR_UPGRADE_REQUIRED`, status 426)
 *   for a request that is not an upgrade; `toResponse()` is the answer to
 *   return from the handler.
 *
 * @example Tell a 401 from a 404
 * ```ts
 * import { connect, WebSocketHandshakeError } from "@seed/websocket-streams";
 * import { assert, assertEquals } from "@std/assert";
 *
 * const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () =>
 *   new Response("who are you?", { status: 401, headers: { "www-authenticate": "Basic" } }));
 * const error = await connect(`ws://127.0.0.1:${server.addr.port}/`).catch((e) => e);
 * assert(error instanceof WebSocketHandshakeError);
 * assertEquals([error.status, error.headers.get("www-authenticate")], [401, "Basic"]);
 * await server.shutdown();
 * ```
 */
export class WebSocketHandshakeError extends WebSocketError {
  /** The HTTP status of the refusal. */
  readonly status: number;
  /** The HTTP reason phrase, or `""`. */
  readonly statusText: string;
  /** The refusal's headers. */
  readonly headers: Headers;

  /**
   * Makes an error.
   *
   * @param message A message of the form "Cannot <action>: <reason>".
   * @param init The status, reason phrase, headers, code and cause.
   */
  constructor(message: string, init: WebSocketHandshakeErrorInit) {
    super(message, { code: init.code ?? "ERR_HANDSHAKE", cause: init.cause });
    this.name = "WebSocketHandshakeError";
    this.status = init.status;
    this.statusText = init.statusText ?? "";
    this.headers = new Headers(init.headers);
  }

  /**
   * A new `Response` with this status, reason phrase and headers, and the
   * message as a text body: what a `Deno.serve` handler returns when
   * `upgradeWebSocket()` refused its request.
   *
   * @returns The response (a new one on each call: a body is read once).
   * @throws {RangeError} For a status outside 200–599, which a `Response`
   * cannot carry.
   */
  toResponse(): Response {
    const headers = new Headers(this.headers);
    headers.set("content-type", "text/plain; charset=utf-8");
    return new Response(this.message + "\n", {
      status: this.status,
      statusText: this.statusText,
      headers,
    });
  }
}
