// Seeded fuzzing of a live serve(): after a valid handshake (with and
// without permessage-deflate) a raw client sends a valid frame stream,
// mutated (bit flips, truncation, a length field changed, an opcode
// swapped, bytes inserted, an RSV bit set), whole or split into many
// writes, then half-closes (TCP FIN, often in the middle of a frame); or it
// resets TCP in the middle of a frame.
//
// The oracle is the sans-I/O engine (lib/protocol.ts) fed the same bytes,
// with the inflating checked by node:zlib: the peer must read the close code
// the engine fails with, the echo of the close frame it read, or EOF where
// the input ended before either (no close is possible: the peer is gone).
// Then TCP ends, the server's `closed` agrees with what the peer read, and
// a control client echoes throughout, unaffected.
//
// FUZZ_LIVE_COUNT sets the number of connections (CI: 300); `deno task
// fuzz` (FUZZ_COUNT=1000000) runs 2,000. FUZZ_SEED picks the seed.

import { assert, assertEquals } from "@std/assert";
import net from "node:net";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import {
  connect,
  serve,
  type WebSocketCloseInfo,
  WebSocketError,
} from "../../mod.ts";
import { Protocol } from "../../lib/protocol.ts";
import { isValidUtf8 } from "../../lib/codec/mod.ts";
import {
  concat,
  FrameReader,
  prng,
  randInt,
  randomBytes,
  rawFrame,
  upgradeRequest,
  within,
} from "../_helpers.ts";

const FUZZ_COUNT = Deno.env.get("FUZZ_COUNT");
const COUNT = Number(
  Deno.env.get("FUZZ_LIVE_COUNT") ??
    (FUZZ_COUNT ? Math.max(300, Number(FUZZ_COUNT) / 500) : 300),
);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 6455);
/** Connections under way at once. */
const PARALLEL = 8;
const LIMITS = { maxFrameSize: 1 << 16, maxMessageSize: 1 << 17 };
const te = new TextEncoder();
const td = new TextDecoder();

/** What the peer reads: a close frame's code, or EOF with none. */
type Heard = number | "EOF";

/** A valid stream of masked frames from a client, ending with its close. */
function validStream(random: () => number, deflate: boolean) {
  const key = randomBytes(random, 4);
  const frames: Uint8Array[] = [];
  const count = 1 + randInt(random, 5);
  for (let i = 0; i < count; i++) {
    const kind = randInt(random, deflate ? 6 : 5);
    if (kind === 0) {
      frames.push(
        rawFrame(0x89, randomBytes(random, randInt(random, 126)), key),
      );
    } else if (kind === 1) {
      const bytes = te.encode("héllo".repeat(randInt(random, 30)));
      const cut = randInt(random, bytes.length + 1);
      frames.push(rawFrame(0x01, bytes.subarray(0, cut), key));
      frames.push(rawFrame(0x80, bytes.subarray(cut), key));
    } else if (kind === 2) {
      frames.push(
        rawFrame(0x81, te.encode("x".repeat(randInt(random, 300))), key),
      );
    } else if (kind === 5) {
      // RFC 7692 §7.2.1: compressed, flushed, the 00 00 ff ff tail stripped.
      const text = randInt(random, 2) === 0;
      const data = text
        ? te.encode("abc ".repeat(randInt(random, 2000)))
        : randomBytes(random, randInt(random, 3000));
      const z = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
      frames.push(
        rawFrame(0xc0 | (text ? 1 : 2), z.subarray(0, z.length - 4), key),
      );
    } else {
      const size = randInt(random, random() < 0.05 ? 60000 : 400);
      frames.push(rawFrame(0x82, randomBytes(random, size), key));
    }
  }
  // The client's close: 1000 and a reason.
  frames.push(
    rawFrame(0x88, concat(new Uint8Array([0x03, 0xe8]), te.encode("bye")), key),
  );
  return frames;
}

