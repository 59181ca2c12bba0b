// Codec micro-benchmarks: `deno task bench`. They call the pure functions
// and the parser directly, so the figures show the codec, not the streams.

import {
  encodedHeaderLength,
  encodeFrame,
  type Frame,
  FrameParser,
  mask,
  Opcode,
  Utf8Validator,
  writeFrameHeader,
} from "../lib/codec/mod.ts";

const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const SIZES: [string, number][] = [
  ["16 B", 16],
  ["1 KiB", 1024],
  ["64 KiB", 65536],
  ["1 MiB", 1 << 20],
];

function frameOf(n: number, masked: boolean): Frame {
  return {
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: Opcode.Binary,
    mask: masked ? KEY : undefined,
    payload: new Uint8Array(n).fill(0x61),
  };
}

for (const [name, n] of SIZES) {
  for (const masked of [false, true]) {
    const wire = encodeFrame(frameOf(n, masked));
    // The parser unmasks in place; decoding the same bytes again is fine for
    // timing (it toggles the payload).
    const parser = new FrameParser(
      { role: masked ? "server" : "client", maxFrameSize: 2 << 20 },
      () => {},
    );
    Deno.bench({
      name: `decode ${name} ${masked ? "masked" : "unmasked"}`,
      group: `decode ${name}`,
      n: n >= 65536 ? 500 : undefined,
      fn() {
        parser.push(wire);
      },
    });
    const frame = frameOf(n, masked);
    const out = new Uint8Array(encodedHeaderLength(n, masked) + n);
    Deno.bench({
      name: `encode ${name} ${masked ? "masked" : "unmasked"}`,
      group: `encode ${name}`,
      n: n >= 65536 ? 500 : undefined,
      fn() {
        const start = writeFrameHeader(out, 0, frame, n);
        if (masked) mask(frame.payload, KEY, 0, out.subarray(start));
        else out.set(frame.payload, start);
      },
    });
  }
}

function maskBytewise(data: Uint8Array, key: Uint8Array): void {
  for (let i = 0; i < data.length; i++) data[i]! ^= key[i & 3]!;
}

for (const [name, n] of SIZES.slice(1)) {
  const data = new Uint8Array(n);
  Deno.bench({
    name: `mask() word at a time, ${name}`,
    group: `mask ${name}`,
    baseline: true,
    fn() {
      mask(data, KEY);
    },
  });
  Deno.bench({
    name: `mask byte at a time, ${name}`,
    group: `mask ${name}`,
    fn() {
      maskBytewise(data, KEY);
    },
  });
}

const ascii = new TextEncoder().encode(
  JSON.stringify(
    Array.from(
      { length: 4000 },
      (_, i) => ({ id: i, name: `user ${i}`, ok: true }),
    ),
  ),
).subarray(0, 1 << 17);
const mixed = new TextEncoder().encode("κόσμε €uro 😀 ".repeat(9000)).subarray(
  0,
  1 << 17,
);
const fatal = new TextDecoder("utf-8", { fatal: true });
for (
  const [name, bytes] of [["ASCII JSON", ascii], ["mixed", mixed]] as const
) {
  // Cut at a code point boundary so both validators accept the input.
  let end = bytes.length;
  while ((bytes[end - 1]! & 0xc0) === 0x80 || bytes[end - 1]! >= 0xc0) end--;
  const input = bytes.subarray(0, end);
  const validator = new Utf8Validator();
  Deno.bench({
    name: `Utf8Validator, 128 KiB ${name}`,
    group: `utf8 ${name}`,
    baseline: true,
    fn() {
      validator.push(input);
    },
  });
  Deno.bench({
    name: `TextDecoder fatal decode, 128 KiB ${name}`,
    group: `utf8 ${name}`,
    fn() {
      fatal.decode(input);
    },
  });
  // What the assembler does with text that arrives in pieces: before, the
  // validator checked each piece and a second pass decoded the whole; now
  // one streaming fatal decoder does both as the pieces come.
  const pieces = Array.from(
    { length: 8 },
    (_, i) =>
      input.subarray(i * (input.length >> 3), (i + 1) * (input.length >> 3)),
  );
  pieces[7] = input.subarray(7 * (input.length >> 3));
  const plain = new TextDecoder("utf-8", { ignoreBOM: true });
  Deno.bench({
    name: `8 pieces: Utf8Validator + final decode, 128 KiB ${name}`,
    group: `utf8 pieces ${name}`,
    baseline: true,
    fn() {
      const v = new Utf8Validator();
      for (const piece of pieces) v.push(piece);
      plain.decode(input);
    },
  });
  Deno.bench({
    name: `8 pieces: streaming fatal TextDecoder, 128 KiB ${name}`,
    group: `utf8 pieces ${name}`,
    fn() {
      const d = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      let text = "";
      for (let i = 0; i < 7; i++) text += d.decode(pieces[i], { stream: true });
      text += d.decode(pieces[7]);
    },
  });
}
