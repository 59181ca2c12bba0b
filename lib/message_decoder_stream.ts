/**
 * {@linkcode MessageDecoderStream}: frames in, messages out.
 *
 * @module
 */

import type { Frame } from "./frame.ts";
import type { DecodedFrame } from "./frame_decoder_stream.ts";
import {
  controlMessage,
  MessageAssembler,
  type MessageLimits,
  type WebSocketMessage,
} from "./message.ts";
import { checkOptions, MESSAGE } from "./_options.ts";

/** Options for {@linkcode MessageDecoderStream}. */
export type MessageDecoderStreamOptions = MessageLimits;

/**
 * Reassembles frames into messages, and passes control frames on as
 * messages of their own, at once, even inside a fragmented message
 * (RFC 6455 §5.4). It takes whole frames, or the partial-payload frames of a
 * `FrameDecoderStream` made with `partial: true`; with those, invalid UTF-8
 * fails the stream with 1007 as soon as its piece arrives (§8.1).
 *
 * Errors are {@linkcode WebSocketError}s: 1002 for a continuation with no
 * message open or a new message inside an open one, 1007 for invalid UTF-8
 * (in text or a close reason), 1009 over `maxMessageSize` (32 MiB) or
 * `maxFragments` (1,048,576), 1002 for a stream that ends inside a message.
 *
 * @example Decode bytes into messages
 * ```ts
 * import { FrameDecoderStream, MessageDecoderStream } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * // RFC 6455 §5.7: a fragmented "Hello", then an unmasked ping "Hello".
 * const bytes = new Uint8Array([
 *   0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f,
 *   0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
 * ]);
 * const messages = await Array.fromAsync(
 *   ReadableStream.from([bytes])
 *     .pipeThrough(new FrameDecoderStream({ role: "client", partial: true }))
 *     .pipeThrough(new MessageDecoderStream()),
 * );
 * assertEquals(messages, [
 *   { type: "text", data: "Hello" },
 *   { type: "ping", data: new TextEncoder().encode("Hello") },
 * ]);
 * ```
 */
export class MessageDecoderStream
  extends TransformStream<Frame | DecodedFrame, WebSocketMessage> {
  /**
   * Makes a decoder.
   *
   * @param options The limits: `maxMessageSize` (default 32 MiB) and
   * `maxFragments` (default 1,048,576).
   * @throws {RangeError | TypeError} For a limit out of its range, or not a
   * number.
   */
  constructor(options: MessageDecoderStreamOptions = {}) {
    checkOptions("create MessageDecoderStream", options, MESSAGE);
    let controller!: TransformStreamDefaultController<WebSocketMessage>;
    const assembler = new MessageAssembler(options, {
      message(data) {
        controller.enqueue(
          typeof data === "string"
            ? { type: "text", data }
            : { type: "binary", data },
        );
      },
      control(opcode, payload) {
        controller.enqueue(controlMessage(opcode, payload));
      },
    });
    super({
      start(c) {
        controller = c;
      },
      transform(frame) {
        const decoded = frame as Partial<DecodedFrame> & Frame;
        assembler.push(
          {
            fin: frame.fin,
            opcode: frame.opcode,
            payloadLength: decoded.payloadLength ?? frame.payload.length,
          },
          frame.payload,
          decoded.payloadOffset ?? 0,
        );
      },
      flush() {
        assembler.finish();
      },
    });
  }
}
