// Seeded fuzzing of the protocol engine (lib/protocol.ts, and through it the
// parser and the assembler): random bytes, valid frames mutated, and valid
// streams split at random, for both roles, with and without
// permessage-deflate negotiated. Every input must end in events or in a
// WebSocketError with a close code from the allowed set: never a TypeError,
// a RangeError from a typed array, or any other exception.
//
// FUZZ_COUNT sets the number of inputs per kind (CI: 100,000 random and
// 100,000 mutated, 10,000 split; with the handshake fuzzers over 200,000);
// `deno task fuzz` runs ten times as many. FUZZ_SEED picks the seed.

import { assert, assertEquals } from "@std/assert";
import { WebSocketError } from "../../mod.ts";
import { Protocol, type ProtocolEvents } from "../../lib/protocol.ts";
import { Opcode, type Role } from "../../lib/codec/frame.ts";
import { concat, prng, randInt, randomBytes, rawFrame } from "../_helpers.ts";

const COUNT = Number(Deno.env.get("FUZZ_COUNT") ?? 100_000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 6455);
// RFC 6455 §7.4.1: the codes a failure of received data may carry.
const ALLOWED = new Set([1002, 1007, 1009]);
// Small limits, so that a length field cannot make the engine allocate
// much: every buffer is bounded before it is allocated.
const LIMITS = { maxFrameSize: 1 << 16, maxMessageSize: 1 << 17 };

interface Outcome {
  events: unknown[];
  error?: WebSocketError;
  /** The payloads of the pongs queued in the outbox, in order. */
  pongs: string[];
}

/** The pong payloads an (unmasked, server) outbox holds. */
function pongsIn(protocol: Protocol): string[] {
  const pongs: string[] = [];
  const chunks: Uint8Array[] = [];
  for (let b = protocol.outbox.next(); b; b = protocol.outbox.next()) {
    chunks.push(b.slice());
  }
  const bytes = concat(...chunks);
  const masked = bytes.length > 1 &&
    (bytes[1]! & 0x80) !== 0;
  for (let pos = 0; pos + 2 <= bytes.length;) {
    const length = bytes[pos + 1]! & 0x7f; // pongs are short
    const head = 2 + (masked ? 4 : 0);
    let payload = bytes.slice(pos + head, pos + head + length);
    if (masked) {
      const key = bytes.subarray(pos + 2, pos + 6);
      payload = payload.map((b, i) => b ^ key[i & 3]!);
    }
    if ((bytes[pos]! & 0x0f) === 0xa) pongs.push(payload.join());
    pos += head + length;
  }
  return pongs;
}

/** Feeds `chunks` to a fresh engine; returns what came out. */
function run(role: Role, deflate: boolean, chunks: Uint8Array[]): Outcome {
  const events: unknown[] = [];
  const sink: ProtocolEvents = {
    message: (data) => events.push(data),
    compressed: (opcode, payload) => events.push({ opcode, z: payload.length }),
    pong: (payload) => events.push({ pong: payload.length }),
    close: (info) => events.push(info),
    output: () => {},
    pongWaits: () => {},
    compress: () => Promise.resolve(),
  };
  const protocol = new Protocol(
    { role, ...LIMITS, threshold: deflate ? 1024 : undefined },
    sink,
  );
  try {
    for (const chunk of chunks) protocol.receive(chunk);
  } catch (error) {
    if (!(error instanceof WebSocketError)) {
      throw new Error(
        `not a WebSocketError: ${(error as Error)?.stack ?? error}`,
      );
    }
    if (error.closeCode === null || !ALLOWED.has(error.closeCode)) {
      throw new Error(`close code ${error.closeCode} for ${error.code}`);
    }
    return { events, error, pongs: pongsIn(protocol) };
  }
  return { events, pongs: pongsIn(protocol) };
}

/** Splits bytes at random points (the parser's input is any split). */
function split(random: () => number, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = 1 +
      randInt(random, Math.min(bytes.length - at, 1 + randInt(random, 64)));
    chunks.push(bytes.slice(at, at + n));
    at += n;
  }
  return chunks;
}

const te = new TextEncoder();

/** A valid frame stream from `role`'s peer (masked toward a server). */
function validStream(random: () => number, role: Role) {
  const key = role === "server" ? randomBytes(random, 4) : undefined;
  const frames: Uint8Array[] = [];
  const messages: unknown[] = [];
  const pings: string[] = [];
  const count = 1 + randInt(random, 4);
  for (let i = 0; i < count; i++) {
    const kind = randInt(random, 5);
    if (kind === 0) {
      const data = randomBytes(random, randInt(random, 126));
      // A ping: answered in the outbox, no event.
      frames.push(rawFrame(0x89, data, key));
      pings.push(data.join());
    } else if (kind === 1) {
      // A text message in two fragments.
      const text = "héllo".repeat(randInt(random, 30));
      const bytes = te.encode(text);
      const cut = randInt(random, bytes.length + 1);
      frames.push(rawFrame(0x01, bytes.subarray(0, cut), key));
      frames.push(rawFrame(0x80, bytes.subarray(cut), key));
      messages.push(text);
    } else if (kind === 2) {
      const text = "x".repeat(randInt(random, 300));
      frames.push(rawFrame(0x81, te.encode(text), key));
      messages.push(text);
    } else {
      // Mostly small; now and then up to 60,000 bytes (all length forms,
      // within maxFrameSize).
      const data = randomBytes(
        random,
        randInt(random, random() < 0.03 ? 60000 : 400),
      );
      frames.push(rawFrame(0x82, data, key));
      messages.push(data);
    }
  }
  const bytes = concat(...frames);
  return { bytes, messages, pings };
}

