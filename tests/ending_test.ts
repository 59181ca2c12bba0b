// How connections end, part two: the cases a review of the ordered end,
// the lingering close and the writer found. Each test failed before its fix.

import { assert, assertEquals } from "@std/assert";
import { deflateRawSync } from "node:zlib";
import {
  serve,
  type WebSocketConnection,
  WebSocketDuplex,
  WebSocketError,
} from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import { concat, rawFrame, upgradeRequest } from "./_helpers.ts";
import { Protocol } from "../lib/protocol.ts";

const KEY = new Uint8Array([1, 2, 3, 4]);
const te = new TextEncoder();

// (R1 of the review)
// R1: after our close, a compressed message and the peer's close that arrive
// in one read: the message is dropped silently, closed resolves cleanly.

const DEFLATE = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
  threshold: 1024,
  level: 6,
  memLevel: 8,
};

function frame(first: number, payload: Uint8Array): Uint8Array {
  // server -> client: unmasked, short payload
  const out = new Uint8Array(2 + payload.length);
  out[0] = first;
  out[1] = payload.length;
  out.set(payload, 2);
  return out;
}

Deno.test("a compressed message and the peer close in one read, after our close, are both delivered", async () => {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const client = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({ write() {} }),
  }, { role: "client", perMessageDeflate: DEFLATE, closeTimeout: 500 });
  const got: unknown[] = [];
  const reading = (async () => {
    for await (const m of client.readable) got.push(m);
  })();
  client.close({ closeCode: 1000 });
  const z = deflateRawSync(new TextEncoder().encode("hello"), {
    finishFlush: 2, /* Z_SYNC_FLUSH */
  });
  const compressed = new Uint8Array(z.subarray(0, z.length - 4));
  const both = new Uint8Array([
    ...frame(0xc1, compressed), // FIN+RSV1 text
    ...frame(0x88, new Uint8Array([0x03, 0xe8])),
  ]);
  input.enqueue(both);
  input.close();
  const info = await client.closed;
  await reading;
  assertEquals(info.closeCode, 1000);
  assertEquals(got, ["hello"], "the message before the peer's close was lost");
});

// (R2 of the review)
// R2: the peer's close waits for the application to take the messages
// before it. An application that cancels its readable instead (it wants no
// more) gets no echo until closeTimeout: cancel() -> close() returns early
// while #ending is set, and nothing calls #checkEnding again.

Deno.test("cancelling readable while the peer close waits echoes it at once", async () => {
  const out: Uint8Array[] = [];
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const server = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({
      write: (chunk) => void out.push(chunk.slice()),
    }),
  }, { role: "server", closeTimeout: 3000 });
  input.enqueue(concat(
    rawFrame(0x81, new TextEncoder().encode("unread"), KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  ));
  const reader = server.readable.getReader();
  // Start reading so the bytes are parsed (pull), but leave the message queued.
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await reader.cancel();
  const info = await server.closed.catch((e) => e);
  assertEquals(info, { closeCode: 1000, reason: "" });
  const ms = performance.now() - t0;
  try {
    input.close();
  } catch { /* cancelled */ }
  assert(ms < 500, `the close echo waited ${Math.round(ms)} ms after cancel()`);
});

// (R3B of the review)
// R3b/R3c: the peer sends messages and its close, then half-closes (FIN)
// while still reading. Our echoes still queued in the outbox, and our close
// echo, are dropped: #onEnd with closeReceived calls #finish at once, and
// writer.stop() clears the outbox.

function run(eof: boolean) {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) {
    frames.push(rawFrame(0x82, new Uint8Array(8 * 1024).fill(i), KEY));
  }
  frames.push(rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
  const out: Uint8Array[] = [];
  const server = new TransportWebSocket({
    readable: new ReadableStream({
      start(c) {
        c.enqueue(concat(...frames));
        if (eof) c.close();
      },
    }),
    // A slow socket: each write takes 50 ms.
    writable: new WritableStream({
      async write(chunk) {
        out.push(chunk.slice());
        await new Promise((r) => setTimeout(r, 50));
      },
    }),
  }, { role: "server", writableHighWaterMark: 8 * 1024, closeTimeout: 3000 });
  const piping = server.readable.pipeTo(server.writable).then(
    () => "resolved",
    (e) => `rejected: ${e}`,
  );
  return { server, piping, out };
}

