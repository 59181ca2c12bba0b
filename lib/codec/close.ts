/**
 * Close codes (RFC 6455 §7.4) and the close frame body (RFC 6455 §5.5.1).
 *
 * @module
 */

import { WebSocketError } from "../errors.ts";
import { truncateUtf8 } from "./utf8.ts";
import { optionError, show } from "../_options.ts";

/**
 * The close codes of RFC 6455 §7.4.1 and the IANA "WebSocket Close Code
 * Number Registry". 1005, 1006 and 1015 are reported locally and are never
 * sent in a close frame.
 */
export const CloseCode = {
  /** The purpose of the connection has been fulfilled. */
  NormalClosure: 1000,
  /** The endpoint is going away: a server shutting down, a page left. */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** The endpoint received a type of data it cannot accept. */
  UnsupportedData: 1003,
  /** Reserved; never sent. */
  Reserved: 1004,
  /** Reported when a close frame carried no code; never sent. */
  NoStatusReceived: 1005,
  /** Reported when the connection ended without a close frame; never sent. */
  AbnormalClosure: 1006,
  /** A message's data did not match its type (for example invalid UTF-8). */
  InvalidFramePayloadData: 1007,
  /** A message violated the endpoint's policy. */
  PolicyViolation: 1008,
  /** A message was too big to process. */
  MessageTooBig: 1009,
  /** The client expected the server to negotiate an extension. */
  MandatoryExtension: 1010,
  /** The server met an unexpected condition. */
  InternalError: 1011,
  /** The service is restarting (IANA). */
  ServiceRestart: 1012,
  /** Try again later (IANA). */
  TryAgainLater: 1013,
  /** A gateway received an invalid response upstream (IANA). */
  BadGateway: 1014,
  /** Reported when the TLS handshake failed; never sent. */
  TlsHandshake: 1015,
} as const;

/** The most bytes a close reason may take: 125 less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Tells whether `code` may be sent in a close frame (RFC 6455 §7.4). Valid
 * codes are 1000–1003, 1007–1014 and 3000–4999. 1004, 1005, 1006 and 1015 are
 * reserved or local-only, codes below 1000 are unused, and 1016–2999 are
 * reserved for future RFCs.
 *
 * @param code The close code; anything but an integer is not one.
 * @returns `true` when the code is allowed on the wire.
 *
 * @example Check codes
 * ```ts
 * import { isValidCloseCode } from "@seed/websocket-streams/codec";
 * import { assert, assertFalse } from "@std/assert";
 *
 * assert(isValidCloseCode(1000));
 * assert(isValidCloseCode(4000));
 * assertFalse(isValidCloseCode(1005));
 * assertFalse(isValidCloseCode(2000));
 * ```
 */
export function isValidCloseCode(code: unknown): code is number {
  return typeof code === "number" && Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
      (code >= 3000 && code <= 4999));
}

/** The content of a close frame. */
export interface CloseInfo {
  /** The close code; 1005 when the frame had no body. */
  closeCode: number;
  /** The close reason; `""` when there was none. */
  reason: string;
}

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Encodes a close frame body: the 2-byte code in network order, then the
 * reason in UTF-8 (RFC 6455 §5.5.1).
 *
 * @param closeCode A code allowed on the wire, or `undefined` for an empty
 * body.
 * @param reason At most 123 bytes of UTF-8. It needs a code.
 * @default {""}
 * @returns The body.
 * @throws {RangeError} When the code is not allowed on the wire, or the
 * reason is too long.
 * @throws {TypeError} When a reason is given without a code.
 *
 * @example Encode 1000 "bye"
 * ```ts
 * import { encodeCloseBody } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   encodeCloseBody(1000, "bye"),
 *   new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65]),
 * );
 * ```
 */