/** One mutation, at a random frame of the stream (or anywhere in it). */
function mutate(random: () => number, frames: Uint8Array[]): Uint8Array {
  const at = randInt(random, frames.length);
  const frame = frames[at]!.slice();
  const kind = randInt(random, 7);
  let out: Uint8Array[] = [
    ...frames.slice(0, at),
    frame,
    ...frames.slice(at + 1),
  ];
  if (kind === 0) { // bit flips anywhere
    const bytes = concat(...out);
    for (let i = 0, n = 1 + randInt(random, 4); i < n; i++) {
      bytes[randInt(random, bytes.length)]! ^= 1 << randInt(random, 8);
    }
    return bytes;
  }
  if (kind === 1) { // truncation anywhere (the client then half-closes)
    const bytes = concat(...out);
    return bytes.subarray(0, randInt(random, bytes.length));
  }
  if (kind === 2) frame[1] = 0x80 | randInt(random, 128); // a length field
  else if (kind === 3) frame[0] = (frame[0]! & 0xf0) | randInt(random, 16);
  else if (kind === 4) { // bytes inserted
    const bytes = concat(...out);
    const where = randInt(random, bytes.length + 1);
    out = [
      bytes.subarray(0, where),
      randomBytes(random, 1 + randInt(random, 8)),
      bytes.subarray(where),
    ];
  } else if (kind === 5) frame[0]! ^= 0x10 << randInt(random, 3); // RSV
  else { // a 64-bit length, up to 2^63 - 1, then a little payload
    const header = new Uint8Array(14 + randInt(random, 8));
    header[0] = 0x82;
    header[1] = 0xff;
    for (let i = 2; i < header.length; i++) header[i] = randInt(random, 256);
    header[2]! &= 0x7f;
    out = [...frames.slice(0, at), header];
  }
  return concat(...out);
}

/** RFC 7692 inflating as the server does it: the code it fails with. */
function inflateFailure(
  opcode: number,
  payload: Uint8Array,
): number | undefined {
  let data: Uint8Array;
  try {
    data = inflateRawSync(concat(payload, new Uint8Array([0, 0, 0xff, 0xff])), {
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: LIMITS.maxMessageSize + 1,
    });
  } catch (error) {
    return error instanceof RangeError ? 1009 : 1007;
  }
  if (data.length > LIMITS.maxMessageSize) return 1009;
  if (opcode === 1 && !isValidUtf8(data)) return 1007;
  return undefined;
}

/**
 * What the peer must read for `bytes`, by the engine: the close code of its
 * first failure, the echo of the peer's close, or EOF. `maybe` holds the
 * codes inflating may also give, where node:zlib and ours could disagree
 * on a mutated stream (more input after the end of a deflate stream).
 */
function oracle(
  bytes: Uint8Array,
  deflate: boolean,
): { heard: Heard; maybe: number[] } {
  let heard: Heard | undefined;
  const maybe: number[] = [];
  const protocol = new Protocol({
    role: "server",
    ...LIMITS,
    threshold: deflate ? 1024 : undefined,
  }, {
    message: () => {},
    compressed: (opcode, payload) => {
      if (heard !== undefined) return;
      const code = inflateFailure(opcode, payload);
      if (code !== undefined) heard = code;
      else maybe.push(1007);
    },
    pong: () => {},
    close: (info) => (heard ??= info.closeCode),
    output: () => {},
    pongWaits: () => {},
    compress: () => Promise.resolve(),
  });
  try {
    protocol.receive(bytes.slice());
  } catch (error) {
    if (!(error instanceof WebSocketError)) throw error;
    heard ??= error.closeCode!;
  }
  return { heard: heard ?? "EOF", maybe };
}

/** The first close code in what the server sent, or EOF. */
function firstClose(bytes: Uint8Array): Heard {
  const frames = new FrameReader();
  frames.push(bytes);
  for (let frame = frames.next(); frame; frame = frames.next()) {
    if (frame.opcode === 8) {
      const p = frame.payload;
      return p.length >= 2 ? (p[0]! << 8) | p[1]! : 1005;
    }
  }
  return "EOF";
}

/** The upgrade request of case `i`, naming it in the path. */
function request(i: number, deflate: boolean): Uint8Array {
  const head = td.decode(upgradeRequest(
    deflate ? { "Sec-WebSocket-Extensions": "permessage-deflate" } : {},
  ));
  return te.encode(head.replace("GET / ", `GET /${i} `));
}

/** Sends the upgrade, then `chunks`, then FIN; returns all it read to EOF. */
async function sendAndHalfClose(
  port: number,
  head: Uint8Array,
  chunks: Uint8Array[],
): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return concat(...parts);
      parts.push(buffer.slice(0, n));
    }
  })();
  try {
    await conn.write(head);
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.length;) {
        at += await conn.write(chunk.subarray(at));
      }
    }
    await conn.closeWrite();
  } catch {
    // The server may end TCP before it has taken everything.
  }
  const bytes = await reading;
  conn.close();
  const text = td.decode(bytes.subarray(0, 200));
  assert(text.startsWith("HTTP/1.1 101 "), text);
  return bytes.subarray(td.decode(bytes).indexOf("\r\n\r\n") + 4);
}

/**
 * A real RST in the middle of the stream: a node:net socket, whose
 * resetAndDestroy() closes with SO_LINGER 0.
 */
