/**
 * {@linkcode FrameDecoderStream}: bytes in, frames out.
 *
 * @module
 */

import type { Frame } from "./frame.ts";
import { FrameParser, type FrameParserOptions } from "./frame_parser.ts";
import { checkOptions, FRAME } from "../_options.ts";

/**
 * A frame, or with `partial` a piece of one, as read from the wire.
 * The payload is unmasked. `payloadOffset` tells where this piece starts in
 * the frame's payload, and the frame is complete when
 * `payloadOffset + payload.length === payloadLength`.
 */
export interface DecodedFrame extends Frame {
  /** Where this piece starts within the frame's payload; 0 for whole frames. */
  payloadOffset: number;
  /** The payload length the frame's header declared. */
  payloadLength: number;
}

/** Options for {@linkcode FrameDecoderStream}. */
export type FrameDecoderStreamOptions = FrameParserOptions;

/**
 * Decodes a byte stream into frames (RFC 6455 §5.2). Chunks may break
 * anywhere: inside a header, a length or a masking key. Every protocol
 * violation errors the stream with a {@linkcode WebSocketError} that carries
 * its close code (1002, or 1009 for a frame over `maxFrameSize`).
 *
 * The design for fail-fast consumers is partial-payload frames: with
 * `partial: true`, a data frame's payload is handed on in pieces as it
 * arrives (see {@linkcode DecodedFrame}), so that a
 * {@linkcode MessageDecoderStream} can reject invalid UTF-8 before the rest
 * of the frame has arrived, and no frame is buffered whole. Without it,
 * frames come whole.
 *
 * The stream takes ownership of the chunks written to it: masked payloads
 * are unmasked in place, and frames that lie inside one chunk are views of
 * it.
 *
 * @example Decode the two-fragment "Hello" of RFC 6455 §5.7
 * ```ts
 * import { FrameDecoderStream } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = new Uint8Array([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
 * const frames = await Array.fromAsync(
 *   ReadableStream.from([bytes]).pipeThrough(new FrameDecoderStream({ role: "client" })),
 * );
 * assertEquals(frames.map((frame) => [frame.fin, frame.opcode, frame.payload.length]), [
 *   [false, 1, 3],
 *   [true, 0, 2],
 * ]);
 * ```
 */
export class FrameDecoderStream
  extends TransformStream<Uint8Array, DecodedFrame> {
  /**
   * Makes a decoder.
   *
   * @param options The receiving role (required), the allowed RSV bits,
   * `maxFrameSize` (default 32 MiB) and `partial` (default `false`).
   * @throws {RangeError | TypeError} For `maxFrameSize` or `allowedRsv` out
   * of its range, or not a number.
   */
  constructor(options: FrameDecoderStreamOptions) {
    checkOptions("create FrameDecoderStream", options, FRAME);
    let controller!: TransformStreamDefaultController<DecodedFrame>;
    const parser = new FrameParser(options, (header, payload, offset) => {
      controller.enqueue({
        fin: header.fin,
        rsv1: header.rsv1,
        rsv2: header.rsv2,
        rsv3: header.rsv3,
        opcode: header.opcode,
        mask: header.mask,
        payload,
        payloadOffset: offset,
        payloadLength: header.payloadLength,
      });
    });
    super({
      start(c) {
        controller = c;
      },
      transform(chunk) {
        parser.push(chunk);
      },
      flush() {
        parser.finish();
      },
    });
  }
}
