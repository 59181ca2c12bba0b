/**
 * Messages out (RFC 6455 §5.4, §5.6): the message types, and the split of a
 * message into frames. Reassembly is in `assembler.ts`.
 *
 * @module
 */

import { decodeCloseBody, encodeCloseBody } from "./close.ts";
import { type Frame, Opcode } from "./frame.ts";
import { checkOptions, ENCODE } from "../_options.ts";

/** A message, as the message streams carry it. */
export type WebSocketMessage =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "close"; closeCode: number; reason: string };

/**
 * What can be sent as a message: a string as text, and an `ArrayBuffer` or
 * any `ArrayBufferView` as binary.
 */
export type MessageData = string | ArrayBuffer | ArrayBufferView;

/** Options for {@linkcode encodeMessage}. */
export interface EncodeMessageOptions {
  /**
   * Split data messages into frames of at most this many payload bytes: a
   * positive integer, or `Infinity` to send every message as one frame.
   *
   * @default {Infinity}
   */
  fragmentSize?: number;
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * Converts a message given as {@linkcode MessageData} or a
 * {@linkcode WebSocketMessage} into its opcode and payload bytes. A string is
 * text; an `ArrayBuffer` or any `ArrayBufferView` is binary (a view of the
 * same memory, not a copy).
 *
 * @param message The message.
 * @returns The opcode and the payload.
 * @throws {TypeError} For any other value.
 * @throws {RangeError} For a close code not allowed on the wire, or a reason
 * over 123 bytes.
 *
 * @example Text and binary
 * ```ts
 * import { messagePayload, Opcode } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(messagePayload("hi").opcode, Opcode.Text);
 * assertEquals(messagePayload(new ArrayBuffer(3)).payload.length, 3);
 * ```
 */
export function messagePayload(
  message: MessageData | WebSocketMessage,
): { opcode: Opcode; payload: Uint8Array } {
  if (typeof message === "string") {
    return { opcode: Opcode.Text, payload: encoder.encode(message) };
  }
  if (message instanceof Uint8Array) {
    return { opcode: Opcode.Binary, payload: message };
  }
  if (ArrayBuffer.isView(message)) {
    return {
      opcode: Opcode.Binary,
      payload: new Uint8Array(
        message.buffer,
        message.byteOffset,
        message.byteLength,
      ),
    };
  }
  if (message instanceof ArrayBuffer) {
    return { opcode: Opcode.Binary, payload: new Uint8Array(message) };
  }
  if (typeof message === "object" && message !== null && "type" in message) {
    switch (message.type) {
      case "text":
        return messagePayload(String(message.data));
      case "binary":
        return messagePayload(message.data);
      case "ping":
        return { opcode: Opcode.Ping, payload: message.data ?? EMPTY };
      case "pong":
        return { opcode: Opcode.Pong, payload: message.data ?? EMPTY };
      case "close":
        return {
          opcode: Opcode.Close,
          payload: encodeCloseBody(
            message.closeCode === 1005 ? undefined : message.closeCode,
            message.reason,
          ),
        };
    }
  }
  throw new TypeError(
    "Cannot encode message: expected a string, a BufferSource or a WebSocketMessage",
  );
}

/**
 * Splits a message into frames (RFC 6455 §5.4). A data message becomes one
 * frame, or with `fragmentSize` a first frame and continuation frames of at
 * most that many bytes each, views of the same payload. A control message is
 * always one frame. An empty message is one empty frame.
 *
 * @param message The message.
 * @param options The fragment size.
 * @returns The frames, unmasked.
 * @throws {TypeError | RangeError} For a value that is not a message, or a
 * `fragmentSize` that is not a positive integer or `Infinity`.
 *
 * @example Fragment "Hello" as RFC 6455 §5.7 does
 * ```ts
 * import { encodeMessage } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const frames = encodeMessage("Hello", { fragmentSize: 3 });
 * assertEquals(frames.map((frame) => [frame.fin, frame.opcode, frame.payload.length]), [
 *   [false, 1, 3],
 *   [true, 0, 2],
 * ]);
 * ```
 */
export function encodeMessage(
  message: MessageData | WebSocketMessage,
  options: EncodeMessageOptions = {},
): Frame[] {
  checkOptions("encode message", options, ENCODE);
  const fragmentSize = options.fragmentSize ?? Infinity;
  const { opcode, payload } = messagePayload(message);
  if (opcode >= 0x8 || payload.length <= fragmentSize) {
    return [frameOf(true, opcode, payload)];
  }
  const frames: Frame[] = [];
  for (let start = 0; start < payload.length; start += fragmentSize) {
    const end = Math.min(start + fragmentSize, payload.length);
    frames.push(
      frameOf(
        end === payload.length,
        start === 0 ? opcode : Opcode.Continuation,
        payload.subarray(start, end),
      ),
    );
  }
  return frames;
}

function frameOf(fin: boolean, opcode: Opcode, payload: Uint8Array): Frame {
  return { fin, rsv1: false, rsv2: false, rsv3: false, opcode, payload };
}

/**
 * Turns a received control frame into a {@linkcode WebSocketMessage},
 * validating a close frame's body.
 *
 * @param opcode The control opcode (0x8, 0x9 or 0xA).
 * @param payload The unmasked payload.
 * @returns The control message.
 * @throws {WebSocketError} For an invalid close body (1002, or 1007 for a
 * reason that is not UTF-8).
 *
 * @example A ping
 * ```ts
 * import { controlMessage } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(controlMessage(0x9, new Uint8Array([1])), { type: "ping", data: new Uint8Array([1]) });
 * ```
 */
export function controlMessage(
  opcode: number,
  payload: Uint8Array,
): WebSocketMessage {
  if (opcode === Opcode.Close) {
    return { type: "close", ...decodeCloseBody(payload) };
  }
  return { type: opcode === Opcode.Ping ? "ping" : "pong", data: payload };
}
