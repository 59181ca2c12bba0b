import { assertEquals, assertThrows } from "@std/assert";
import { mask } from "../mod.ts";
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
