// Topics resuming from a message id (`since`), seen by the client: the
// history and the live messages once each and in order, within the
// subscriber's bounds, and what happens when the history or the backplane
// fails. On a real redis-server (tests/_redis.ts) where Redis can produce
// the condition; the races between the history (XRANGE) and the live feed
// (XREAD), and the failures, on FakeStreams, a backplane whose history and
// live delivery the test releases.

import { Buffer } from "node:buffer";
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { connect, serve, Topics, type WebSocketConnection } from "../mod.ts";
import type { Backplane } from "../lib/topics.ts";
import { RedisBackplane } from "../redis/mod.ts";
import { Redis } from "../redis/_ioredis.ts";
import { hasRedis, startRedis } from "./_redis.ts";

/** A stream-like backplane: a log with ids "<n>-0", live delivery queued
 * until `flushLive()`, history held until `gate` resolves. */
class FakeStreams implements Backplane {
  log: { id: string; bytes: Uint8Array }[] = [];
  listeners = new Map<string, Set<(b: Uint8Array, id?: string) => void>>();
  pendingLive: { topic: string; id: string; bytes: Uint8Array }[] = [];
  gate: Promise<void> = Promise.resolve();
  failNextSubscribe = false;
  failHistory = false;
  #n = 0;
  publish(topic: string, bytes: Uint8Array): Promise<void> {
    const id = `${++this.#n}-0`;
    this.log.push({ id, bytes: bytes.slice() });
    this.pendingLive.push({ topic, id, bytes: bytes.slice() });
    return Promise.resolve();
  }
  subscribe(topic: string, on: (b: Uint8Array, id?: string) => void) {
    if (this.failNextSubscribe) {
      this.failNextSubscribe = false;
      return Promise.reject(new Error("fake: Redis unreachable"));
    }
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, set = new Set());
    set.add(on);
    // Live from now on.
    this.pendingLive = [];
    return Promise.resolve(() => set!.delete(on));
  }
  async history(_topic: string, after: string, limit: number) {
    await this.gate;
    if (this.failHistory) throw new Error("fake: XRANGE failed");
    const n = Number(after.split("-")[0]);
    return this.log.filter((e) => Number(e.id.split("-")[0]) > n).slice(
      0,
      limit,
    );
  }
  flushLive(): void {
    const live = this.pendingLive;
    this.pendingLive = [];
    for (const m of live) {
      for (const on of this.listeners.get(m.topic) ?? []) on(m.bytes, m.id);
    }
  }
}

/** A loopback server; `pair()` gives a client and its server side. */
function server() {
  const queue: WebSocketConnection[] = [];
  const waiters: ((c: WebSocketConnection) => void)[] = [];
  const s = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (c) => {
    c.readable.pipeTo(new WritableStream()).catch(() => {});
    const w = waiters.shift();
    if (w) w(c);
    else queue.push(c);
  });
  const url = `ws://127.0.0.1:${s.addr.port}/`;
  return {
    async pair() {
      const accepted = queue.length
        ? Promise.resolve(queue.shift()!)
        : new Promise<WebSocketConnection>((r) => waiters.push(r));
      const client = await connect(url);
      return { client, server: await accepted };
    },
    shutdown: () => s.shutdown(),
  };
}

/** Reads messages until `last` or its stamped form `<id>:<last>`
 * (included); fails after a generous wait. */