for (const eof of [true, false]) {
  Deno.test(
    `the replies and the close echo go out when the peer ${
      eof ? "half-closes after its close" : "keeps TCP open"
    }`,
    async () => {
      const { server, piping, out } = run(eof);
      const info = await server.closed.catch((e) => `${e}`);
      const all = concat(...out);
      console.log({
        piping: await piping,
        info,
        written: all.length,
        tail: [...all.subarray(-4)],
      });
      assertEquals(await piping, "resolved");
      assertEquals(
        all.length,
        8 * (8 * 1024 + 4) + 4,
        "echoes or the close echo missing",
      );
      assertEquals([...all.subarray(-4)], [0x88, 2, 3, 0xe8]);
    },
  );
}

// (R3E of the review)
// R3e: WebSocketDuplex fed a finite byte stream (pipeTo closes its writable
// after the peer's close frame): the echo of the peer's close is dropped
// (and any reply still queued) when the byte consumer is slower than the input: #onEnd finishes at once, stop() clears the outbox.

Deno.test("a duplex whose input ends after the close still writes the echo and the close", async () => {
  const duplex = new WebSocketDuplex({ role: "server" });
  ReadableStream.from([concat(
    rawFrame(0x81, new TextEncoder().encode("hi"), KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  )]).pipeTo(duplex.writable).catch(() => {});
  const echo = duplex.connection.readable.pipeTo(duplex.connection.writable);
  // The byte consumer reads once the connection is done (a slow consumer).
  assertEquals(await duplex.connection.closed, { closeCode: 1000, reason: "" });
  const bytes = concat(...await Array.fromAsync(duplex.readable));
  assertEquals([...bytes], [0x81, 2, 0x68, 0x69, 0x88, 2, 3, 0xe8]);
  await echo;
});

// (R4 of the review)
// R4: over a byte pair whose writes never complete (nobody reads the
// duplex's byte readable: a stuck peer), closeTimeout ends the connection,
// but the application's writable close() (and so a pipeTo into it) stays
// pending forever: Sink.close returns writer.flushed(), which only an
// in-flight write settling resolves; stop() does not release flush waiters,
// and StreamTransport.close() queues writer.close() behind the stuck write.

function within<T>(p: Promise<T>, ms: number): Promise<T | "hung"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<"hung">((r) => {
      timer = setTimeout(() => r("hung"), ms);
    }),
  ])
    .finally(() => clearTimeout(timer));
}

Deno.test("writable.close() settles once a byte pair that takes nothing times out", async () => {
  const duplex = new WebSocketDuplex({ role: "server", closeTimeout: 200 });
  // The peer's bytes: none, and no EOF. Our bytes: nobody reads them.
  const writer = duplex.connection.writable.getWriter();
  writer.write("hello").catch(() => {});
  const closing = writer.close().then(
    () => "resolved",
    (e) => `rejected: ${e}`,
  );
  const closed = await within(
    duplex.connection.closed.then(() => "clean", (e) => `${e}`),
    2000,
  );
  assert(
    closed.includes("ERR_CLOSE_TIMEOUT") || closed.includes("close"),
    closed,
  );
  const result = await within(closing, 2000);
  assertEquals(
    result !== "hung",
    true,
    "writer.close() still pending 2 s after the connection ended",
  );
});

// (R5 of the review)
// R5: a failure while the peer's close waits in #ending (#fail does not clear
// it): the read loop started by #fail exits at once (no lingering read), and
// when the pending end runs, #onClose clears the failure's timer and
// resolves `closed` cleanly although the connection failed with 1011 and its
// streams errored.

Deno.test("a failure while the peer close waits decides the outcome", async () => {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const server = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({ write() {} }),
  }, { role: "server", closeTimeout: 300 });
  input.enqueue(concat(
    rawFrame(0x81, new TextEncoder().encode("unread"), KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  ));
  await new Promise((r) => setTimeout(r, 20)); // parsed; the close waits for the app
  const writer = server.writable.getWriter();
  const write = writer.write({} as unknown as string).then(
    () => "ok",
    (e) => `${e}`,
  );
  assert(
    (await write).includes("ERR_INVALID_MESSAGE") ||
      (await write).includes("expected a string"),
    await write,
  );
  const closed = await server.closed.then(
    (i) => ({ clean: i }),
    (e) => ({ failed: `${e}` }),
  );
  try {
    input.close();
  } catch { /* cancelled */ }
  assertEquals(
    "failed" in closed,
    true,
    "closed resolved cleanly after a 1011 failure",
  );
});

// (R6 of the review)
// R6: shutdown() with a peer whose close is pending (the handler has not
// taken the message before it) and who has stopped reading our bytes:
// shutdown's close() is ignored while #ending is set, the end waits the full
// closeTimeout, then the echo waits another closeTimeout for the flush.

