/**
 * The frame model of RFC 6455 §5.2, and pure functions that encode and
 * decode one frame. The streams and the connection run these same functions.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-------+-+-------------+-------------------------------+
 * |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 * |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 * |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 * | |1|2|3|       |K|             |                               |
 * +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 * |     Extended payload length continued, if payload len == 127  |
 * + - - - - - - - - - - - - - - - +-------------------------------+
 * |                               |Masking-key, if MASK set to 1  |
 * +-------------------------------+-------------------------------+
 * | Masking-key (continued)       |          Payload Data         |
 * +-------------------------------- - - - - - - - - - - - - - - - +
 * :                     Payload Data continued ...                :
 * +---------------------------------------------------------------+
 * ```
 *
 * @module
 */

import { WebSocketError } from "../errors.ts";
import { mask as applyMask } from "./mask.ts";

/** The opcodes of RFC 6455 §5.2 (§11.8). 0x3–0x7 and 0xB–0xF are reserved. */
export const Opcode = {
  /** A continuation of a fragmented message. */
  Continuation: 0x0,
  /** The first frame of a text message. */
  Text: 0x1,
  /** The first frame of a binary message. */
  Binary: 0x2,
  /** A close frame (§5.5.1). */
  Close: 0x8,
  /** A ping (§5.5.2). */
  Ping: 0x9,
  /** A pong (§5.5.3). */
  Pong: 0xa,
} as const;

/** One of the defined opcodes in {@linkcode Opcode}. */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * Tells whether an opcode is a control opcode (its high bit is set, RFC 6455
 * §5.5).
 *
 * @param opcode The opcode.
 * @returns `true` for close, ping and pong, and the reserved 0xB–0xF.
 *
 * @example Sort opcodes
 * ```ts
 * import { isControlOpcode, Opcode } from "@seed/websocket-streams/codec";
 * import { assert, assertFalse } from "@std/assert";
 *
 * assert(isControlOpcode(Opcode.Ping));
 * assertFalse(isControlOpcode(Opcode.Text));
 * ```
 */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** Which end of the connection an endpoint is: it decides masking (§5.3). */
export type Role = "client" | "server";

/** One WebSocket frame. */
export interface Frame {
  /** Whether this is the final fragment of a message. */
  fin: boolean;
  /** RSV1; permessage-deflate uses it to mark a compressed message. */
  rsv1: boolean;
  /** RSV2; no registered extension uses it. */
  rsv2: boolean;
  /** RSV3; no registered extension uses it. */
  rsv3: boolean;
  /** The opcode. */
  opcode: Opcode;
  /**
   * The 4-byte masking key, or `undefined` for an unmasked frame. On a
   * decoded frame the payload is already unmasked.
   */
  mask?: Uint8Array | undefined;
  /** The (unmasked) application and extension data. */
  payload: Uint8Array;
}

/**
 * A frame's header as it was read from the wire: a {@linkcode Frame} without
 * its payload, plus the payload's declared length.
 */
export interface FrameHeader extends Omit<Frame, "payload"> {
  /** The payload length declared in the header. */
  payloadLength: number;
  /** The bytes the header took on the wire: 2 to 14. */
  headerLength: number;
}

/** What a decoder accepts, beyond the base protocol. */
export interface FrameHeaderOptions {
  /**
   * The role of the endpoint that receives the frames. A server must receive
   * masked frames and a client unmasked ones (RFC 6455 §5.1).
   */
  role: Role;
  /**
   * Which RSV bits a negotiated extension allows, as a bit set: 4 for RSV1,
   * 2 for RSV2, 1 for RSV3 (RFC 6455 §5.2); an integer from 0 to 7.
   *
   * @default {0}
   */
  allowedRsv?: number;
  /**
   * The largest payload a frame may declare, in bytes. A larger one fails
   * with 1009 as soon as its header is read, before any payload is buffered.
   * A non-negative integer, or `Infinity` for no limit.
   *
   * @default {33554432 (32 MiB)}
   */
  maxFrameSize?: number;
}

/** The default {@linkcode FrameHeaderOptions.maxFrameSize}: 32 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 32 * 1024 * 1024;

/**
 * The length of a header whose second byte is `byte1`: 2 bytes, plus 2 or 8
 * for an extended length, plus 4 for a masking key.
 *
 * @param byte1 The second byte of the frame.
 * @returns The header length in bytes.
 *
 * @example A masked frame with a 16-bit length
 * ```ts
 * import { frameHeaderLength } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(frameHeaderLength(0x80 | 126), 8);
 * ```
 */