async function readUntil(
  client: WebSocketConnection,
  last: string,
): Promise<(string | Uint8Array)[]> {
  const reader = client.readable.getReader();
  const got: (string | Uint8Array)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(
      () => reject(new Error(`"${last}" never came; got ${got.join(", ")}`)),
      30_000,
    )
  );
  try {
    const at = (m: unknown) => m === last || String(m).endsWith(`:${last}`);
    while (!at(got.at(-1))) {
      const { value, done } = await Promise.race([reader.read(), late]);
      if (done) throw new Error(`ended before "${last}": ${got.join(", ")}`);
      got.push(value);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return got;
}

async function closeAll(
  topics: Topics,
  s: { shutdown(): Promise<void> },
  ...clients: WebSocketConnection[]
): Promise<void> {
  for (const c of clients) {
    try {
      c.close();
    } catch { /* closing already */ }
    await c.closed.catch(() => {});
  }
  await s.shutdown();
  topics.close();
}

const stampId = (m: string | Uint8Array, { id }: { id: string }) =>
  `${id}:${m}`;

Deno.test("resume: a message in both the history and the live feed is sent once", async () => {
  const backplane = new FakeStreams();
  const topics = new Topics({ backplane, stamp: stampId });
  const s = server();
  // Another subscriber keeps the topic's backplane subscription.
  const a = await s.pair();
  await topics.subscribe(a.server, "t");
  await topics.publish("t", "m1");
  backplane.flushLive();
  const b = await s.pair();
  let open!: () => void;
  backplane.gate = new Promise((r) => open = r);
  const resumed = topics.subscribe(b.server, "t", { since: "1-0" });
  // m2 is added (XADD) while the history is asked for (XRANGE): it is in
  // the history, and its live delivery (XREAD) comes after it.
  await topics.publish("t", "m2");
  open();
  await resumed;
  backplane.flushLive();
  await topics.publish("t", "m3");
  backplane.flushLive();
  assertEquals(await readUntil(b.client, "3-0:m3"), ["2-0:m2", "3-0:m3"]);
  await closeAll(topics, s, a.client, b.client);
});

Deno.test({
  name:
    "resume: the history is queued within maxBufferedAmount, and all of it arrives",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const backplane = new RedisBackplane({ url: redis.url, mode: "streams" });
    const max = 64 * 1024;
    const topics = new Topics({ backplane, maxBufferedAmount: max });
    const s = server();
    try {
      // 12 MB of history, beyond what loopback's socket buffers take.
      const count = 200;
      for (let i = 0; i < count; i++) {
        const message = new Uint8Array(60 * 1024);
        message[0] = i;
        await topics.publish("t", message);
      }
      const b = await s.pair();
      // The client reads nothing until the kernel's buffers are full and
      // the replay has stopped: then it waits on a frame the socket cannot
      // take.
      const resumed = topics.subscribe(b.server, "t", { since: "0-0" });
      let most = 0;
      for (let last = -1, same = 0, i = 0; i < 1200; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const queued = b.server.bufferedAmount;
        most = Math.max(most, queued);
        const delivered = topics.stats.delivered;
        same = delivered === last ? same + 1 : 0;
        last = delivered;
        if (same >= 40 && queued > 0) break;
      }
      assert(most > 0, "the history never filled the socket's buffers");
      assert(most <= 2 * max, `queued ${most} bytes, bound ${max}`);
      const reader = b.client.readable.getReader();
      for (let i = 0; i < count; i++) {
        const { value } = await reader.read();
        assertEquals((value as Uint8Array)[0], i % 256);
      }
      reader.releaseLock();
      await resumed;
      await closeAll(topics, s, b.client);
    } finally {
      backplane.close();
      await backplane.finished;
      await redis.stop();
    }
  },
});

Deno.test('resume with slowSubscriber "drop": at most maxReplay live frames are held, the rest dropped and counted', async () => {
  const backplane = new FakeStreams();
  const topics = new Topics({
    backplane,
    slowSubscriber: "drop",
    maxReplay: 2,
  });
  const s = server();
  const a = await s.pair();
  await topics.subscribe(a.server, "t");
  const b = await s.pair();
  let open!: () => void;
  backplane.gate = new Promise((r) => open = r);
  const resumed = topics.subscribe(b.server, "t", { since: "0-0" });
  await new Promise((r) => setTimeout(r, 0));
  // The history is slow (Redis slow or reconnecting): 50 live messages come
  // meanwhile. The history itself is empty.
  for (let i = 0; i < 50; i++) {
    await topics.publish("t", `m${i}`);
    backplane.flushLive();
  }
  backplane.log = [];
  open();
  await resumed;
  await topics.publish("t", "end");
  backplane.flushLive();
  assertEquals(await readUntil(b.client, "end"), ["m0", "m1", "end"]);
  assertEquals(topics.stats.dropped, 48);
  await closeAll(topics, s, a.client, b.client);
});

/** A Topics on a fresh redis-server in streams mode, ids stamped. */
async function onRedis(
  options: ConstructorParameters<typeof Topics>[0] = {},
) {
  const redis = await startRedis();
  const backplane = new RedisBackplane({ url: redis.url, mode: "streams" });
  const topics = new Topics({ backplane, stamp: stampId, ...options });
  return {
    redis,
    backplane,
    topics,
    async stop() {
      topics.close();
      backplane.close();
      await backplane.finished;
      await redis.stop();
    },
  };
}

/** The messages of `"<id>:<text>"` strings, ids dropped. */
const texts = (got: (string | Uint8Array)[]) =>
  got.map((m) => String(m).replace(/^[^:]*:/, ""));