Deno.test("shutdown() with a pending peer close ends within closeTimeout and a margin", async () => {
  const CLOSE_TIMEOUT = 500;
  const stalled = Promise.withResolvers<void>();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    closeTimeout: CLOSE_TIMEOUT,
    perMessageDeflate: false,
  }, async (connection: WebSocketConnection) => {
    connection.closed.catch(() => {});
    const writer = connection.writable.getWriter();
    const chunk = new Uint8Array(1 << 20);
    for (let i = 0; i < 64; i++) {
      let t: ReturnType<typeof setTimeout> | undefined;
      const s = await Promise.race([
        writer.write(chunk).then(() => false, () => true),
        new Promise<boolean>((r) => {
          t = setTimeout(() => r(true), 200);
        }),
      ]);
      clearTimeout(t);
      if (s) break;
    }
    writer.releaseLock();
    stalled.resolve();
    // The handler never reads.
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(upgradeRequest());
  await stalled.promise;
  // A message, then our close; then we never read.
  await conn.write(concat(
    rawFrame(0x82, new Uint8Array(10), KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  ));
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await server.shutdown();
  const ms = Math.round(performance.now() - t0);
  // drain so the socket ends
  const buf = new Uint8Array(1 << 16);
  while ((await conn.read(buf).catch(() => null)) !== null) { /* drain */ }
  conn.close();
  assert(ms < CLOSE_TIMEOUT + 250, `shutdown took ${ms} ms`);
});

// (R7 of the review)
// R7: a heartbeat ping in flight when we close: close() rejects the pending
// pings, so the peer's pong no longer clears the heartbeat's timeout timer,
// which then kills the close handshake (at once, ERR_HEARTBEAT_TIMEOUT) if
// the peer's close echo takes longer than heartbeat.timeout (a peer of this
// library delays its echo until its application has read what came before),
// although closeTimeout allows it and the peer answered the ping on time.

Deno.test("a heartbeat does not fail a close handshake that closeTimeout still allows", async () => {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const pinged = Promise.withResolvers<Uint8Array>();
  const client = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({
      write(chunk) {
        // The client's frames are masked: 2-byte header, 4-byte key.
        if ((chunk[0]! & 15) === 9) {
          const len = chunk[1]! & 127;
          const key = chunk.subarray(2, 6);
          pinged.resolve(
            chunk.slice(6, 6 + len).map((b, i) => b ^ key[i & 3]!),
          );
        }
      },
    }),
  }, {
    role: "client",
    heartbeat: { interval: 50, timeout: 150 },
    closeTimeout: 2000,
  });
  const ping = await pinged.promise;
  client.close({ closeCode: 1000 });
  // The peer answers the ping at once...
  input.enqueue(new Uint8Array([0x8a, ping.length, ...ping]));
  // ...and echoes the close 300 ms later, well within closeTimeout.
  setTimeout(() => {
    try {
      input.enqueue(new Uint8Array([0x88, 2, 0x03, 0xe8]));
      input.close();
    } catch { /* ended */ }
  }, 300);
  const result = await client.closed.then((i) => i, (e) => `${e}`);
  await new Promise((r) => setTimeout(r, 350));
  assertEquals(result, { closeCode: 1000, reason: "" });
});

// (R8 of the review)
// R8: a server's binary message over 16 KiB is queued by reference, and
// write() resolves before the socket has taken it: an application that
// reuses its buffer after `await writer.write(buf)` changes bytes already
// "sent".

Deno.test("a large binary write resolves only once the socket has the bytes, so the buffer can be reused", async () => {
  const out: Uint8Array[] = [];
  const server = new TransportWebSocket({
    readable: new ReadableStream(),
    writable: new WritableStream({
      async write(chunk) {
        out.push(chunk.slice());
        await new Promise((r) => setTimeout(r, 20));
      },
    }),
  }, { role: "server", closeTimeout: 100 });
  const writer = server.writable.getWriter();
  const buf = new Uint8Array(20000);
  buf.fill(1);
  await writer.write(buf);
  buf.fill(2);
  await writer.write(buf);
  await new Promise((r) => setTimeout(r, 200));
  server.close();
  await server.closed.catch(() => {});
  const all = concat(...out);
  // frame 1: 4-byte header, 20000 bytes of 1
  assertEquals(all[4], 1, "the first message went out with the second's bytes");
});

function pair(options: Record<string, unknown>) {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const out: Uint8Array[] = [];
  const server = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({ write: (c) => void out.push(c.slice()) }),
  }, { role: "server", closeTimeout: 2000, ...options });
  return { server, input, out };
}