export function frameHeaderLength(byte1: number): number {
  const len7 = byte1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) +
    ((byte1 & 0x80) !== 0 ? 4 : 0);
}

/**
 * Reads and validates a frame header. `bytes` must hold the whole header at
 * `offset` (see {@linkcode frameHeaderLength}).
 *
 * @param bytes The bytes that hold the header.
 * @param offset Where the header starts.
 * @param options The receiving role and the negotiated limits.
 * @param key Where to copy a masking key.
 * @default {a new 4-byte array per masked frame}
 * @returns The header.
 * @throws {WebSocketError} On any violation of RFC 6455 §5.2–§5.5, with close
 * code 1002, or 1009 for a frame over `maxFrameSize`.
 *
 * @example Read the header of a masked "Hello" (RFC 6455 §5.7)
 * ```ts
 * import { parseFrameHeader } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
 * const header = parseFrameHeader(bytes, 0, { role: "server" });
 * assertEquals(header.payloadLength, 5);
 * assertEquals(header.headerLength, 6);
 * ```
 */
export function parseFrameHeader(
  bytes: Uint8Array,
  offset: number,
  options: FrameHeaderOptions,
  key?: Uint8Array,
): FrameHeader {
  const b0 = bytes[offset]!;
  const b1 = bytes[offset + 1]!;
  const opcode = b0 & 0x0f;
  const fin = (b0 & 0x80) !== 0;
  const masked = (b1 & 0x80) !== 0;
  // RFC 6455 §5.2: an unknown opcode fails the connection.
  if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) {
    throw new WebSocketError(
      `Cannot decode frame: opcode 0x${opcode.toString(16)} is reserved`,
      { code: "ERR_RESERVED_OPCODE" },
    );
  }
  // RFC 6455 §5.2: a non-zero RSV bit with no extension to define it fails
  // the connection.
  const rsv = (b0 >>> 4) & 0x7;
  if ((rsv & ~(options.allowedRsv ?? 0)) !== 0) {
    throw new WebSocketError(
      `Cannot decode frame: RSV bits 0b${
        rsv.toString(2).padStart(3, "0")
      } are set and no extension allows them`,
      { code: "ERR_UNEXPECTED_RSV" },
    );
  }
  // RFC 6455 §5.1: a server closes on an unmasked frame, a client on a masked
  // one.
  if (options.role === "server" && !masked) {
    throw new WebSocketError(
      "Cannot decode frame: a client frame must be masked",
      { code: "ERR_EXPECTED_MASK" },
    );
  }
  if (options.role === "client" && masked) {
    throw new WebSocketError(
      "Cannot decode frame: a server frame must not be masked",
      { code: "ERR_UNEXPECTED_MASK" },
    );
  }
  const len7 = b1 & 0x7f;
  if (opcode >= 0x8) {
    // RFC 6455 §5.5: control frames must not be fragmented, and carry at most
    // 125 bytes.
    if (!fin) {
      throw new WebSocketError(
        "Cannot decode frame: a control frame must not be fragmented",
        { code: "ERR_FRAGMENTED_CONTROL_FRAME" },
      );
    }
    if (len7 > 125) {
      throw new WebSocketError(
        "Cannot decode frame: a control frame carries at most 125 bytes",
        { code: "ERR_CONTROL_FRAME_TOO_LONG" },
      );
    }
  }
  let pos = offset + 2;
  let payloadLength = len7;
  if (len7 === 126) {
    payloadLength = (bytes[pos]! << 8) | bytes[pos + 1]!;
    pos += 2;
  } else if (len7 === 127) {
    const high = ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) |
      (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
    const low = ((bytes[pos + 4]! << 24) | (bytes[pos + 5]! << 16) |
      (bytes[pos + 6]! << 8) | bytes[pos + 7]!) >>> 0;
    // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
    if (high >= 0x80000000) {
      throw new WebSocketError(
        "Cannot decode frame: the most significant bit of a 64-bit length is set",
        { code: "ERR_INVALID_PAYLOAD_LENGTH" },
      );
    }
    payloadLength = high * 0x100000000 + low;
    pos += 8;
  }
  const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  // Negated, so that a NaN limit (unchecked here, per frame) refuses every
  // frame instead of none.
  if (!(payloadLength <= maxFrameSize)) {
    throw new WebSocketError(
      `Cannot decode frame: its ${payloadLength} bytes exceed maxFrameSize (${maxFrameSize})`,
      { code: "ERR_FRAME_TOO_LARGE" },
    );
  }
  let mask: Uint8Array | undefined;
  if (masked) {
    mask = key ?? new Uint8Array(4);
    mask[0] = bytes[pos]!;
    mask[1] = bytes[pos + 1]!;
    mask[2] = bytes[pos + 2]!;
    mask[3] = bytes[pos + 3]!;
    pos += 4;
  }
  return {
    fin,
    rsv1: (rsv & 4) !== 0,
    rsv2: (rsv & 2) !== 0,
    rsv3: (rsv & 1) !== 0,
    opcode: opcode as Opcode,
    mask,
    payloadLength,
    headerLength: pos - offset,
  };
}

