// The soak's clients (tests/soak_test.ts): each sends its seeded messages
// (1 B to 64 KiB, every one with its sequence number and a checksum)
// through the echo server and checks that every one comes back exactly
// once, intact and in order. Run in the test's own process, or in child
// processes (tests/soak/client.ts) so that the server's event loop holds
// only the server's ends, as it would in production.

import { assert, assertEquals } from "@std/assert";
import { connect } from "../../mod.ts";
import { prng, randInt } from "../_helpers.ts";

/**
 * Smaller queues than the 1 MiB defaults: a thousand connections would let
 * gigabytes wait. On a loaded machine a close handshake took up to 5.5 s at
 * 200 clients, past the 5 s default closeTimeout.
 */
export const QUEUES = {
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

/** Which clients to run, and how. */
export interface ClientsOptions {
  /** The echo server's URL. */
  url: string;
  /** The first client's id (ids seed the messages; even ids deflate). */
  from: number;
  /** How many clients, with ids from `from` on. */
  count: number;
  /** Messages each client sends and checks. */
  messages: number;
  /** Whether even-numbered clients negotiate permessage-deflate. */
  deflate: boolean;
  /**
   * Filled in as messages come back: entry i is how many client `from + i`
   * has had (a lost message shows as a client stuck short of `messages`).
   */
  progress?: Int32Array;
}

/**
 * Connects all the clients first (a handshake then never waits behind
 * traffic), then runs them at once. Rejects on the first message lost,
 * repeated, reordered or changed.
 *
 * @returns The bytes each way.
 */
export async function runClients(options: ClientsOptions): Promise<number> {
  const { url, from, count, messages, deflate, progress } = options;
  let bytes = 0;
  const connections = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      connect(url, {
        perMessageDeflate: deflate && (from + i) % 2 === 0,
        ...QUEUES,
      })),
  );
  const client = async (i: number) => {
    const id = from + i;
    const connection = connections[i]!;
    assertEquals(connection.extensions !== "", deflate && id % 2 === 0);
    const writer = connection.writable.getWriter();
    const reader = connection.readable.getReader();
    const sending = (async () => {
      const random = prng(id + 1);
      for (let seq = 0; seq < messages; seq++) {
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
    for (let seq = 0; seq < messages; seq++) {
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
      if (progress) progress[i] = seq + 1;
    }
    await sending;
    reader.releaseLock();
    writer.releaseLock();
    connection.close({ closeCode: 1000 });
    const info = await connection.closed;
    assertEquals(info.closeCode, 1000);
  };
  await Promise.all(Array.from({ length: count }, (_, i) => client(i)));
  return bytes;
}
