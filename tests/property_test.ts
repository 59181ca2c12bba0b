// Seeded round-trip property tests: random messages of every size class,
// random fragmentation, interleaved pings, random chunking of the bytes, in
// both roles. 10,000 iterations; a failure prints its seed.

import { assertEquals } from "@std/assert";
import {
  encodeMessage,
  FrameDecoderStream,
  FrameEncoderStream,
  FrameParser,
  MessageAssembler,
  MessageDecoderStream,
  MessageEncoderStream,
  type Role,
  type WebSocketMessage,
} from "../lib/codec/mod.ts";
import { chunk, concat, prng, randInt, randomBytes } from "./_helpers.ts";
import { encodeFrame } from "../lib/codec/frame.ts";
import { nextMaskKey } from "../lib/codec/_mask_key.ts";

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

function randomText(random: () => number, n: number): string {
  const pool = ["a", "é", "€", "😀", " ", "z", "ж", "\u{10ffff}", "\ufeff"];
  let text = "";
  while (text.length < n) text += pool[randInt(random, pool.length)];
  return text;
}

function randomMessage(random: () => number): WebSocketMessage {
  const big = random() < 0.02;
  const n = big
    ? SIZES[randInt(random, SIZES.length)]!
    : random() < 0.3
    ? SIZES[randInt(random, 5)]!
    : randInt(random, 300);
  return random() < 0.5
    ? { type: "text", data: randomText(random, Math.min(n, 70_000)) }
    : { type: "binary", data: randomBytes(random, n) };
}

interface Case {
  wire: Uint8Array;
  expected: WebSocketMessage[];
  receiver: Role;
}

function makeCase(seed: number): Case {
  const random = prng(seed);
  const sender: Role = random() < 0.5 ? "client" : "server";
  const parts: Uint8Array[] = [];
  const expected: WebSocketMessage[] = [];
  const count = 1 + randInt(random, 4);
  for (let m = 0; m < count; m++) {
    const message = randomMessage(random);
    const size = message.type === "text"
      ? new TextEncoder().encode(message.data).length
      : message.type === "binary"
      ? message.data.length
      : 0;
    const fragmentSize = random() < 0.5
      ? undefined
      : 1 + randInt(random, Math.max(1, size));
    const frames = encodeMessage(message, { fragmentSize });
    for (const frame of frames) {
      // Interleave pings between (and inside) fragmented messages.
      if (random() < 0.1) {
        const data = randomBytes(random, randInt(random, 126));
        parts.push(encodeFrame({
          fin: true,
          rsv1: false,
          rsv2: false,
          rsv3: false,
          opcode: 0x9,
          payload: data,
          mask: sender === "client" ? nextMaskKey().slice() : undefined,
        }));
        expected.push({ type: "ping", data });
      }
      parts.push(encodeFrame({
        ...frame,
        mask: sender === "client" ? nextMaskKey().slice() : undefined,
      }));
    }
    expected.push(message);
  }
  return {
    wire: concat(...parts),
    expected,
    receiver: sender === "client" ? "server" : "client",
  };
}

Deno.test("10,000 seeded round trips through the pure parser and assembler", () => {
  for (let seed = 1; seed <= 10_000; seed++) {
    const { wire, expected, receiver } = makeCase(seed);
    const got: WebSocketMessage[] = [];
    const assembler = new MessageAssembler({ copy: true }, {
      message: (data) =>
        got.push(
          typeof data === "string"
            ? { type: "text", data }
            : { type: "binary", data },
        ),
      control: (_, data) => got.push({ type: "ping", data }),
    });
    const parser = new FrameParser(
      { role: receiver, partial: seed % 2 === 0 },
      (header, payload, offset) => assembler.push(header, payload, offset),
    );
    for (const piece of chunk(wire, { seed })) parser.push(piece);
    parser.finish();
    assembler.finish();
    try {
      assertEquals(got, expected);
    } catch (error) {
      throw new Error(`seed ${seed}: ${error}`);
    }
  }
});

Deno.test("500 seeded round trips through the four streams", async () => {
  for (let seed = 20_001; seed <= 20_500; seed++) {
    const random = prng(seed);
    const role: Role = random() < 0.5 ? "client" : "server";
    const messages = Array.from(
      { length: 1 + randInt(random, 5) },
      () => randomMessage(random),
    );
    const bytes = await Array.fromAsync(
      ReadableStream.from(messages)
        .pipeThrough(
          new MessageEncoderStream({
            fragmentSize: random() < 0.5
              ? undefined
              : 1 + randInt(random, 4096),
          }),
        )
        .pipeThrough(new FrameEncoderStream({ role })),
    );
    const got = await Array.fromAsync(
      ReadableStream.from(chunk(concat(...bytes), { seed }))
        .pipeThrough(
          new FrameDecoderStream({
            role: role === "client" ? "server" : "client",
            partial: true,
          }),
        )
        .pipeThrough(new MessageDecoderStream()),
    );
    try {
      assertEquals(got, messages);
    } catch (error) {
      throw new Error(`seed ${seed}: ${error}`);
    }
  }
});
