import { assertEquals, assertThrows } from "@std/assert";
import { mask } from "../lib/codec/mod.ts";
import { unmaskAscii } from "../lib/codec/_unmask.ts";
import { prng, randomBytes } from "./_helpers.ts";

function reference(
  source: Uint8Array,
  key: Uint8Array,
  keyOffset: number,
): Uint8Array {
  return source.map((b, i) => b ^ key[(i + keyOffset) & 3]!);
}

Deno.test("mask() equals the byte-wise definition at every offset, length and alignment", () => {
  const random = prng(42);
  const key = randomBytes(random, 4);
  const backing = randomBytes(random, 300);
  for (let start = 0; start < 8; start++) {
    for (
      const length of [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200]
    ) {
      for (let keyOffset = 0; keyOffset < 4; keyOffset++) {
        const source = backing.subarray(start, start + length);
        const expected = reference(source, key, keyOffset);
        for (let targetStart = 0; targetStart < 4; targetStart++) {
          const target = new Uint8Array(length + 8).subarray(targetStart);
          mask(source, key, keyOffset, target);
          assertEquals(target.subarray(0, length), expected);
        }
        const inPlace = source.slice();
        assertEquals(mask(inPlace, key, keyOffset), expected);
        assertEquals(source, backing.subarray(start, start + length));
      }
    }
  }
});

Deno.test("mask() unmasks piece by piece with keyOffset", () => {
  const random = prng(7);
  const key = randomBytes(random, 4);
  const data = randomBytes(random, 1000);
  const masked = mask(data, key, 0, new Uint8Array(1000));
  const out = masked.slice();
  for (const [a, b] of [[0, 3], [3, 10], [10, 513], [513, 1000]] as const) {
    mask(out.subarray(a, b), key, a);
  }
  assertEquals(out, data);
});

Deno.test("mask() refuses a short target or a bad key", () => {
  assertThrows(
    () => mask(new Uint8Array(8), new Uint8Array(4), 0, new Uint8Array(7)),
    RangeError,
    "Cannot mask payload",
  );
  assertThrows(() => mask(new Uint8Array(8), new Uint8Array(3)), RangeError);
});

Deno.test("unmaskAscii() unmasks like the definition and tells ASCII at every position", () => {
  const random = prng(7);
  const key = randomBytes(random, 4);
  const lengths = [0, 1, 3, 4, 7, 8, 63, 64, 65, 66, 71, 72, 200, 1001, 4099];
  for (const length of lengths) {
    for (let start = 0; start < 4; start++) {
      for (let keyOffset = 0; keyOffset < 4; keyOffset++) {
        // ASCII once unmasked: plain bytes below 0x80, masked with the key.
        const plain = randomBytes(random, length).map((b) => b & 0x7f);
        const positions = length === 0
          ? [-1]
          : [-1, 0, 1, 2, 3, 4, 5, 8, length >> 1, length - 5, length - 1]
            .filter((p) => p < length);
        for (const bad of positions) {
          const expected = plain.slice();
          if (bad >= 0) expected[bad]! |= 0x80;
          const backing = new Uint8Array(length + 8);
          const bytes = backing.subarray(start, start + length);
          bytes.set(reference(expected, key, keyOffset));
          const ascii = unmaskAscii(bytes, key, keyOffset);
          assertEquals(bytes, expected, `length ${length}, at ${start}`);
          assertEquals(
            ascii,
            bad < 0,
            `length ${length}, start ${start}, key offset ${keyOffset}, non-ASCII at ${bad}`,
          );
        }
      }
    }
  }
});
