// Topics in one process, seen from the subscribers: encode once (counted at
// the framer and at zlib), publish order, `except`, leaving on close, the
// slow-subscriber policies against a raw peer that does not read, and the
// shared frames' ownership against the outbox pools.

import { assert, assertEquals, assertThrows } from "@std/assert";
import { FrameDecoderStream, Opcode } from "../lib/codec/mod.ts";
import {
  connect,
  serve,
  Topics,
  type TopicsOptions,
  type WebSocketConnection,
  type WebSocketServer,
} from "../mod.ts";
import { Deflater } from "../lib/deflate/zlib.ts";
import { Outbox } from "../lib/codec/_outbox.ts";
import { concat, upgradeRequest } from "./_helpers.ts";

const decoder = new TextDecoder();

interface Room {
  topics: Topics;
  server: WebSocketServer;
  url: string;
  connections: WebSocketConnection[];
  stop(): Promise<void>;
}

/** A server whose connections subscribe to the topics in `?t=a,b`. */
function room(
  options: TopicsOptions = {},
  serveOptions: Partial<Parameters<typeof serve>[0]> = {},
): Room {
  const topics = new Topics(options);
  const connections: WebSocketConnection[] = [];
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...serveOptions },
    (connection, request) => {
      connections.push(connection);
      for (
        const topic of new URL(request.url).searchParams.get("t")!.split(",")
      ) {
        topics.subscribe(connection, topic);
      }
      connection.readable.pipeTo(new WritableStream()).catch(() => {});
    },
  );
  return {
    topics,
    server,
    url: `ws://127.0.0.1:${server.addr.port}/`,
    connections,
    async stop() {
      await server.shutdown();
      topics.close();
    },
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function take(
  reader: ReadableStreamDefaultReader<string | Uint8Array>,
  n: number,
): Promise<(string | Uint8Array)[]> {
  const got: (string | Uint8Array)[] = [];
  while (got.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    got.push(value);
  }
  return got;
}

/** Counts calls of `Deflater.prototype.deflate`, every instance's. */
function countDeflates(): { calls: number; restore(): void } {
  const original = Deflater.prototype.deflate;
  const counter = {
    calls: 0,
    restore() {
      Deflater.prototype.deflate = original;
    },
  };
  Deflater.prototype.deflate = function (data: Uint8Array) {
    counter.calls++;
    return original.call(this, data);
  };
  return counter;
}

Deno.test("a message is framed once and compressed once for every subscriber", async () => {
  const deflates = countDeflates();
  const r = room();
  try {
    const clients = await Promise.all(
      Array.from({ length: 5 }, () => connect(`${r.url}?t=news`)),
    );
    // Two more that decline compression get the same plain frame.
    const plain = await Promise.all(
      Array.from(
        { length: 2 },
        () => connect(`${r.url}?t=news`, { perMessageDeflate: false }),
      ),
    );
    await until(() => r.topics.subscribers("news") === 7, "7 subscribers");
    const big = "compress me ".repeat(10_000);
    await r.topics.publish("news", "small");
    await r.topics.publish("news", new Uint8Array([1, 2, 3]));
    await r.topics.publish("news", big);
    for (const client of [...clients, ...plain]) {
      const reader = client.readable.getReader();
      const got = await take(reader, 3);
      assertEquals(got, ["small", new Uint8Array([1, 2, 3]), big]);
      reader.releaseLock();
    }
    assert(clients.every((c) => c.extensions.includes("permessage-deflate")));
    // One zlib call for the seven subscribers' big message; one frame per
    // message, and one more for the big one: compressed, and plain.
    assertEquals(deflates.calls, 1);
    const stats = r.topics.stats;
    assertEquals(stats.compressed, 1);
    assertEquals(stats.encoded, 4);
    assertEquals(stats.delivered, 21);
    for (const client of [...clients, ...plain]) {
      client.close();
      await client.closed;
    }
  } finally {
    deflates.restore();
    await r.stop();
  }
});

Deno.test("subscribers that keep a deflate context get the plain frame, which RFC 7692 allows", async () => {
  const deflates = countDeflates();
  // `{}`: context takeover both ways, so no compressed bytes can be shared.
  const r = room({}, { perMessageDeflate: {} });
  try {
    const clients = await Promise.all(
      Array.from({ length: 3 }, () => connect(`${r.url}?t=news`)),
    );
    await until(() => r.topics.subscribers("news") === 3, "3 subscribers");
    for (const client of clients) {
      assert(client.extensions.includes("permessage-deflate"));
      assert(!client.extensions.includes("server_no_context_takeover"));
    }
    const big = "compress me ".repeat(10_000);
    await r.topics.publish("news", big);
    for (const client of clients) {
      const reader = client.readable.getReader();
      assertEquals(await take(reader, 1), [big]);
      reader.releaseLock();
    }
    assertEquals(deflates.calls, 0);
    assertEquals(r.topics.stats.encoded, 1);
    for (const client of clients) {
      client.close();
      await client.closed;
    }
  } finally {
    deflates.restore();
    await r.stop();
  }
});

Deno.test("each subscriber gets a topic's messages in publish order, compressed or not", async () => {
  const r = room();
  try {
    const clients = await Promise.all([
      connect(`${r.url}?t=a`),
      connect(`${r.url}?t=a`, { perMessageDeflate: false }),
      connect(`${r.url}?t=a,b`),
    ]);
    await until(() => r.topics.subscribers("a") === 3, "subscribers");
    const sent: string[] = [];
    const publishing: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      // Every third is over the deflate threshold: compressing is
      // asynchronous, and must not let the small ones overtake it.
      const text = i % 3 === 0 ? `${i}:` + "x".repeat(2000) : `${i}`;
      sent.push(text);
      publishing.push(r.topics.publish("a", text));
      if (i % 50 === 0) publishing.push(r.topics.publish("b", `b${i}`));
    }
    await Promise.all(publishing);
    for (const [i, client] of clients.entries()) {
      const reader = client.readable.getReader();
      // The third has both topics, interleaved.
      const got = await take(reader, i === 2 ? 204 : 200);
      const onB = got.filter((m) => (m as string).startsWith("b"));
      assertEquals(got.filter((m) => !onB.includes(m)), sent);
      assertEquals(onB, i === 2 ? ["b0", "b50", "b100", "b150"] : []);
      reader.releaseLock();
    }
    for (const client of clients) {
      client.close();
      await client.closed;
    }
  } finally {
    await r.stop();
  }
});

