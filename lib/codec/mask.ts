/**
 * Payload masking (RFC 6455 §5.3).
 *
 * @module
 */

import { keyWord } from "./_unmask.ts";

/**
 * XORs `source` with the 4-byte masking key into `target`, four bytes at a
 * time where the buffers' alignment allows. Masking is its own inverse, so
 * the same call unmasks.
 *
 * RFC 6455 §5.3: octet i of the transformed data is octet i of the original
 * data XOR octet (i MOD 4) of the masking key. `keyOffset` is the `i` of
 * `source[0]`, so a payload that arrives in pieces can be unmasked piece by
 * piece.
 *
 * @param source The bytes to mask. It is not changed unless it is `target`.
 * @param key The 4-byte masking key.
 * @param keyOffset The position of `source[0]` within the whole payload.
 * @default {0}
 * @param target Where the result goes; it must be at least as long as
 * `source`.
 * @default {source (mask in place)}
 * @returns `target`.
 *
 * @example Mask and unmask "Hello" with the key of RFC 6455 §5.7
 * ```ts
 * import { mask } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
 * const hello = new TextEncoder().encode("Hello");
 * const masked = mask(hello, key, 0, new Uint8Array(5));
 * assertEquals(masked, new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]));
 * assertEquals(mask(masked, key), hello); // in place
 * ```
 */
export function mask(
  source: Uint8Array,
  key: Uint8Array,
  keyOffset = 0,
  target: Uint8Array = source,
): Uint8Array {
  const length = source.length;
  if (target.length < length) {
    throw new RangeError(
      `Cannot mask payload: the target holds ${target.length} bytes, the source ${length}`,
    );
  }
  if (key.length !== 4) {
    throw new RangeError(
      `Cannot mask payload: the key must be 4 bytes, not ${key.length}`,
    );
  }
  if (length === 0) return target;
  if (length < 64) {
    // Short payloads (most control frames and small messages): a byte loop
    // is as fast, and allocates no word view.
    for (let i = 0, k = keyOffset & 3; i < length; i++, k = (k + 1) & 3) {
      target[i] = source[i]! ^ key[k]!;
    }
    return target;
  }
  let src = source;
  // Word access needs source and target at the same alignment; when they
  // differ, copy first (a native memcpy) and mask the target in place.
  if (src !== target && ((src.byteOffset - target.byteOffset) & 3) !== 0) {
    target.set(src);
    src = target;
  }
  let i = 0;
  let k = keyOffset & 3;
  // Bytes before the first 4-byte boundary.
  const head = Math.min(length, (4 - (target.byteOffset & 3)) & 3);
  for (; i < head; i++, k = (k + 1) & 3) target[i] = src[i]! ^ key[k]!;
  const words = (length - i) >>> 2;
  if (words > 0) {
    // The key rotated so its first byte lines up with byte i.
    const word = keyWord(key, k);
    const s32 = new Int32Array(src.buffer, src.byteOffset + i, words);
    const t32 = src === target
      ? s32
      : new Int32Array(target.buffer, target.byteOffset + i, words);
    for (let w = 0; w < words; w++) t32[w] = s32[w]! ^ word;
    i += words << 2;
  }
  // k is unchanged by whole words; finish the tail byte by byte.
  for (; i < length; i++, k = (k + 1) & 3) target[i] = src[i]! ^ key[k]!;
  return target;
}
