// The outbox (private) encodes text straight into its blocks, so it must
// pick the header's length form before it knows the UTF-8 length. Every
// form boundary, ASCII or not, masked or not, frames sharing blocks and
// crossing from one to the next, through the real decoder.

import { assert, assertEquals } from "@std/assert";
import { frameBits, Outbox } from "../lib/codec/_outbox.ts";
import { releaseBlock } from "../lib/_pools.ts";
import { concat, decodeFrames, prng, randInt } from "./_helpers.ts";

function drain(outbox: Outbox): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let bytes = outbox.next(); bytes; bytes = outbox.next()) {
    parts.push(bytes.slice());
    if (outbox.nextBlock) releaseBlock(outbox.nextBlock);
  }
  return concat(...parts);
}

/** The payload lengths in the headers, checked to use the minimal form. */
function headerLengths(bytes: Uint8Array): number[] {
  const lengths: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let at = 0; at < bytes.length;) {
    const field = bytes[at + 1]! & 0x7f;
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let length = field;
    let header = 2;
    if (field === 126) {
      length = view.getUint16(at + 2);
      header = 4;
      assert(length >= 126, `16-bit form for ${length} bytes`);
    } else if (field === 127) {
      length = Number(view.getBigUint64(at + 2));
      header = 10;
      assert(length >= 0x10000, `64-bit form for ${length} bytes`);
    }
    lengths.push(length);
    at += header + (masked ? 4 : 0) + length;
  }
  return lengths;
}

const te = new TextEncoder();
const td = new TextDecoder();

// Lengths in UTF-16 units around each length-form boundary: 7-bit up to
// 125 bytes, where the most (3 bytes a unit) crosses 126 at 42 units;
// 16-bit up to 65,535 bytes, where the most crosses at 21,846 units.
const LENGTHS = [
  0,
  1,
  41,
  42,
  43,
  63,
  64,
  65,
  125,
  126,
  127,
  200,
  21_845,
  21_846,
  30_000,
];

function texts(length: number): string[] {
  const ascii = "a".repeat(length);
  if (length === 0) return [ascii];
  const at = (i: number, unit: string) =>
    ascii.slice(0, i) + unit + ascii.slice(i + unit.length);
  return [
    ascii,
    at(0, "é"), // 2 bytes, first
    at(length >> 1, "é"),
    at(length - 1, "日"), // 3 bytes, last
    "日".repeat(length),
    length >= 2 ? at(length - 2, "🎉") : "é", // a surrogate pair, 4 bytes
  ];
}

for (const masked of [false, true]) {
  Deno.test(`pushText: every length form, ASCII or not (${masked ? "client, masked" : "server"})`, async () => {
    const all = LENGTHS.flatMap(texts);
    const outbox = new Outbox(masked);
    for (const text of all) assert(outbox.pushText(text));
    const size = outbox.size;
    const bytes = drain(outbox);
    assertEquals(size, bytes.length);
    assertEquals(
      headerLengths(bytes),
      all.map((text) => te.encode(text).length),
    );
    const { items, error } = await decodeFrames(bytes, "whole", {
      role: masked ? "server" : "client",
      maxFrameSize: 1 << 20,
    });
    assertEquals(error, undefined);
    assertEquals(items.map((frame) => td.decode(frame.payload)), all);
    assert(items.every((frame) => frame.opcode === 1 && frame.fin));
  });
}

Deno.test("seeded: pushText and push interleaved keep order and bytes", async () => {
  const random = prng(21);
  const units = ["a", "Z", " ", "é", "日", "🎉", "{", "\u007f", "\u0080"];
  const outbox = new Outbox(true);
  const sent: (string | Uint8Array)[] = [];
  for (let i = 0; i < 400; i++) {
    if (random() < 0.2) {
      const payload = new Uint8Array(randInt(random, 300)).fill(i & 0xff);
      outbox.push(frameBits(2, true, false), payload);
      sent.push(payload);
      continue;
    }
    const parts: string[] = [];
    const length = randInt(random, 140);
    for (let n = 0; n < length; n++) {
      parts.push(units[randInt(random, units.length)]!);
    }
    const text = parts.join("");
    assert(outbox.pushText(text));
    sent.push(text);
  }
  const { items, error } = await decodeFrames(drain(outbox), "whole", {
    role: "server",
  });
  assertEquals(error, undefined);
  assertEquals(
    items.map((f) => f.opcode === 1 ? td.decode(f.payload) : f.payload),
    sent,
  );
});