/**
 * One of the mutations of a valid stream. `mustFail` is set when the
 * mutation alone makes the stream invalid: a reserved opcode, or an RSV bit
 * no extension allows, on the first frame (RFC 6455 §5.2).
 */
function mutate(
  random: () => number,
  input: Uint8Array,
  deflate: boolean,
): { bytes: Uint8Array; mustFail: boolean } {
  const result = mutateBytes(random, input);
  const b0 = result[0];
  let mustFail = false;
  if (b0 !== undefined && lastKind === 3) {
    const opcode = b0 & 0x0f;
    mustFail = (opcode > 0x2 && opcode < 0x8) || opcode > 0xa;
  } else if (b0 !== undefined && lastKind === 5) {
    const data = (b0 & 0x0f) === 0x1 || (b0 & 0x0f) === 0x2;
    mustFail = (b0 & 0x30) !== 0 || !(deflate && data);
  }
  return { bytes: result, mustFail };
}

let lastKind = 0;

function mutateBytes(random: () => number, input: Uint8Array): Uint8Array {
  const bytes = input.slice();
  switch (lastKind = randInt(random, 7)) {
    case 0: { // bit flips
      const flips = 1 + randInt(random, 4);
      for (let i = 0; i < flips && bytes.length; i++) {
        bytes[randInt(random, bytes.length)]! ^= 1 << randInt(random, 8);
      }
      return bytes;
    }
    case 1: // truncation
      return bytes.subarray(0, randInt(random, bytes.length + 1));
    case 2: // a length field changed
      if (bytes.length > 1) {
        bytes[1] = (bytes[1]! & 0x80) | randInt(random, 128);
      }
      return bytes;
    case 3: // the opcode swapped
      if (bytes.length) bytes[0] = (bytes[0]! & 0xf0) | randInt(random, 16);
      return bytes;
    case 4: { // bytes inserted
      const at = randInt(random, bytes.length + 1);
      const extra = randomBytes(random, 1 + randInt(random, 8));
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes.subarray(0, at));
      out.set(extra, at);
      out.set(bytes.subarray(at), at + extra.length);
      return out;
    }
    case 5: // an RSV bit set
      if (bytes.length) bytes[0]! |= 0x10 << randInt(random, 3);
      return bytes;
    default: { // a 64-bit length up to 2^63
      const out = new Uint8Array(10 + randInt(random, 8));
      out[0] = 0x82;
      out[1] = 0xff;
      for (let i = 2; i < 10; i++) out[i] = randInt(random, 256);
      return out;
    }
  }
}

Deno.test(`fuzz: ${COUNT} random inputs end in events or an allowed close code`, () => {
  const random = prng(SEED);
  for (let i = 0; i < COUNT; i++) {
    const role: Role = i % 2 ? "server" : "client";
    const bytes = randomBytes(random, randInt(random, 64));
    run(role, i % 3 === 0, split(random, bytes));
  }
});

Deno.test(`fuzz: ${COUNT} mutated valid streams end in events or an allowed close code`, () => {
  const random = prng(SEED + 1);
  let failures = 0;
  for (let i = 0; i < COUNT; i++) {
    const role: Role = i % 2 ? "server" : "client";
    const deflate = i % 3 === 0;
    const { bytes } = validStream(random, role);
    const mutated = mutate(random, bytes, deflate);
    const chunks = random() < 0.5
      ? [mutated.bytes]
      : split(random, mutated.bytes);
    const outcome = run(role, deflate, chunks);
    if (outcome.error) failures++;
    else if (mutated.mustFail) {
      throw new Error(
        `accepted an invalid first frame: ${[
          ...mutated.bytes.subarray(0, 14),
        ]}`,
      );
    }
  }
  // The mutations are not all harmless: most must be caught.
  assert(failures > COUNT / 4, `only ${failures} of ${COUNT} failed`);
});

Deno.test(`fuzz: ${COUNT / 10} valid streams split at random decode to their messages`, () => {
  const random = prng(SEED + 2);
  for (let i = 0; i < COUNT / 10; i++) {
    const role: Role = i % 2 ? "server" : "client";
    const { bytes, messages, pings } = validStream(random, role);
    const outcome = run(role, false, split(random, bytes));
    assertEquals(outcome.error, undefined);
    assertEquals(outcome.events, messages);
    // RFC 6455 §5.5.3: one pong per ping, with its payload, in order.
    assertEquals(outcome.pongs, pings);
  }
});

Deno.test("fuzz: a length past maxFrameSize fails with 1009 from the header alone", () => {
  for (const length of [2n ** 62n, BigInt(LIMITS.maxFrameSize) + 1n]) {
    const header = new Uint8Array(14);
    header[0] = 0x82;
    header[1] = 0x80 | 127;
    new DataView(header.buffer).setBigUint64(2, length);
    const outcome = run("server", false, [header]);
    assertEquals(outcome.error?.closeCode, 1009);
  }
  // The opcode constant keeps this file honest about what 0x82 is.
  assertEquals(0x82 & 0x0f, Opcode.Binary);
});