Deno.test({
  name:
    "resume: subscribing again with since while the first resume runs does nothing",
  ignore: !hasRedis,
  async fn() {
    const { topics, stop } = await onRedis();
    const s = server();
    try {
      await topics.publish("t", "m1");
      await topics.publish("t", "m2");
      const b = await s.pair();
      await Promise.all([
        topics.subscribe(b.server, "t", { since: "0-0" }),
        topics.subscribe(b.server, "t", { since: "0-0" }),
      ]);
      await topics.publish("t", "m3");
      assertEquals(texts(await readUntil(b.client, "m3")), ["m1", "m2", "m3"]);
      await closeAll(topics, s, b.client);
    } finally {
      await stop();
    }
  },
});

Deno.test("a topic whose backplane subscription failed subscribes again with its next subscriber", async () => {
  const backplane = new FakeStreams();
  const errors: unknown[] = [];
  const topics = new Topics({ backplane, onError: (e) => errors.push(e) });
  const s = server();
  const a = await s.pair();
  backplane.failNextSubscribe = true;
  // Redis is down: the subscription fails, the connection stays here.
  await assertRejects(() => topics.subscribe(a.server, "t"), Error, "fake");
  assertEquals(errors.length, 1);
  // Redis is back; a new member joins the same topic.
  const b = await s.pair();
  await topics.subscribe(b.server, "t");
  await topics.publish("t", "hello");
  backplane.flushLive();
  assertEquals(await readUntil(b.client, "hello"), ["hello"]);
  assertEquals(await readUntil(a.client, "hello"), ["hello"]);
  await closeAll(topics, s, a.client, b.client);
});

Deno.test({
  name:
    "resume: a history entry that is not a topics envelope is reported, not sent",
  ignore: !hasRedis,
  async fn() {
    const errors: unknown[] = [];
    const { redis, topics, stop } = await onRedis({
      onError: (e) => errors.push(e),
    });
    const s = server();
    const writer = new Redis(redis.url);
    try {
      // Another writer of the key, or a later envelope version: version 2,
      // a reserved opcode (RFC 6455 §5.2), which no client would accept.
      const entry = new Uint8Array(26);
      entry[0] = 2;
      entry[1] = 0x3;
      await writer.xadd("ws:topic:t", "*", "m", Buffer.from(entry));
      await topics.publish("t", "good");
      const b = await s.pair();
      await topics.subscribe(b.server, "t", { since: "0-0" });
      assertEquals(texts(await readUntil(b.client, "good")), ["good"]);
      assertEquals(errors.length, 1);
      assert(errors[0] instanceof TypeError, String(errors[0]));
      await closeAll(topics, s, b.client);
    } finally {
      writer.disconnect();
      await stop();
    }
  },
});

Deno.test("resume: a history that cannot be read fails the subscriber with 1011, sending nothing after the gap", async () => {
  const backplane = new FakeStreams();
  const errors: unknown[] = [];
  const topics = new Topics({ backplane, onError: (e) => errors.push(e) });
  const s = server();
  const a = await s.pair();
  await topics.subscribe(a.server, "t");
  const b = await s.pair();
  let open!: () => void;
  backplane.gate = new Promise((r) => open = r);
  backplane.failHistory = true;
  const resumed = topics.subscribe(b.server, "t", { since: "0-0" });
  // Live messages held meanwhile: after a gap, they must not go.
  await topics.publish("t", "live");
  backplane.flushLive();
  open();
  await assertRejects(() => resumed, Error, "XRANGE");
  // The live message is not sent: the close comes first.
  const reader = b.client.readable.getReader();
  assertEquals((await reader.read()).done, true);
  reader.releaseLock();
  assertEquals((await b.client.closed).closeCode, 1011);
  assertEquals(topics.subscribers("t"), 1);
  await closeAll(topics, s, a.client, b.client);
});

Deno.test({
  name: "resume: since over pub/sub throws at once",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const backplane = new RedisBackplane({ url: redis.url });
    const topics = new Topics({ backplane });
    const s = server();
    try {
      const b = await s.pair();
      assertThrows(
        () => topics.subscribe(b.server, "t", { since: "0-0" }),
        TypeError,
        "Cannot resume",
      );
      assertEquals(topics.subscribers("t"), 0);
      await closeAll(topics, s, b.client);
    } finally {
      backplane.close();
      await backplane.finished;
      await redis.stop();
    }
  },
});