Deno.test("except leaves out one subscriber, and closing leaves every topic", async () => {
  const r = room();
  try {
    const a = await connect(`${r.url}?t=x,y`);
    const b = await connect(`${r.url}?t=x`);
    await until(() => r.topics.subscribers("x") === 2, "subscribers");
    await r.topics.publish("x", "not for a", { except: r.connections[0] });
    await r.topics.publish("x", "for all");
    const aIn = a.readable.getReader();
    const bIn = b.readable.getReader();
    assertEquals(await take(aIn, 1), ["for all"]);
    assertEquals(await take(bIn, 2), ["not for a", "for all"]);
    aIn.releaseLock();
    a.close();
    await a.closed;
    await until(() => r.topics.subscribers("x") === 1, "a to leave x");
    assertEquals(r.topics.subscribers("y"), 0);
    assertEquals(r.topics.unsubscribe(r.connections[1]!, "x"), true);
    assertEquals(r.topics.unsubscribe(r.connections[1]!, "x"), false);
    assertEquals(r.topics.subscribers("x"), 0);
    bIn.releaseLock();
    b.close();
    await b.closed;
  } finally {
    await r.stop();
  }
});

Deno.test("topics refuse client connections, bad topics, bad messages and bad options", async () => {
  const r = room();
  try {
    const client = await connect(`${r.url}?t=x`);
    assertThrows(
      () => r.topics.subscribe(client, "x"),
      TypeError,
      "Cannot subscribe: a client connection masks each frame",
    );
    assertThrows(
      () => r.topics.subscribe({} as WebSocketConnection, "x"),
      TypeError,
      "expected a connection from serve()",
    );
    assertThrows(() => r.topics.publish("", "x"), RangeError, "1 to 1024");
    assertThrows(
      () => r.topics.subscribe(r.connections[0]!, "x", { since: "1-0" }),
      TypeError,
      "Cannot resume: the backplane keeps no history",
    );
    assertThrows(
      () => r.topics.publish("x", {} as unknown as string),
      TypeError,
      "Cannot publish message: expected a string",
    );
    assertThrows(
      () => new Topics({ maxBufferedAmount: 0 }),
      RangeError,
      "maxBufferedAmount",
    );
    assertThrows(
      () => new Topics({ slowCloseCode: 1000 as 1008 }),
      RangeError,
      "slowCloseCode",
    );
    assertThrows(
      () => new Topics({ slowSubscriber: "wait" as "drop" }),
      TypeError,
      "slowSubscriber",
    );
    assertThrows(
      () => new Outbox(true).pushEncoded(new Uint8Array(2)),
      TypeError,
      "Cannot queue shared frames",
    );
    client.close();
    await client.closed;
  } finally {
    await r.stop();
  }
});

/**
 * A raw subscriber: it sends the upgrade, reads the 101, then reads nothing
 * until `frames()` is called, which decodes what it finally reads.
 */
