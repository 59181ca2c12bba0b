// Limits under attack, on a live serve() over loopback: slowloris, a header
// flood, a million one-byte fragments, and shutdown() under heavy traffic
// with peers that stop reading. What each attacker's peer sees, and that
// memory stays bounded (Deno.memoryUsage deltas with generous margins,
// never wall time) while a normal client still connects and echoes.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  connect,
  serve,
  type ServeOptions,
  type WebSocketConnection,
  type WebSocketServer,
} from "../mod.ts";
import { ConnTransport, type Transport } from "../lib/net/_transport.ts";
import { readHttpHead } from "../lib/net/_http.ts";
import { HandshakeRejection } from "../lib/handshake/server.ts";
import {
  concat,
  delay,
  rawClient,
  rawFrame,
  readUntilClose,
  upgradeRequest,
  within,
} from "./_helpers.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const KEY = new Uint8Array([1, 2, 3, 4]);
const MiB = 1 << 20;

function echoServer(options: Partial<ServeOptions> = {}): WebSocketServer {
  return serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
}

/** A normal client that connects and echoes a few messages. */
async function echoes(port: number): Promise<void> {
  const client = await connect(`ws://127.0.0.1:${port}/`);
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  for (let i = 0; i < 5; i++) {
    await writer.write(`normal ${i}`);
    assertEquals((await reader.read()).value, `normal ${i}`);
  }
  reader.releaseLock();
  writer.releaseLock();
  client.close();
  await client.closed;
}

function rss(): number {
  return Deno.memoryUsage().rss;
}

Deno.test("slowloris: 500 clients sending a header byte a second are all cut off by handshakeTimeout", async () => {
  const CLIENTS = 500;
  const timeouts: unknown[] = [];
  const server = echoServer({
    handshakeTimeout: 2000,
    onError: (error) => timeouts.push(error),
  });
  const head = upgradeRequest();
  const before = rss();
  let peak = before;
  const conns = await Promise.all(
    Array.from(
      { length: CLIENTS },
      () => Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
    ),
  );
  const sent = new Array<number>(CLIENTS).fill(0);
  const ended = new Array<boolean>(CLIENTS).fill(false);
  // Each client reads until the server ends TCP: EOF or a reset.
  const reads = conns.map(async (conn, i) => {
    const buffer = new Uint8Array(1024);
    let got = 0;
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      got += n;
    }
    ended[i] = true;
    return got;
  });
  // One byte a second on every connection still open.
  const drip = async () => {
    while (ended.includes(false)) {
      for (let i = 0; i < CLIENTS; i++) {
        if (ended[i] || sent[i]! >= head.length) continue;
        conns[i]!.write(head.subarray(sent[i]!, sent[i]! + 1)).catch(() => {});
        sent[i]!++;
      }
      peak = Math.max(peak, rss());
      await delay(1000);
    }
  };
  const dripping = drip();
  // Meanwhile a normal client connects and echoes.
  await echoes(server.addr.port);
  const answers = await within(Promise.all(reads), 60000, "the timeouts");
  await dripping;
  for (const conn of conns) conn.close();
  // The server answered nothing to them: it closed the socket.
  assertEquals(answers.filter((n) => n > 0), []);
  assert(
    sent.every((n) => n < head.length),
    "a slow client finished its head",
  );
  assertEquals(timeouts.length, CLIENTS);
  assert(
    timeouts.every((e) =>
      (e as { code?: string }).code === "ERR_HANDSHAKE_TIMEOUT"
    ),
  );
  // 500 pending handshakes (a 1 KiB head buffer and a socket each, server
  // and client in this one process): far under 64 MiB.
  assert(peak - before < 64 * MiB, `RSS grew ${peak - before} bytes`);
  assertEquals(server.connections, 0);
  await server.shutdown();
});

/** A transport that counts the bytes read through it. */
function counted(inner: Transport): Transport & { bytesRead: number } {
  const transport = {
    bytesRead: 0,
    async read(buffer: Uint8Array) {
      const n = await inner.read(buffer);
      if (n !== null) transport.bytesRead += n;
      return n;
    },
    writeSome: (bytes: Uint8Array) => inner.writeSome(bytes),
    write: (bytes: Uint8Array) => inner.write(bytes),
    closeWrite: () => inner.closeWrite(),
    close: () => inner.close(),
  };
  return transport;
}

/** A 1 MiB request head: a header that never ends. */
const FLOOD = concat(
  te.encode("GET / HTTP/1.1\r\nHost: x\r\nX-Flood: "),
  new Uint8Array(MiB).fill(0x61),
);

Deno.test("a header flood: a 1 MiB head gets 431 at maxHeaderSize, with the rest unread", async (t) => {
  await t.step("serve() answers 431 to a peer still sending", async () => {
    const server = echoServer();
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    let written = 0;
    const writing = (async () => {
      // In 16 KiB writes, as a flooding client would.
      while (written < FLOOD.length) {
        written += await conn.write(
          FLOOD.subarray(written, written + 16384),
        );
      }
    })().catch(() => {});
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      parts.push(buffer.slice(0, n));
    }
    await writing;
    conn.close();
    const answer = td.decode(concat(...parts));
    assertStringIncludes(answer, "HTTP/1.1 431 ");
    await echoes(server.addr.port);
    await server.shutdown();
  });

  await t.step(
    "the head reader takes at most maxHeaderSize bytes of it",
    async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const client = await Deno.connect({
        hostname: "127.0.0.1",
        port: (listener.addr as Deno.NetAddr).port,
      });
      const accepted = await listener.accept();
      const transport = counted(new ConnTransport(accepted));
      // Far more than the kernel buffers: the client's writes stall once the
      // reader stops.
      const writing = (async () => {
        for (let at = 0; at < FLOOD.length;) {
          at += await client.write(FLOOD.subarray(at, at + 16384));
        }
      })().catch(() => {});
      const error = await readHttpHead(transport, 16384, 10000).then(
        () => undefined,
        (e) => e,
      );
      assert(error instanceof HandshakeRejection, String(error));
      assertEquals(error.status, 431);
      assertEquals(transport.bytesRead, 16384);
      transport.close();
      client.close();
      await writing;
      listener.close();
    },
  );
});

