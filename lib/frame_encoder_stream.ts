/**
 * {@linkcode FrameEncoderStream}: frames in, bytes out.
 *
 * @module
 */

import { nextMaskKey } from "./_mask_key.ts";
import {
  assertSendableFrame,
  encodedHeaderLength,
  type Frame,
  type Role,
  writeFrameHeader,
} from "./frame.ts";
import { mask } from "./mask.ts";

/** Options for {@linkcode FrameEncoderStream}. */
export interface FrameEncoderStreamOptions {
  /**
   * The role of the sending endpoint. A client masks every frame with a
   * fresh key (RFC 6455 §5.3); a server never masks (§5.1).
   */
  role: Role;
}

/**
 * Payloads up to this size are copied after their header into one chunk;
 * larger unmasked payloads are passed on as they are, after a separate
 * header chunk, to avoid the copy.
 */
export const MAX_COALESCED_PAYLOAD = 16 * 1024;

/**
 * Encodes frames into bytes (RFC 6455 §5.2).
 *
 * - A client masks every frame. It uses the frame's own `mask` when one is
 *   given, else a fresh key from `crypto.getRandomValues`, drawn from a
 *   pooled buffer. The caller's payload is never changed: the masked bytes
 *   go into a new buffer along with the header.
 * - A server never masks. A payload of up to
 *   {@linkcode MAX_COALESCED_PAYLOAD} bytes is written with its header as one
 *   chunk; a larger one follows its header uncopied, so it must not be
 *   changed until it has been written.
 *
 * Frames that cannot be sent (a fragmented or oversized control frame, an
 * undefined opcode, a masked frame from a server) error the stream with a
 * `TypeError` or `RangeError`.
 *
 * @example Encode the unmasked "Hello" of RFC 6455 §5.7
 * ```ts
 * import { FrameEncoderStream, Opcode } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const frame = {
 *   fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: Opcode.Text,
 *   payload: new TextEncoder().encode("Hello"),
 * };
 * const [bytes] = await Array.fromAsync(
 *   ReadableStream.from([frame]).pipeThrough(new FrameEncoderStream({ role: "server" })),
 * );
 * assertEquals(bytes, new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
 * ```
 */
export class FrameEncoderStream extends TransformStream<Frame, Uint8Array> {
  /**
   * Makes an encoder.
   *
   * @param options The sending role (required).
   */
  constructor(options: FrameEncoderStreamOptions) {
    const client = options.role === "client";
    super({
      transform(frame, controller) {
        assertSendableFrame(frame);
        const { payload } = frame;
        const length = payload.length;
        if (client) {
          const key = frame.mask ?? nextMaskKey();
          const out = new Uint8Array(
            encodedHeaderLength(length, true) + length,
          );
          const start = writeFrameHeader(out, 0, frame, length, key);
          mask(payload, key, 0, out.subarray(start));
          controller.enqueue(out);
          return;
        }
        if (frame.mask !== undefined) {
          throw new TypeError(
            "Cannot encode frame: a server must not mask (RFC 6455 §5.1)",
          );
        }
        const headerLength = encodedHeaderLength(length, false);
        if (length <= MAX_COALESCED_PAYLOAD) {
          const out = new Uint8Array(headerLength + length);
          out.set(payload, writeFrameHeader(out, 0, frame, length));
          controller.enqueue(out);
          return;
        }
        const header = new Uint8Array(headerLength);
        writeFrameHeader(header, 0, frame, length);
        controller.enqueue(header);
        controller.enqueue(payload);
      },
    });
  }
}