/**
 * The size of the header for a payload of `payloadLength` bytes: the 7-bit
 * length up to 125, the 16-bit form up to 65,535, else the 64-bit form
 * (RFC 6455 §5.2 asks for the minimal form), plus 4 bytes for a masking key.
 *
 * @param payloadLength The payload length.
 * @param masked Whether the frame carries a masking key.
 * @returns The header size in bytes.
 *
 * @example Header sizes at the length boundaries
 * ```ts
 * import { encodedHeaderLength } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(encodedHeaderLength(125, false), 2);
 * assertEquals(encodedHeaderLength(126, false), 4);
 * assertEquals(encodedHeaderLength(65536, true), 14);
 * ```
 */
export function encodedHeaderLength(
  payloadLength: number,
  masked: boolean,
): number {
  return (payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10) +
    (masked ? 4 : 0);
}

/**
 * Writes a frame header into `target` at `offset`.
 *
 * @param target Where the header goes; it needs
 * {@linkcode encodedHeaderLength} bytes from `offset`.
 * @param offset Where the header starts.
 * @param frame The frame's flags, opcode and masking key.
 * @param payloadLength The payload length.
 * @param key The masking key to write, if any.
 * @default {frame.mask}
 * @returns The offset just past the header.
 *
 * @example Write the header of an unmasked "Hello"
 * ```ts
 * import { writeFrameHeader } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const target = new Uint8Array(2);
 * const frame = { fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: 1 as const };
 * assertEquals(writeFrameHeader(target, 0, frame, 5), 2);
 * assertEquals(target, new Uint8Array([0x81, 0x05]));
 * ```
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  frame: Omit<Frame, "payload">,
  payloadLength: number,
  key: Uint8Array | undefined = frame.mask,
): number {
  target[offset] = (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) |
    (frame.rsv2 ? 0x20 : 0) | (frame.rsv3 ? 0x10 : 0) | frame.opcode;
  const maskBit = key ? 0x80 : 0;
  let pos = offset + 2;
  if (payloadLength < 126) {
    target[offset + 1] = maskBit | payloadLength;
  } else if (payloadLength < 0x10000) {
    target[offset + 1] = maskBit | 126;
    target[pos++] = payloadLength >>> 8;
    target[pos++] = payloadLength & 0xff;
  } else {
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(payloadLength / 0x100000000);
    const low = payloadLength >>> 0;
    target[pos++] = high >>> 24;
    target[pos++] = (high >>> 16) & 0xff;
    target[pos++] = (high >>> 8) & 0xff;
    target[pos++] = high & 0xff;
    target[pos++] = low >>> 24;
    target[pos++] = (low >>> 16) & 0xff;
    target[pos++] = (low >>> 8) & 0xff;
    target[pos++] = low & 0xff;
  }
  if (key) {
    target[pos++] = key[0]!;
    target[pos++] = key[1]!;
    target[pos++] = key[2]!;
    target[pos++] = key[3]!;
  }
  return pos;
}

/**
 * Checks that a frame can be sent: a defined opcode, a 4-byte key if any,
 * and for a control frame FIN set and at most 125 bytes (RFC 6455 §5.5).
 *
 * @param frame The frame to check.
 * @throws {TypeError} For a fragmented control frame.
 * @throws {RangeError} For an undefined opcode, a bad key or an oversized
 * control payload.
 *
 * @example Refuse an oversized ping
 * ```ts
 * import { assertSendableFrame, Opcode } from "@seed/websocket-streams/codec";
 * import { assertThrows } from "@std/assert";
 *
 * const ping = {
 *   fin: true, rsv1: false, rsv2: false, rsv3: false,
 *   opcode: Opcode.Ping, payload: new Uint8Array(126),
 * };
 * assertThrows(() => assertSendableFrame(ping), RangeError);
 * ```
 */