Deno.test("a million one-byte fragments: 1009 at maxFragments, and no memory kept per fragment", async () => {
  // The millionth fragment is one too many.
  const server = echoServer({ maxFragments: 999_999 });
  const { conn, frames } = await rawClient(server.addr.port);
  const fragment = rawFrame(0x00, te.encode("a"), KEY);
  const batch = concat(...Array.from({ length: 8192 }, () => fragment));
  const before = rss();
  let peak = before;
  let writeError: unknown;
  const flood = async () => {
    for (let at = 0, first = rawFrame(0x01, te.encode("a"), KEY); at < 1;) {
      at += await conn.write(first);
    }
    for (let sent = 1; sent < 1_000_000; sent += 8192) {
      for (let at = 0; at < batch.length;) {
        at += await conn.write(batch.subarray(at));
      }
      peak = Math.max(peak, rss());
    }
  };
  // Reading at the same time: the close frame is read, not lost to a
  // reset when the server ends TCP with the flood unread.
  const heard = readUntilClose(conn, frames);
  await within(flood(), 60000, "the flood").catch((e) => (writeError = e));
  const { code, reason } = await within(heard, 10000, "the close");
  conn.close();
  assert(code === 1009 || code === 1008, `${code} ${reason}; ${writeError}`);
  // The fragments' bytes (1 each) and no object per fragment: 7 MB of
  // frames leave RSS within a few MiB of where it was (an object of even
  // 64 bytes per fragment would be 64 MB).
  assert(peak - before < 32 * MiB, `RSS grew ${peak - before} bytes`);
  await echoes(server.addr.port);
  await server.shutdown();
});

Deno.test("shutdown() under heavy traffic: 50 streaming clients get 1001, those not reading within closeTimeout", async () => {
  const CLIENTS = 50;
  const STALLED = 10;
  const streaming: WebSocketConnection[] = [];
  const ends: Promise<number | string>[] = [];
  const server = serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      // The stalled peers end by closeTimeout; the reading ones have room
      // on a loaded machine (sendTimeout), their close frame waiting
      // behind at most 64 KiB and what the kernel holds.
      closeTimeout: 5000,
      sendTimeout: 10000,
      writableHighWaterMark: 64 * 1024,
    },
    (connection) => {
      streaming.push(connection);
      ends.push(connection.closed.then((i) => i.closeCode, (e) => e.code));
      // Take what the client sends, and stream 16 KiB messages to it.
      connection.readable.pipeTo(new WritableStream()).catch(() => {});
      (async () => {
        const writer = connection.writable.getWriter();
        const chunk = new Uint8Array(16384);
        try {
          // A message a macrotask: steady traffic that a reading client
          // keeps up with even on a loaded machine, so that its close frame
          // does not wait behind megabytes in the kernel's buffers.
          while (true) {
            await writer.write(chunk);
            await delay(1);
          }
        } catch {
          // Closed.
        }
      })();
    },
  );
  const port = server.addr.port;
  // 40 clients that read and write; 10 raw ones that read nothing.
  const clients = await Promise.all(
    Array.from(
      { length: CLIENTS - STALLED },
      () => connect(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false }),
    ),
  );
  const readers = clients.map(async (client) => {
    let messages = 0;
    try {
      for await (const _ of client.readable) messages++;
    } catch {
      // Reported through closed.
    }
    return messages;
  });
  const writers = clients.map(async (client) => {
    const writer = client.writable.getWriter();
    try {
      // One message a macrotask: a loop of writes that resolve at once
      // would starve the event loop this test shares with the server.
      while (true) {
        await writer.write(new Uint8Array(4096));
        await delay(0);
      }
    } catch {
      // Closed.
    } finally {
      writer.releaseLock();
    }
  });
  const stalled = await Promise.all(
    Array.from({ length: STALLED }, () => rawClient(port)),
  );
  while (streaming.length < CLIENTS) await delay(10);
  await delay(300);
  await within(server.shutdown(), 30000, "shutdown");
  assertEquals(server.connections, 0);
  for (const client of clients) {
    const info = await within(
      client.closed.catch(async (e) => {
        throw new Error(`${e}; server: ${await Promise.all(ends)}`);
      }),
      10000,
      "a client's closed",
    );
    assertEquals(info.closeCode, 1001);
  }
  const counts = await Promise.all(readers);
  assert(counts.every((n) => n > 0), "every client got traffic first");
  // On the server: 1001 echoed by those reading; the others were ended by
  // a timeout.
  const outcomes = (await Promise.all(ends)).sort();
  assertEquals(outcomes.filter((o) => o === 1001).length, CLIENTS - STALLED);
  for (const o of outcomes.filter((o) => o !== 1001)) {
    assert(o === "ERR_SEND_TIMEOUT" || o === "ERR_CLOSE_TIMEOUT", String(o));
  }
  await Promise.all(writers);
  // The stalled peers read at last: the stream, then the end of TCP.
  for (const { conn, frames } of stalled) {
    await within(readUntilClose(conn, frames), 10000, "a stalled peer");
    conn.close();
  }
});