// (A second review.) A1: the connection fails (1011, an invalid value written) while the peer's
// close waits for the application; the peer then ends TCP. readable and
// writable error with 1011, but `closed` resolves with the peer's 1000.
Deno.test("a failure after the peer's close rejects closed (invalid write)", async () => {
  const { server, input } = pair({});
  input.enqueue(concat(
    rawFrame(0x81, te.encode("a"), KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  ));
  await new Promise((r) => setTimeout(r, 20)); // parsed; close waits for "a"
  const writer = server.writable.getWriter();
  await writer.write({} as never).catch(() => {});
  input.close(); // the peer ends TCP
  const outcome = await server.closed.then((v) => v, (e) => e);
  assert(
    outcome instanceof WebSocketError,
    `closed resolved ${JSON.stringify(outcome)} after failing with 1011`,
  );
});

// A2: same through permessage-deflate: a corrupt compressed message, the
// peer's close and EOF in one read. We send 1007, readable errors with 1007,
// and closed resolves {1000}.
Deno.test("a failure after the peer's close rejects closed (bad deflate)", async () => {
  const { server, input, out } = pair({
    perMessageDeflate: DEFLATE,
  });
  const z = deflateRawSync(te.encode("hello"), { finishFlush: 2 });
  const bad = z.slice(0, z.length - 4);
  bad[0]! ^= 0xff; // corrupt
  input.enqueue(concat(
    rawFrame(0xc1, bad, KEY),
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
  ));
  input.close();
  const reading = server.readable.pipeTo(new WritableStream()).catch((e) => e);
  const outcome = await server.closed.then((v) => v, (e) => e);
  const readError = await reading;
  // We sent 1007 for the corrupt message, not the peer's 1000.
  const sent = concat(...out);
  assertEquals((sent[2]! << 8) | sent[3]!, 1007);
  assert(
    outcome instanceof WebSocketError,
    `closed resolved ${JSON.stringify(outcome)}; readable: ${readError}`,
  );
});

// B: a ping received before our close, while the outbox is over the
// high-water mark, is never answered (before 4e5e156 its pong was queued at
// once, ahead of the close frame; RFC 6455 §5.5.2: MUST answer unless a
// close was received).
Deno.test("a ping that waited for the drain is answered before our close", async () => {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const wire: Uint8Array[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const server = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({
      async write(c) {
        wire.push(c.slice());
        await gate; // the peer reads nothing until released
      },
    }, { highWaterMark: 1 }),
  }, { role: "server", writableHighWaterMark: 1024, closeTimeout: 2000 });
  const reading = server.readable.pipeTo(new WritableStream()).catch(() => {});
  const writer = server.writable.getWriter();
  writer.write(new Uint8Array(8000)).catch(() => {});
  await new Promise((r) => setTimeout(r, 20));
  assert(server.bufferedAmount > 1024);
  input.enqueue(rawFrame(0x89, new Uint8Array([9, 9]), KEY));
  await new Promise((r) => setTimeout(r, 20));
  server.close({ closeCode: 1000 });
  release();
  await new Promise((r) => setTimeout(r, 50));
  input.enqueue(rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
  input.close();
  await server.closed.catch(() => {});
  await reading;
  // Find frames on the wire (unmasked, server -> client).
  const bytes = concat(...wire);
  const opcodes: number[] = [];
  for (let at = 0; at < bytes.length;) {
    const op = bytes[at]! & 0x0f;
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = (bytes[at + 2]! << 8) | bytes[at + 3]!;
      head = 4;
    }
    opcodes.push(op);
    at += head + len;
  }
  assertEquals(opcodes, [0x2, 0xa, 0x8], "no pong before our close frame");
});

// C: a ping in the same read as the peer's close, after it, is parsed and
// answered (and a bad frame there is parsed too): Protocol.receive checks
// closeReceived only on entry, the parser runs on to the end of the chunk.
// Its doc: "After the peer's close frame, bytes are ignored (§5.5.1)".
Deno.test("nothing after the peer's close frame in the same chunk is acted on", () => {
  const pongs: Uint8Array[] = [];
  let outputs = 0;
  const protocol = new Protocol({ role: "server" }, {
    message() {},
    compressed() {},
    pong: (p) => void pongs.push(p),
    close() {},
    output: () => void outputs++,
    pongWaits() {},
    compress: () => Promise.resolve(),
  });
  protocol.receive(concat(
    rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
    rawFrame(0x89, new Uint8Array([1]), KEY), // ping after the close
    rawFrame(0x8a, new Uint8Array([2]), KEY), // pong after the close
  ));
  assertEquals(
    { outbox: protocol.outbox.size, outputs, pongs: pongs.length },
    { outbox: 0, outputs: 0, pongs: 0 },
  );
});