export function assertSendableFrame(frame: Frame): void {
  const { opcode } = frame;
  if (
    !Number.isInteger(opcode) || opcode < 0 || (opcode > 0x2 && opcode < 0x8) ||
    opcode > 0xa
  ) {
    throw new RangeError(
      `Cannot encode frame: opcode ${opcode} is not defined`,
    );
  }
  if (frame.mask !== undefined && frame.mask.length !== 4) {
    throw new RangeError(
      `Cannot encode frame: a masking key is 4 bytes, not ${frame.mask.length}`,
    );
  }
  if (isControlOpcode(opcode)) {
    if (!frame.fin) {
      throw new TypeError(
        "Cannot encode frame: a control frame must not be fragmented",
      );
    }
    if (frame.payload.length > 125) {
      throw new RangeError(
        `Cannot encode frame: a control frame carries at most 125 bytes, not ${frame.payload.length}`,
      );
    }
  }
}

/**
 * Encodes one frame as header and payload in a single new buffer. When
 * `frame.mask` is set, the payload is masked with it; `frame.payload` itself
 * is never changed.
 *
 * @param frame The frame to encode.
 * @returns The frame's bytes.
 * @throws {TypeError | RangeError} When the frame cannot be sent (see
 * {@linkcode assertSendableFrame}).
 *
 * @example Encode the masked "Hello" of RFC 6455 §5.7
 * ```ts
 * import { encodeFrame, Opcode } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = encodeFrame({
 *   fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: Opcode.Text,
 *   mask: new Uint8Array([0x37, 0xfa, 0x21, 0x3d]),
 *   payload: new TextEncoder().encode("Hello"),
 * });
 * assertEquals(
 *   bytes,
 *   new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
 * );
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  assertSendableFrame(frame);
  const { payload } = frame;
  const out = new Uint8Array(
    encodedHeaderLength(payload.length, frame.mask !== undefined) +
      payload.length,
  );
  const start = writeFrameHeader(out, 0, frame, payload.length);
  const body = out.subarray(start);
  if (frame.mask) applyMask(payload, frame.mask, 0, body);
  else body.set(payload);
  return out;
}

/** The result of {@linkcode decodeFrame}. */
export interface DecodeFrameResult {
  /** The frame, its payload unmasked into a new buffer. */
  frame: Frame;
  /** How many bytes of the input the frame took. */
  byteLength: number;
}

/**
 * Decodes the first whole frame in `bytes`, or returns `undefined` when
 * `bytes` does not yet hold a whole frame. The input is not changed.
 *
 * @param bytes The received bytes.
 * @param options The receiving role and the negotiated limits.
 * @returns The frame and its length on the wire, or `undefined`.
 * @throws {WebSocketError} On any protocol violation in the header.
 *
 * @example Decode the unmasked "Hello" of RFC 6455 §5.7
 * ```ts
 * import { decodeFrame } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
 * const result = decodeFrame(bytes, { role: "client" });
 * assertEquals(new TextDecoder().decode(result?.frame.payload), "Hello");
 * assertEquals(result?.byteLength, 7);
 * assertEquals(decodeFrame(bytes.subarray(0, 6), { role: "client" }), undefined);
 * ```
 */
export function decodeFrame(
  bytes: Uint8Array,
  options: FrameHeaderOptions,
): DecodeFrameResult | undefined {
  if (bytes.length < 2 || bytes.length < frameHeaderLength(bytes[1]!)) {
    return undefined;
  }
  const header = parseFrameHeader(bytes, 0, options);
  const end = header.headerLength + header.payloadLength;
  if (bytes.length < end) return undefined;
  const source = bytes.subarray(header.headerLength, end);
  const payload = header.mask
    ? applyMask(source, header.mask, 0, new Uint8Array(source.length))
    : source.slice();
  const { payloadLength: _length, headerLength: _header, ...rest } = header;
  return { frame: { ...rest, payload }, byteLength: end };
}
