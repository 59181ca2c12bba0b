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
 * | `ERR_MESSAGE_TOO_LARGE` | 1009 | a message exceeds `maxMessageSize` |
 * | `ERR_TOO_MANY_FRAGMENTS` | 1009 | a message has more than `maxFragments` frames |
 * | `ERR_UNEXPECTED_CONTINUATION` | 1002 | a continuation frame arrived with no message open |
 * | `ERR_EXPECTED_CONTINUATION` | 1002 | a new data frame arrived inside an unfinished message |
 * | `ERR_INVALID_UTF8` | 1007 | a text message or close reason is not valid UTF-8 |
 * | `ERR_INVALID_COMPRESSED_DATA` | 1007 | a permessage-deflate message did not inflate (RFC 7692 §8) |
 * | `ERR_INVALID_CLOSE_CODE` | 1002 | a close frame carried a code that is not allowed on the wire |
 * | `ERR_INVALID_CLOSE_BODY` | 1002 | a close frame carried a 1-byte body |
 * | `ERR_TRUNCATED_FRAME` | 1002 | the byte stream ended inside a frame |
 * | `ERR_TRUNCATED_MESSAGE` | 1002 | the frame stream ended inside a fragmented message |
 * | `ERR_HANDSHAKE` | 1006 | the opening handshake failed; the message says why |
 * | `ERR_HANDSHAKE_TIMEOUT` | 1006 | the opening handshake took longer than its timeout |
 * | `ERR_ABORTED` | 1006 | the caller's `AbortSignal` ended the connection attempt |
 * | `ERR_ABNORMAL_CLOSURE` | 1006 | the transport ended without a close handshake |
 * | `ERR_CLOSE_TIMEOUT` | 1006 | the peer did not finish the close handshake in `closeTimeout` |
 * | `ERR_HEARTBEAT_TIMEOUT` | 1006 | the peer did not answer a heartbeat ping in time |
 * | `ERR_SEND_TIMEOUT` | 1006 | the transport took none of our bytes for `sendTimeout` (a peer that stops reading) |
 * | `ERR_INVALID_MESSAGE` | 1011 | the application wrote a value that is not a message (a string, an `ArrayBuffer` or a view) |
 * | `ERR_INBOUND_QUEUE_FULL` | 1008 | `upgradeWebSocket`: unread messages passed `maxQueuedBytes` (a socket that cannot pause) |
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
  ERR_ABORTED: 1006,
  ERR_ABNORMAL_CLOSURE: 1006,
  ERR_CLOSE_TIMEOUT: 1006,
  ERR_HEARTBEAT_TIMEOUT: 1006,
  ERR_SEND_TIMEOUT: 1006,
  ERR_INVALID_MESSAGE: 1011,
  ERR_INBOUND_QUEUE_FULL: 1008,
} as const;

/** A stable string that names the cause of a {@linkcode WebSocketError}. */
export type WebSocketErrorCode = keyof typeof ERROR_CODES;

/** Options for {@linkcode WebSocketError}. */
export interface WebSocketErrorOptions {
  /**
   * The close code sent to the peer. It defaults to the code's entry in
   * {@linkcode ERROR_CODES}.
   */
  closeCode?: number;
  /**
   * The close reason sent to the peer (at most 123 bytes of UTF-8).
   *
   * @default {the part of the message after "Cannot <action>: ", cut to 123 bytes}
   */
  reason?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The error a WebSocket stream fails with. It carries the close code that the
 * connection is failed with, the close reason, and a stable string `code`
 * from {@linkcode ERROR_CODES}.
 *
 * @example Inspect a protocol error
 * ```ts
 * import { WebSocketError } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const error = new WebSocketError(
 *   "ERR_INVALID_UTF8",
 *   "Cannot decode text message: invalid UTF-8",
 * );
 * assertEquals(error.closeCode, 1007);
 * assertEquals(error.code, "ERR_INVALID_UTF8");
 * assertEquals(error.name, "WebSocketError");
 * ```
 */
export class WebSocketError extends Error {
  /** The stable code from {@linkcode ERROR_CODES}. */
  readonly code: WebSocketErrorCode;
  /** The close code the connection is (or was) failed with. */
  readonly closeCode: number;
  /** The close reason sent with {@linkcode WebSocketError.closeCode}. */
  readonly reason: string;

  /**
   * Makes an error.
   *
   * @param code The stable code from {@linkcode ERROR_CODES}.
   * @param message A message of the form "Cannot <action>: <reason>".
   * @param options The close code, the close reason and the cause.
   */
  constructor(
    code: WebSocketErrorCode,
    message: string,
    options: WebSocketErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "WebSocketError";
    this.code = code;
    this.closeCode = options.closeCode ?? ERROR_CODES[code];
    // RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them
    // the code, so the reason is cut to 123 bytes on a UTF-8 boundary.
    this.reason = truncateUtf8(
      options.reason ?? message.slice(message.indexOf(": ") + 1).trim(),
      123,
    );
  }
}
