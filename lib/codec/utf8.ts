/**
 * Incremental UTF-8 validation, so that a text message can be failed with
 * 1007 on the first invalid byte (RFC 6455 §8.1), even when that byte arrives
 * in the middle of a frame that spans many TCP reads.
 *
 * @module
 */

/**
 * Validates UTF-8 incrementally: bytes may be pushed in pieces that split
 * code points anywhere. It rejects everything that the Unicode standard
 * (Table 3-7, "Well-Formed UTF-8 Byte Sequences") rejects: overlong forms,
 * UTF-16 surrogates (`ED A0 80`…`ED BF BF`), code points above U+10FFFF, stray
 * continuation bytes, and the bytes C0, C1 and F5–FF.
 *
 * @example Find an invalid byte as soon as it arrives
 * ```ts
 * import { Utf8Validator } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const validator = new Utf8Validator();
 * assertEquals(validator.push(new Uint8Array([0x68, 0xe2, 0x82])), -1);
 * assertEquals(validator.complete, false); // inside "€"
 * assertEquals(validator.push(new Uint8Array([0xac, 0xed, 0xa0])), 2); // a surrogate
 * ```
 */
export class Utf8Validator {
  // The number of continuation bytes still expected, and the range the next
  // one must fall in. The range narrows only for the first continuation byte
  // after E0, ED, F0 and F4 (Unicode Table 3-7).
  #need = 0;
  #lo = 0x80;
  #hi = 0xbf;

  /**
   * Whether every code point pushed so far is complete. A message that ends
   * while this is `false` is truncated, and so invalid.
   *
   * @returns `true` when no sequence is open.
   */
  get complete(): boolean {
    return this.#need === 0;
  }

  /**
   * Validates the next piece of the input.
   *
   * @param bytes The bytes to validate.
   * @param start The first index of `bytes` to read.
   * @default {0}
   * @param end One past the last index of `bytes` to read.
   * @default {bytes.length}
   * @returns `-1` when the input is valid so far, else the index in `bytes`
   * of the first byte that makes it invalid. After an error the validator
   * must be {@linkcode Utf8Validator.reset}.
   */
  push(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
    let need = this.#need;
    let lo = this.#lo;
    let hi = this.#hi;
    let i = start;
    while (i < end) {
      const b = bytes[i]!;
      if (need === 0) {
        if (b < 0x80) {
          // ASCII fast path: the common case for JSON and most protocols.
          i++;
          while (i < end && bytes[i]! < 0x80) i++;
          continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
          need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) lo = 0xa0; // no overlong 3-byte forms
          else if (b === 0xed) hi = 0x9f; // no surrogates U+D800–U+DFFF
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) lo = 0x90; // no overlong 4-byte forms
          else if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
        } else {
          this.#save(need, lo, hi);
          return i;
        }
      } else {
        if (b < lo || b > hi) {
          this.#save(need, lo, hi);
          return i;
        }
        lo = 0x80;
        hi = 0xbf;
        need--;
      }
      i++;
    }
    this.#save(need, lo, hi);
    return -1;
  }

  /** Forgets any open sequence, ready for the next message. */
  reset(): void {
    this.#save(0, 0x80, 0xbf);
  }

  #save(need: number, lo: number, hi: number): void {
    this.#need = need;
    this.#lo = lo;
    this.#hi = hi;
  }
}

/**
 * Tells whether `bytes` are complete, well-formed UTF-8.
 *
 * @param bytes The bytes to check.
 * @returns `true` when the bytes are valid UTF-8 and end on a code point
 * boundary.
 *
 * @example Check a few sequences
 * ```ts
 * import { isValidUtf8 } from "@seed/websocket-streams/codec";
 * import { assert, assertFalse } from "@std/assert";
 *
 * assert(isValidUtf8(new TextEncoder().encode("κόσμε")));
 * assertFalse(isValidUtf8(new Uint8Array([0xc0, 0x80]))); // overlong NUL
 * assertFalse(isValidUtf8(new Uint8Array([0xe2, 0x82]))); // truncated
 * ```
 */
export function isValidUtf8(bytes: Uint8Array): boolean {
  const validator = new Utf8Validator();
  return validator.push(bytes) === -1 && validator.complete;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Cuts `text` to at most `maxBytes` bytes of UTF-8, on a code point boundary,
 * so that a close reason never breaks a character in two.
 *
 * @param text The text to cut.
 * @param maxBytes The most bytes the encoded result may take.
 * @returns `text` itself when it fits, else its longest prefix that fits.
 *
 * @example Cut a reason to the 123 bytes a close frame allows
 * ```ts
 * import { truncateUtf8 } from "./utf8.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(truncateUtf8("€€", 4), "€"); // "€" takes 3 bytes
 * assertEquals(truncateUtf8("ok", 123), "ok");
 * ```
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  // A UTF-16 code unit encodes to at most 3 bytes, so short strings fit.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) to a code point start.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}

// ignoreBOM keeps a leading U+FEFF, which is part of a message.
const looseDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 that must be valid, and throws if it is not: the same
 * outcome as a fatal `TextDecoder`, faster. Deno decodes non-fatal UTF-8
 * on a direct path and fatal UTF-8 on a general one; measured on 16 KiB
 * (`bench/codec_bench.ts`), the fatal one costs 5.6 µs for ASCII against
 * 0.7 µs here, and 11.4 against 4.6 µs for mixed scripts. Invalid input
 * decodes with U+FFFD in it, so only a result that holds U+FFFD (invalid,
 * or a real U+FFFD) is decoded again, fatally, to tell which.
 *
 * @param bytes The UTF-8 bytes.
 * @returns The text, a leading U+FEFF kept.
 * @throws {TypeError} When `bytes` is not valid UTF-8.
 *
 * @example Valid and invalid input
 * ```ts
 * import { decodeUtf8 } from "./utf8.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(decodeUtf8(new Uint8Array([0xef, 0xbf, 0xbd])), "\uFFFD");
 * assertThrows(() => decodeUtf8(new Uint8Array([0xc3, 0x28])), TypeError);
 * ```
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const text = looseDecoder.decode(bytes);
  if (text.includes("\uFFFD")) return fatalDecoder.decode(bytes);
  return text;
}

/**
 * Whether every byte is below 0x80, checked a 32-bit word at a time: the
 * cheap first test of text, since ASCII is always valid UTF-8.
 *
 * @param bytes The bytes.
 * @returns `true` when all are ASCII.
 *
 * @example
 * ```ts
 * import { isAscii } from "./utf8.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isAscii(new TextEncoder().encode("plain")));
 * assert(!isAscii(new TextEncoder().encode("é")));
 * ```
 */
export function isAscii(bytes: Uint8Array): boolean {
  const length = bytes.length;
  let i = 0;
  const head = Math.min(length, (4 - (bytes.byteOffset & 3)) & 3);
  for (; i < head; i++) if (bytes[i]! & 0x80) return false;
  const words = (length - i) >>> 2;
  if (words > 0) {
    const w32 = new Int32Array(bytes.buffer, bytes.byteOffset + i, words);
    let acc = 0;
    for (let w = 0; w < words; w++) {
      acc |= w32[w]!;
      // Stop early on non-ASCII text without a branch per word.
      if ((w & 255) === 255 && (acc & 0x80808080)) return false;
    }
    if (acc & 0x80808080) return false;
    i += words << 2;
  }
  for (; i < length; i++) if (bytes[i]! & 0x80) return false;
  return true;
}