async function sendAndReset(
  port: number,
  head: Uint8Array,
  bytes: Uint8Array,
): Promise<void> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  // Registered first: the server may end TCP before we reset (a failure
  // in the bytes before the cut), and "close" comes once.
  const closed = new Promise((resolve) => socket.once("close", resolve));
  const upgraded = Promise.withResolvers<void>();
  let got = "";
  socket.on("data", (data: Uint8Array) => {
    got += td.decode(data);
    if (got.includes("\r\n\r\n")) upgraded.resolve();
  });
  closed.then(() => upgraded.resolve());
  socket.write(head);
  await upgraded.promise;
  socket.write(bytes);
  await new Promise((resolve) => setTimeout(resolve, 5));
  socket.resetAndDestroy();
  await closed;
}

Deno.test(`fuzz: ${COUNT} live connections send mutated frames; each peer reads the right close, and the server goes on`, async () => {
  const random = prng(SEED + 10);
  const outcomes = new Map<
    number,
    Promise<WebSocketCloseInfo | WebSocketError>
  >();
  const server = serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      closeTimeout: 2000,
      ...LIMITS,
    },
    (connection, req) => {
      const i = Number(new URL(req.url).pathname.slice(1));
      outcomes.set(i, connection.closed.catch((e) => e));
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  const port = server.addr.port;

  // The control client echoes throughout.
  let fuzzing = true;
  const control = await connect(`ws://127.0.0.1:${port}/control`);
  const controlLoop = (async () => {
    const writer = control.writable.getWriter();
    const reader = control.readable.getReader();
    let echoed = 0;
    while (fuzzing) {
      const message = `control ${echoed}`;
      await writer.write(message);
      assertEquals((await reader.read()).value, message);
      echoed++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    reader.releaseLock();
    writer.releaseLock();
    return echoed;
  })();

  const cases = Array.from({ length: COUNT }, (_, i) => {
    const deflate = random() < 0.5;
    const bytes = mutate(random, validStream(random, deflate));
    const mode = random() < 0.15 ? "reset" : random() < 0.5 ? "split" : "whole";
    const chunks: Uint8Array[] = [];
    if (mode === "split") {
      for (let at = 0; at < bytes.length;) {
        const n = 1 + randInt(random, 64);
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
    } else chunks.push(bytes);
    const cut = randInt(random, bytes.length + 1);
    return { i, deflate, bytes, mode, chunks, cut };
  });

  const tally = new Map<string, number>();
  const run = async (c: (typeof cases)[number]) => {
    const head = request(c.i, c.deflate);
    if (c.mode === "reset") {
      await sendAndReset(port, head, c.bytes.subarray(0, c.cut));
      tally.set("reset", (tally.get("reset") ?? 0) + 1);
      return;
    }
    const { heard, maybe } = oracle(c.bytes, c.deflate);
    const got = firstClose(await sendAndHalfClose(port, head, c.chunks));
    const allowed = [heard, ...maybe];
    assert(
      allowed.includes(got),
      `case ${c.i} (${c.mode}, deflate ${c.deflate}): read ${got}, expected ${allowed}; bytes ${[
        ...c.bytes.subarray(0, 32),
      ]}`,
    );
    tally.set(String(got), (tally.get(String(got)) ?? 0) + 1);
    // The server's `closed` agrees with what its peer read.
    const outcome = await within(outcomes.get(c.i)!, 10000, `closed of ${c.i}`);
    if (got === "EOF") {
      assert(outcome instanceof WebSocketError, `${outcome}`);
      assertEquals(outcome.closeCode, 1006);
    } else if (outcome instanceof WebSocketError) {
      assertEquals(outcome.closeCode, got, outcome.message);
    } else {
      assertEquals(outcome.closeCode, got);
    }
  };
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < cases.length) await run(cases[next++]!);
  }));

  // Every connection ended; reset ones rejected `closed` (1006, or the code
  // of a failure the bytes before the reset made).
  for (const c of cases.filter((c) => c.mode === "reset")) {
    const outcome = await within(outcomes.get(c.i)!, 10000, `closed of ${c.i}`);
    if (outcome instanceof WebSocketError) {
      assert(
        [1006, 1002, 1007, 1009].includes(outcome.closeCode!),
        outcome.message,
      );
    }
  }
  fuzzing = false;
  const echoed = await controlLoop;
  assert(echoed > 0);
  assertEquals(server.connections, 1, "only the control client is left");
  control.close();
  await control.closed;
  await server.shutdown();
  // The mutations are not all harmless: each kind of answer happens.
  for (const key of ["1000", "1002", "EOF"]) {
    assert((tally.get(key) ?? 0) > 0, `no case read ${key}: ${[...tally]}`);
  }
});
