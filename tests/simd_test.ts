// The SIMD unmask over read buffers in the Wasm memory: it must equal the
// word loop at every length, alignment and key position, and leave the
// tail (length % 64) to the caller.

import { assertEquals } from "@std/assert";
import { takeReadSlot, unmaskSimd } from "../lib/codec/_simd.ts";
import { mask } from "../lib/codec/mod.ts";
import { prng, randomBytes } from "./_helpers.ts";

Deno.test("unmaskSimd equals mask() at every length, alignment and key offset", () => {
  const slot = takeReadSlot();
  // deno-std's assert is untyped here, so narrow by hand.
  if (!slot) throw new Error("Deno has WebAssembly SIMD, but no slot came");
  assertEquals(slot.length, 64 * 1024);
  const random = prng(7);
  const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
  for (const length of [0, 1, 63, 64, 65, 127, 128, 129, 1000, 65_000]) {
    for (const start of [0, 1, 2, 3, 5, 16]) {
      for (let keyOffset = 0; keyOffset < 4; keyOffset++) {
        const data = randomBytes(random, length);
        const expected = mask(data.slice(), key, keyOffset);
        const piece = slot.subarray(start, start + length);
        piece.set(data);
        const done = unmaskSimd(piece, key, keyOffset);
        assertEquals(done, length < 64 ? 0 : length & ~63);
        mask(piece.subarray(done), key, keyOffset + done);
        assertEquals(
          piece,
          expected,
          `${length} at ${start}, key ${keyOffset}`,
        );
      }
    }
  }
});

Deno.test("unmaskSimd leaves bytes outside the Wasm memory alone", () => {
  const outside = new Uint8Array(256).fill(1);
  assertEquals(unmaskSimd(outside, new Uint8Array([1, 2, 3, 4]), 0), 0);
  assertEquals(outside, new Uint8Array(256).fill(1));
});
