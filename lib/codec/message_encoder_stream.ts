/**
 * {@linkcode MessageEncoderStream}: messages in, frames out.
 *
 * @module
 */

import type { Frame } from "./frame.ts";
import {
  encodeMessage,
  type EncodeMessageOptions,
  type MessageData,
  type WebSocketMessage,
} from "./message.ts";
import { checkOptions, ENCODE } from "../_options.ts";

/** Options for {@linkcode MessageEncoderStream}. */
export type MessageEncoderStreamOptions = EncodeMessageOptions;

/**
 * Turns messages into frames: a string into a text message, a `Uint8Array`,
 * `ArrayBuffer` or other `ArrayBufferView` into a binary one, and a
 * {@linkcode WebSocketMessage} into its own kind, control messages included,
 * so that a `MessageDecoderStream`'s output can be piped straight back in.
 * With `fragmentSize`, large data messages are split into frames of at most
 * that many payload bytes (views, not copies).
 *
 * @example Encode and fragment
 * ```ts
 * import { MessageEncoderStream } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const frames = await Array.fromAsync(
 *   ReadableStream.from(["Hello", new Uint8Array(5)])
 *     .pipeThrough(new MessageEncoderStream({ fragmentSize: 4 })),
 * );
 * assertEquals(frames.map((frame) => [frame.fin, frame.opcode]), [
 *   [false, 1], [true, 0], [false, 2], [true, 0],
 * ]);
 * ```
 */
export class MessageEncoderStream
  extends TransformStream<MessageData | WebSocketMessage, Frame> {
  /**
   * Makes an encoder.
   *
   * @param options `fragmentSize`: the largest frame payload (default: no
   * fragmentation).
   * @throws {RangeError | TypeError} For a `fragmentSize` that is not a
   * positive integer or `Infinity`.
   */
  constructor(options: MessageEncoderStreamOptions = {}) {
    // Now, not at the first message.
    checkOptions("create MessageEncoderStream", options, ENCODE);
    super({
      transform(message, controller) {
        for (const frame of encodeMessage(message, options)) {
          controller.enqueue(frame);
        }
      },
    });
  }
}
