// Soak: N clients at once, each sending M messages of mixed sizes (1 B to
// 64 KiB, seeded) through our serve()'s echo, half of them with
// permessage-deflate. Each message carries its sequence number and a
// checksum: every one must come back exactly once, intact and in order on
// its connection. Afterwards the sanitizers see no resource or op left
// open, and the heap is back within a bound of where it started.
//
// SOAK_CLIENTS × SOAK_MESSAGES: 50 × 100 in CI; `deno task soak` runs
// 1,000 × 1,000 and prints the messages, the duration and the peak RSS.

import { assert, assertEquals } from "@std/assert";
import { connect, serve } from "../mod.ts";
import { prng, randInt } from "./_helpers.ts";

const CLIENTS = Number(Deno.env.get("SOAK_CLIENTS") ?? 50);
const MESSAGES = Number(Deno.env.get("SOAK_MESSAGES") ?? 100);
// SOAK_DEFLATE=0 turns compression off on every client.
const DEFLATE = Deno.env.get("SOAK_DEFLATE") !== "0";
const MiB = 1 << 20;
// Smaller queues than the 1 MiB defaults: with a thousand connections in
// one process (both ends), the defaults would let gigabytes wait. The soak
// checks what arrives, not how fast: on a loaded machine, with every end in
// this one event loop, a close handshake took up to 5.5 s at 200 clients,
// past the 5 s default closeTimeout.
const QUEUES = {
  closeTimeout: 30_000,
  readableHighWaterMark: 256 * 1024,
  writableHighWaterMark: 64 * 1024,
};

/** FNV-1a over bytes. */
function checksum(bytes: Uint8Array, from: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < bytes.length; i++) {
    h = Math.imul(h ^ bytes[i]!, 0x01000193);
  }
  return h >>> 0;
}

/** Mostly small; now and then up to 64 KiB. At least the 8-byte header. */
function size(random: () => number): number {
  const r = random();
  if (r < 0.9) return 8 + randInt(random, 1017);
  if (r < 0.99) return 8 + randInt(random, 8185);
  return 8 + randInt(random, 65529);
}

/** Seeded bytes that messages are cut from. */
const POOL = (() => {
  const random = prng(6455);
  const bytes = new Uint8Array(256 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = randInt(random, 256);
  return bytes;
})();

/** Message `seq` of a client: seq, checksum, then seeded bytes. */
function message(random: () => number, seq: number): Uint8Array {
  const bytes = new Uint8Array(size(random));
  const from = randInt(random, POOL.length - bytes.length);
  bytes.set(POOL.subarray(from, from + bytes.length - 8), 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, seq);
  view.setUint32(4, checksum(bytes, 8));
  return bytes;
}

function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  } catch {
    return Deno.memoryUsage().rss;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Deno.memoryUsage().heapUsed;
}

Deno.test(`soak: ${CLIENTS} clients × ${MESSAGES} messages echo exactly once, in order, intact`, async () => {
  const heapBefore = await settledHeap();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...QUEUES },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const started = performance.now();
  let bytes = 0;

  // All connect first: a handshake then never waits behind traffic.
  const connections = await Promise.all(
    Array.from(
      { length: CLIENTS },
      (_, id) =>
        connect(url, { perMessageDeflate: DEFLATE && id % 2 === 0, ...QUEUES }),
    ),
  );
  const client = async (id: number) => {
    const connection = connections[id]!;
    assertEquals(connection.extensions !== "", DEFLATE && id % 2 === 0);
    const writer = connection.writable.getWriter();
    const reader = connection.readable.getReader();
    const sending = (async () => {
      const random = prng(id + 1);
      for (let seq = 0; seq < MESSAGES; seq++) {
        const m = message(random, seq);
        bytes += m.length;
        await writer.write(m);
        // A write under the high-water mark resolves at once: yield now
        // and then, so that the clients share the event loop.
        if (seq % 16 === 15) await new Promise((r) => setTimeout(r, 0));
      }
    })();
    // Awaited below; a failure of the reads comes first then.
    sending.catch(() => {});
    for (let seq = 0; seq < MESSAGES; seq++) {
      const { value, done } = await reader.read();
      assert(!done, `client ${id}: ended after ${seq} messages`);
      if (!(value instanceof Uint8Array)) {
        throw new Error(`client ${id}: message ${seq} is not bytes`);
      }
      const view = new DataView(value.buffer, value.byteOffset);
      assertEquals(view.getUint32(0), seq, `client ${id}: out of order`);
      assertEquals(
        view.getUint32(4),
        checksum(value, 8),
        `client ${id}: message ${seq} changed`,
      );
    }
    await sending;
    reader.releaseLock();
    writer.releaseLock();
    connection.close({ closeCode: 1000 });
    const info = await connection.closed;
    assertEquals(info.closeCode, 1000);
  };

  await Promise.all(Array.from({ length: CLIENTS }, (_, id) => client(id)));
  const seconds = (performance.now() - started) / 1000;
  assertEquals(server.connections, 0);
  await server.shutdown();

  const heapAfter = await settledHeap();
  console.log(
    `soak: ${CLIENTS * MESSAGES} messages (${
      (bytes / MiB).toFixed(1)
    } MiB each way) over ${CLIENTS} connections in ${
      seconds.toFixed(1)
    } s; peak RSS ${(peakRss() / MiB).toFixed(0)} MiB; heap ${
      (heapBefore / MiB).toFixed(1)
    } → ${(heapAfter / MiB).toFixed(1)} MiB${gc ? "" : " (no --expose-gc)"}`,
  );
  // Pools and caches that live for the process (read buffers, outbox
  // blocks, zlib streams) stay; connections do not. Without gc() the heap
  // may hold garbage too: a wider bound.
  const bound = (gc ? 16 : 64) * MiB;
  assert(
    heapAfter - heapBefore < bound,
    `the heap grew ${heapAfter - heapBefore} bytes`,
  );
});
