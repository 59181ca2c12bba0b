/**
 * {@linkcode FrameEncoderStream}: frames in, bytes out.
 *
 * @module
 */

import { Outbox } from "./_outbox.ts";
import { releaseBlock } from "../_pools.ts";
import { assertSendableFrame, type Frame, type Role } from "./frame.ts";

/** Options for {@linkcode FrameEncoderStream}. */
export interface FrameEncoderStreamOptions {
  /**
   * The role of the sending endpoint. A client masks every frame with a
   * fresh key (RFC 6455 §5.3); a server never masks (§5.1).
   */
  role: Role;
}

/**
 * Encodes frames into bytes (RFC 6455 §5.2).
 *
 * It runs the connection's framer (one framing path for every face). Each
 * chunk it hands on is the reader's own.
 *
 * - A client masks every frame. It uses the frame's own `mask` when one is
 *   given, else a fresh key from `crypto.getRandomValues`, drawn from a
 *   pooled buffer. The caller's payload is never changed: the masked bytes
 *   go into a new buffer along with the header.
 * - A server never masks. A payload of up to 16 KiB is written with its
 *   header as one chunk; a larger one follows its header uncopied, so it
 *   must not be changed until it has been written.
 *
 * Frames that cannot be sent (a fragmented or oversized control frame, an
 * undefined opcode, a masked frame from a server) error the stream with a
 * `TypeError` or `RangeError`.
 *
 * @example Encode the unmasked "Hello" of RFC 6455 §5.7
 * ```ts
 * import { FrameEncoderStream, Opcode } from "@seed/websocket-streams/codec";
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
    const role = options.role;
    const outbox = new Outbox(role === "client");
    super({
      transform(frame, controller) {
        assertSendableFrame(frame);
        if (role === "server" && frame.mask !== undefined) {
          throw new TypeError(
            "Cannot encode frame: a server must not mask (RFC 6455 §5.1)",
          );
        }
        outbox.push(frame, frame.payload, frame.mask);
        for (let bytes = outbox.next(); bytes; bytes = outbox.next()) {
          // A pooled block goes back at once: the reader gets a copy of its
          // bytes. Anything else (a header of its own, a large payload sent
          // by reference) is handed on as it is.
          const block = outbox.nextBlock;
          if (block) {
            controller.enqueue(bytes.slice());
            releaseBlock(block);
          } else controller.enqueue(bytes);
        }
        outbox.size = 0;
      },
    });
  }
}
