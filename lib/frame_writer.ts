/**
 * Role-aware frame encoding into chunks, shared by the
 * {@linkcode FrameEncoderStream} and the connection.
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

/**
 * Payloads up to this size are copied after their header into one chunk;
 * larger unmasked payloads are passed on as they are, after a separate
 * header chunk, to avoid the copy.
 */
export const MAX_COALESCED_PAYLOAD = 16 * 1024;

/**
 * Encodes one frame for a role, handing its bytes to `push` as one chunk or
 * (for a large unmasked payload) two.
 *
 * - A client masks (RFC 6455 §5.3) with the frame's own `mask`, or a fresh
 *   key from `crypto.getRandomValues` drawn from a pooled buffer. The masked
 *   bytes go into a new buffer with the header; the payload is not changed.
 * - A server never masks (§5.1). A payload up to
 *   {@linkcode MAX_COALESCED_PAYLOAD} bytes is copied after its header; a
 *   larger one follows its header uncopied.
 *
 * @param frame The frame.
 * @param role The sending role.
 * @param push Receives the chunks, in order.
 * @throws {TypeError | RangeError} For a frame that cannot be sent, or a
 * masked frame from a server.
 *
 * @example A server frame in one chunk
 * ```ts
 * import { encodeFrameChunks, Opcode } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const chunks: Uint8Array[] = [];
 * const frame = {
 *   fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: Opcode.Text,
 *   payload: new Uint8Array([0x48, 0x69]),
 * };
 * encodeFrameChunks(frame, "server", (chunk) => chunks.push(chunk));
 * assertEquals(chunks, [new Uint8Array([0x81, 0x02, 0x48, 0x69])]);
 * ```
 */
export function encodeFrameChunks(
  frame: Frame,
  role: Role,
  push: (chunk: Uint8Array) => void,
): void {
  assertSendableFrame(frame);
  const { payload } = frame;
  const length = payload.length;
  if (role === "client") {
    const key = frame.mask ?? nextMaskKey();
    const out = new Uint8Array(encodedHeaderLength(length, true) + length);
    const start = writeFrameHeader(out, 0, frame, length, key);
    mask(payload, key, 0, out.subarray(start));
    push(out);
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
    push(out);
    return;
  }
  const header = new Uint8Array(headerLength);
  writeFrameHeader(header, 0, frame, length);
  push(header);
  push(payload);
}