async function rawSubscriber(port: number, topic: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = upgradeRequest({}).slice();
  const text = decoder.decode(request).replace("GET / ", `GET /?t=${topic} `);
  await conn.write(new TextEncoder().encode(text));
  let head: Uint8Array = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    if (n === null) throw new Error("no 101");
    head = concat(head, buffer.subarray(0, n));
    end = decoder.decode(head).indexOf("\r\n\r\n");
  }
  assert(decoder.decode(head).startsWith("HTTP/1.1 101"));
  const rest = head.subarray(end + 4);
  return {
    conn,
    /** Reads frames until the close frame or the end. */
    async frames() {
      const source = new ReadableStream<Uint8Array>({
        start(controller) {
          if (rest.length) controller.enqueue(rest.slice());
        },
        async pull(controller) {
          const buffer = new Uint8Array(64 * 1024);
          const n = await conn.read(buffer).catch(() => null);
          if (n === null) controller.close();
          else controller.enqueue(buffer.subarray(0, n));
        },
      });
      const frames: { opcode: number; payload: Uint8Array }[] = [];
      const reader = source.pipeThrough(
        new FrameDecoderStream({ role: "client" }),
      ).getReader();
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        frames.push({ opcode: value.opcode, payload: value.payload });
        if (value.opcode === Opcode.Close) break;
      }
      await reader.cancel().catch(() => {});
      return frames;
    },
  };
}

async function slowSubscriberRun(policy: "close" | "drop") {
  const max = 256 * 1024;
  const r = room(
    { maxBufferedAmount: max, slowSubscriber: policy },
    // The slow peer reads only after all is published: the server's close
    // handshake and send watchdog must outlast that.
    { closeTimeout: 60_000, sendTimeout: 60_000, perMessageDeflate: false },
  );
  try {
    const slow = await rawSubscriber(r.server.addr.port, "t");
    const fast = await Promise.all([
      connect(`${r.url}?t=t`),
      connect(`${r.url}?t=t`),
    ]);
    await until(() => r.topics.subscribers("t") === 3, "subscribers");
    const [slowConn, ...fastConns] = r.connections;
    const readers = fast.map((client) => client.readable.getReader());
    const count = 256;
    const size = 64 * 1024;
    let highest = 0;
    const received = readers.map(async (reader) => {
      let n = 0;
      for (const message of await take(reader, count)) {
        const bytes = message as Uint8Array;
        assertEquals(bytes.length, size);
        assertEquals(bytes[0], n & 0xff);
        n++;
      }
      return n;
    });
    for (let i = 0; i < count; i++) {
      const message = new Uint8Array(size).fill(i & 0xff);
      await r.topics.publish("t", message);
      highest = Math.max(highest, slowConn!.bufferedAmount);
      // The fast subscribers keep up; the slow one only grows to its bound.
      await until(
        () => fastConns.every((c) => c.bufferedAmount === 0),
        "the fast subscribers to take the message",
      );
    }
    // 16 MiB went to each fast subscriber; the slow one's queue stayed
    // within the bound plus one message.
    assertEquals(await Promise.all(received), [count, count]);
    assert(highest <= max + size + 14, `queued ${highest}`);
    // On "drop" the slow peer stays subscribed: the server closes it now,
    // so that its reading ends at that close frame.
    if (policy === "drop") slowConn!.close({ closeCode: 1000 });
    const frames = await slow.frames();
    slow.conn.close();
    const data = frames.filter((f) => f.opcode === Opcode.Binary);
    // What it did get is in order, whole, and a prefix (close) or a
    // subsequence (drop) of what was published.
    let last = -1;
    for (const frame of data) {
      assertEquals(frame.payload.length, size);
      const index = frame.payload[0]!;
      assert(frame.payload.every((b) => b === index));
      assert(
        index > last || last >= 255,
        `out of order: ${index} after ${last}`,
      );
      last = index;
    }
    assert(data.length < count, "the slow subscriber got everything");
    for (const reader of readers) reader.releaseLock();
    for (const client of fast) {
      client.close();
      await client.closed;
    }
    return { frames, data, stats: r.topics.stats };
  } finally {
    await r.stop();
  }
}

Deno.test("a slow subscriber is closed with 1013 after what it was sent, and stalls nobody", async () => {
  const { frames, data, stats } = await slowSubscriberRun("close");
  const close = frames.at(-1)!;
  assertEquals(close.opcode, Opcode.Close);
  assertEquals((close.payload[0]! << 8) | close.payload[1]!, 1013);
  assertEquals(stats.closed, 1);
  // A prefix: nothing after the first message it could not take.
  data.forEach((frame, i) => assertEquals(frame.payload[0], i));
});

Deno.test("a slow subscriber on drop misses messages, keeps its order, and stays subscribed", async () => {
  const { frames, data, stats } = await slowSubscriberRun("drop");
  const close = frames.at(-1)!;
  assertEquals(close.opcode, Opcode.Close);
  assertEquals((close.payload[0]! << 8) | close.payload[1]!, 1000);
  assert(stats.dropped > 0);
  assertEquals(stats.dropped + data.length, 256);
  assertEquals(stats.closed, 0);
});