export function encodeCloseBody(
  closeCode: number | undefined,
  reason = "",
): Uint8Array {
  if (closeCode === undefined) {
    if (reason !== "") {
      throw new TypeError("Cannot encode close body: a reason needs a code");
    }
    return new Uint8Array(0);
  }
  if (!isValidCloseCode(closeCode)) {
    throw new RangeError(
      `Cannot encode close body: code ${closeCode} is not allowed on the wire`,
    );
  }
  const text = encoder.encode(reason);
  if (text.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `Cannot encode close body: the reason takes ${text.length} bytes, over ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  const body = new Uint8Array(2 + text.length);
  body[0] = closeCode >>> 8;
  body[1] = closeCode & 0xff;
  body.set(text, 2);
  return body;
}

/**
 * Decodes and validates a received close frame body.
 *
 * @param body The unmasked payload of a close frame (at most 125 bytes).
 * @returns The code and reason; code 1005 for an empty body.
 * @throws {WebSocketError} `ERR_INVALID_CLOSE_BODY` (1002) for a 1-byte
 * body, `ERR_INVALID_CLOSE_CODE` (1002) for a code not allowed on the wire,
 * `ERR_INVALID_UTF8` (1007) for a reason that is not UTF-8.
 *
 * @example Decode 1001 "away"
 * ```ts
 * import { decodeCloseBody } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const body = new Uint8Array([0x03, 0xe9, ...new TextEncoder().encode("away")]);
 * assertEquals(decodeCloseBody(body), { closeCode: 1001, reason: "away" });
 * assertEquals(decodeCloseBody(new Uint8Array()), { closeCode: 1005, reason: "" });
 * ```
 */
export function decodeCloseBody(body: Uint8Array): CloseInfo {
  if (body.length === 0) {
    return { closeCode: CloseCode.NoStatusReceived, reason: "" };
  }
  if (body.length === 1) {
    // RFC 6455 §5.5.1: if there is a body, its first two bytes are the code.
    throw new WebSocketError(
      "Cannot decode close frame: a body of 1 byte has no room for a code",
      { code: "ERR_INVALID_CLOSE_BODY" },
    );
  }
  const closeCode = (body[0]! << 8) | body[1]!;
  if (!isValidCloseCode(closeCode)) {
    throw new WebSocketError(
      `Cannot decode close frame: code ${closeCode} is not allowed on the wire`,
      { code: "ERR_INVALID_CLOSE_CODE" },
    );
  }
  let reason: string;
  try {
    reason = fatalDecoder.decode(body.subarray(2));
  } catch (cause) {
    throw new WebSocketError(
      "Cannot decode close frame: the reason is not valid UTF-8",
      { code: "ERR_INVALID_UTF8", cause },
    );
  }
  return { closeCode, reason };
}

/**
 * Cuts a close reason to the 123 bytes a close frame allows, on a UTF-8
 * boundary.
 *
 * @param reason Any text.
 * @returns The longest prefix of `reason` that fits a close frame.
 *
 * @example Cut a long reason
 * ```ts
 * import { fitCloseReason } from "./close.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(new TextEncoder().encode(fitCloseReason("é".repeat(100))).length, 122);
 * ```
 */
export function fitCloseReason(reason: string): string {
  return truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
}

/**
 * The close code and reason that a `readable.cancel(reason)` or
 * `writable.abort(reason)` asks for: a {@linkcode WebSocketError}'s own code
 * and reason when the code may go on the wire, else none (the peer then
 * sees 1005). The runtime's global `WebSocketError` (Deno's with
 * `--unstable-net`) counts as one too.
 *
 * @param reason What `cancel` or `abort` was given.
 * @returns The options to close with.
 *
 * @example A WebSocketError's code is kept; anything else closes plainly
 * ```ts
 * import { closeRequestFor } from "./close.ts";
 * import { WebSocketError } from "../errors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const error = new WebSocketError("Cannot chat: policy", { closeCode: 4403, reason: "policy" });
 * assertEquals(closeRequestFor(error), { closeCode: 4403, reason: "policy" });
 * assertEquals(closeRequestFor(new Error("bye")), {});
 * ```
 */
export function closeRequestFor(
  reason: unknown,
): { closeCode?: number; reason?: string } {
  if (
    !(reason instanceof WebSocketError || isRuntimeWebSocketError(reason)) ||
    !isValidCloseCode(reason.closeCode)
  ) {
    return {};
  }
  const text = typeof reason.reason === "string" ? reason.reason : "";
  return { closeCode: reason.closeCode, reason: fitCloseReason(text) };
}

// The runtime's own WebSocketError (Deno's with --unstable-net, a
// browser's): code written against the proposal makes that one, and it
// must close with its code here too. Its constructor has checked the code
// and the reason.
function isRuntimeWebSocketError(
  reason: unknown,
): reason is { closeCode: unknown; reason: unknown } {
  const runtime = (globalThis as { WebSocketError?: unknown }).WebSocketError;
  return typeof runtime === "function" && reason instanceof runtime;
}

/**
 * Checks the code and reason given to a connection's `close()`, the same
 * way for every kind of connection: a reason with no code means 1000, the
 * code must be allowed on the wire, and the reason must fit in 123 bytes.
 * The browser's `close(code, reason)` and `{ code }` are refused, not read
 * as a close with no code (which the peer would see as 1005).
 *
 * @param options The close code and reason.
 * @returns The code (`undefined` for none, the peer then sees 1005), the
 * reason, and the close frame's body.
 * @throws {TypeError} For an argument that is not an object, a key other
 * than `closeCode` and `reason`, a code that is not a number, or a reason
 * that is not a string.
 * @throws {RangeError} For a code that is not an integer or not allowed on
 * the wire, or a reason over 123 bytes of UTF-8.
 *
 * @example A reason alone closes with 1000
 * ```ts
 * import { closeBodyFor } from "./close.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(closeBodyFor({ reason: "bye" }).closeCode, 1000);
 * assertThrows(() => closeBodyFor({ closeCode: 1005 }), RangeError);
 * ```
 */
export function closeBodyFor(
  options: { closeCode?: number; reason?: string },
): { closeCode: number | undefined; reason: string; body: Uint8Array } {
  checkCloseOptions(options);
  const reason = options.reason ?? "";
  if (typeof reason !== "string") {
    throw new TypeError(
      `Cannot close: reason must be a string, not ${show(reason)}`,
    );
  }
  const closeCode = options.closeCode ?? (reason !== "" ? 1000 : undefined);
  if (closeCode !== undefined && !Number.isInteger(closeCode)) {
    throw optionError("close", "closeCode", closeCode, "an integer");
  }
  if (closeCode !== undefined && !isValidCloseCode(closeCode)) {
    throw new RangeError(
      `Cannot close: code ${closeCode} is not allowed on the wire`,
    );
  }
  const bytes = encoder.encode(reason).length;
  if (bytes > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `Cannot close: the reason takes ${bytes} bytes of UTF-8, over ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  return { closeCode, reason, body: encodeCloseBody(closeCode, reason) };
}

// The argument's shape, where the browser's habits differ:
// `close(code, reason)`, and `code` for `closeCode`.
function checkCloseOptions(options: unknown): void {
  if (typeof options !== "object" || options === null) {
    const hint = typeof options === "number"
      ? `; for close(code, reason), pass { closeCode: ${options}, reason }`
      : typeof options === "string"
      ? `; for a reason alone, pass { reason: ${show(options)} }`
      : "";
    throw new TypeError(
      `Cannot close: the argument must be { closeCode, reason }, not ${
        show(options)
      }${hint}`,
    );
  }
  for (const key in options) {
    if (key !== "closeCode" && key !== "reason") {
      throw new TypeError(
        `Cannot close: unknown option ${JSON.stringify(key)} in ${
          show(options)
        }; pass { closeCode, reason }`,
      );
    }
  }
}
