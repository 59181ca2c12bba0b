/**
 * {@linkcode MessageDecoderStream}: frames in, messages out.
 *
 * @module
 */

import { Inflater } from "../deflate/zlib.ts";
import { WebSocketError } from "../errors.ts";
import type { Frame } from "./frame.ts";
import type { DecodedFrame } from "./frame_decoder_stream.ts";
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  MessageAssembler,
  type MessageLimits,
} from "./assembler.ts";
import { controlMessage, type WebSocketMessage } from "./message.ts";
import { checkOptions, MESSAGE } from "../_options.ts";

/** How the peer compresses, with permessage-deflate (RFC 7692). */
export interface InflateOptions {
  /**
   * The peer's LZ77 window, 8–15 bits: `client_max_window_bits` when the
   * peer is a client, `server_max_window_bits` when it is a server.
   *
   * @default {15}
   */
  windowBits?: number;
  /**
   * Whether the peer resets its context after each message
   * (`client_no_context_takeover` or `server_no_context_takeover`).
   *
   * @default {false}
   */
  noContextTakeover?: boolean;
}

/** Options for {@linkcode MessageDecoderStream}. */
export interface MessageDecoderStreamOptions extends MessageLimits {
  /**
   * permessage-deflate as negotiated, from the peer's side: messages with
   * RSV1 set are inflated (bounded by `maxMessageSize`). Without it, RSV1
   * fails the stream with 1002. The `FrameDecoderStream` in front must let
   * RSV1 through: `allowedRsv: 4`.
   *
   * @default {undefined (no compression)}
   */
  inflate?: InflateOptions;
}

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
 * import { FrameDecoderStream, MessageDecoderStream } from "@seed/websocket-streams/codec";
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
    const inflate = options.inflate;
    if (inflate !== undefined && (typeof inflate !== "object" || !inflate)) {
      throw new TypeError(
        `Cannot create MessageDecoderStream: inflate must be an object, not ${inflate}`,
      );
    }
    if (inflate) {
      checkOptions("create MessageDecoderStream", inflate, [
        ["windowBits", { min: 8, max: 15 }],
      ], "inflate.");
      const takeover = inflate.noContextTakeover;
      if (takeover !== undefined && typeof takeover !== "boolean") {
        throw new TypeError(
          `Cannot create MessageDecoderStream: inflate.noContextTakeover must be a boolean, not ${
            JSON.stringify(takeover)
          }`,
        );
      }
    }
    const inflater = inflate
      ? new Inflater(
        inflate.windowBits ?? 15,
        inflate.noContextTakeover ?? false,
      )
      : undefined;
    const limit = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    let controller!: TransformStreamDefaultController<WebSocketMessage>;
    // A compressed message completed by the frame being pushed: inflated
    // before the next frame, so that messages keep their order.
    let pending: { opcode: number; payload: Uint8Array } | undefined;
    const handler = {
      message(data: string | Uint8Array) {
        controller.enqueue(
          typeof data === "string"
            ? { type: "text", data }
            : { type: "binary", data },
        );
      },
      control(opcode: number, payload: Uint8Array) {
        controller.enqueue(controlMessage(opcode, payload));
      },
      compressed(opcode: number, payload: Uint8Array) {
        pending = { opcode, payload };
      },
    };
    // Without the extension, the assembler refuses RSV1 (1002).
    const assembler = new MessageAssembler(options, {
      message: handler.message,
      control: handler.control,
      ...(inflater ? { compressed: handler.compressed } : {}),
    });
    super({
      start(c) {
        controller = c;
      },
      async transform(frame) {
        const decoded = frame as Partial<DecodedFrame> & Frame;
        // RFC 6455 §5.2: RSV2 and RSV3 belong to no extension we negotiate.
        if (frame.rsv2 || frame.rsv3) {
          throw new WebSocketError(
            "Cannot decode message: RSV2 or RSV3 is set and no extension allows it",
            { code: "ERR_UNEXPECTED_RSV" },
          );
        }
        assembler.push(
          {
            fin: frame.fin,
            opcode: frame.opcode,
            payloadLength: decoded.payloadLength ?? frame.payload.length,
            rsv1: frame.rsv1,
          },
          frame.payload,
          decoded.payloadOffset ?? 0,
        );
        if (pending === undefined) return;
        const { opcode, payload } = pending;
        pending = undefined;
        const data = await inflater!.inflateMessage(opcode, payload, limit);
        controller.enqueue(
          typeof data === "string"
            ? { type: "text", data }
            : { type: "binary", data },
        );
      },
      cancel() {
        inflater?.close();
      },
      flush() {
        inflater?.close();
        assembler.finish();
      },
    });
  }
}