Deno.test("a shared frame is never pooled: a slow socket still writes it whole after others reused the pool", async () => {
  // Frames of exactly 64 KiB (the size of a pooled block) and 4 KiB (a
  // small one) go by reference and by copy; the fast subscriber takes them
  // and its writes settle while the slow one's are still queued. Other
  // connections then fill many blocks from the pool. If a shared frame
  // had gone back to the pool, the slow socket would send their bytes.
  const r = room({ maxBufferedAmount: 64 * 1024 * 1024 }, {
    perMessageDeflate: false,
    closeTimeout: 60_000,
    sendTimeout: 60_000,
  });
  try {
    const slow = await rawSubscriber(r.server.addr.port, "p");
    const fast = await connect(`${r.url}?t=p`);
    const other = await connect(`${r.url}?t=q`);
    await until(() => r.topics.subscribers("p") === 2, "subscribers");
    const sizes = [65536 - 4, 4096 - 4, 65536 - 4];
    const count = 192;
    for (let i = 0; i < count; i++) {
      await r.topics.publish(
        "p",
        new Uint8Array(sizes[i % 3]!).fill(i & 0xff),
      );
    }
    const fastIn = fast.readable.getReader();
    assertEquals((await take(fastIn, count)).length, count);
    // Churn the pools: small frames are copied into pooled blocks, which a
    // burst fills one after another.
    const otherIn = other.readable.getReader();
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 500; i++) {
        r.topics.publish("q", new Uint8Array(1000).fill(0xee));
      }
      assertEquals((await take(otherIn, 500)).length, 500);
    }
    // The slow peer reads at last, up to the close frame after the data.
    r.connections[0]!.close();
    const frames = (await slow.frames()).filter((f) =>
      f.opcode === Opcode.Binary
    );
    slow.conn.close();
    assertEquals(frames.length, count);
    frames.forEach((frame, i) => {
      assertEquals(frame.payload.length, sizes[i % 3]);
      assert(frame.payload.every((b) => b === (i & 0xff)), `frame ${i}`);
    });
    fastIn.releaseLock();
    otherIn.releaseLock();
    for (const client of [fast, other]) {
      client.close();
      await client.closed;
    }
  } finally {
    await r.stop();
  }
});

Deno.test("publish after close throws, and a connection closing is skipped", async () => {
  const r = room();
  const client = await connect(`${r.url}?t=z`);
  await until(() => r.topics.subscribers("z") === 1, "subscriber");
  r.connections[0]!.close({ closeCode: 1000 });
  // Our close frame is queued: nothing may follow it (RFC 6455 §5.5.1).
  await r.topics.publish("z", "too late");
  assertEquals(r.topics.subscribers("z"), 0);
  const reader = client.readable.getReader();
  assertEquals(await reader.read(), { value: undefined, done: true });
  assertEquals(await client.closed, { closeCode: 1000, reason: "" });
  await r.stop();
  assertThrows(() => r.topics.publish("z", "x"), TypeError, "closed");
});

// A connection's topics are a set the server keeps for it: without a bound,
// a client that asks to join topic after topic grows it without end.
Deno.test("maxTopicsPerConnection bounds the topics one connection is in", async () => {
  const r = room({ maxTopicsPerConnection: 2 });
  try {
    const client = await connect(`${r.url}?t=a,b`);
    await until(() => r.topics.subscribers("b") === 1, "subscribers");
    const connection = r.connections[0]!;
    // Again, a topic it is in already: nothing new, no error.
    await r.topics.subscribe(connection, "a");
    assertThrows(
      () => r.topics.subscribe(connection, "c"),
      RangeError,
      "Cannot subscribe: the connection is in 2 topics already (maxTopicsPerConnection)",
    );
    assertEquals(r.topics.subscribers("c"), 0);
    // Leaving one makes room.
    r.topics.unsubscribe(connection, "a");
    await r.topics.subscribe(connection, "c");
    await r.topics.publish("c", "in c");
    const reader = client.readable.getReader();
    assertEquals(await take(reader, 1), ["in c"]);
    reader.releaseLock();
    for (const bad of [0, -1, NaN, 1.5]) {
      assertThrows(
        () => new Topics({ maxTopicsPerConnection: bad }),
        RangeError,
        "maxTopicsPerConnection",
      );
      // NaN held live messages for a resuming subscriber without bound.
      assertThrows(
        () => new Topics({ maxReplay: bad }),
        RangeError,
        "maxReplay",
      );
    }
    client.close();
    await client.closed;
  } finally {
    await r.stop();
  }
});
