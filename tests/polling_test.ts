// Long and short polling over real HTTP on loopback (Deno.serve): messages
// in order and exactly once both ways, also when a poll's or a send's
// response is lost after the server sent it; short polling; the session
// timeout; a full queue in each direction; both ends closing.

import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { settleWithin, watch } from "./_helpers.ts";
import { CometSession } from "../lib/_comet_session.ts";
import {
  connectPolling,
  decodeBatch,
  encodeBatch,
  type PollingClientOptions,
  type PollingConnection,
  type PollingMessage,
  PollingServer,
  type PollingServerOptions,
} from "../lib/polling/mod.ts";
import { WebSocketError } from "../mod.ts";

interface Setup {
  url: string;
  polling: PollingServer;
  connections: PollingConnection[];
  next(): Promise<PollingConnection>;
  [Symbol.asyncDispose](): Promise<void>;
}

function setup(options: PollingServerOptions = {}): Setup {
  const connections: PollingConnection[] = [];
  const waiting: ((connection: PollingConnection) => void)[] = [];
  const polling = new PollingServer((connection) => {
    connections.push(connection);
    waiting.shift()?.(connection);
  }, options);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    polling.fetch,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/poll`,
    polling,
    connections,
    next: () =>
      connections.length > waiting.length
        ? Promise.resolve(connections[waiting.length]!)
        : new Promise((resolve) => waiting.push(resolve)),
    async [Symbol.asyncDispose]() {
      polling.close();
      await server.shutdown();
    },
  };
}

function messages(n: number, tag: string): PollingMessage[] {
  return Array.from(
    { length: n },
    (_, i) => i % 3 === 2 ? new Uint8Array([i & 255, 0, 255]) : `${tag} ${i}`,
  );
}

async function take<T>(readable: ReadableStream<T>, n: number): Promise<T[]> {
  const reader = readable.getReader();
  const out: T[] = [];
  while (out.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    out.push(value);
  }
  reader.releaseLock();
  return out;
}

async function writeAll(
  writable: WritableStream<PollingMessage>,
  items: PollingMessage[],
): Promise<void> {
  const writer = writable.getWriter();
  for (const item of items) await writer.write(item);
  writer.releaseLock();
}

async function both(
  options: PollingClientOptions,
  setupOptions: PollingServerOptions = {},
) {
  await using s = setup(setupOptions);
  const client = await connectPolling(s.url, { retry: 5, ...options });
  const server = await s.next();
  const down = messages(200, "down");
  const up = messages(200, "up");
  const [gotDown, gotUp] = await Promise.all([
    take(client.readable, down.length),
    take(server.readable, up.length),
    writeAll(server.writable, down),
    writeAll(client.writable, up),
  ]);
  assertEquals(gotDown, down);
  assertEquals(gotUp, up);
  client.close();
  assertEquals(await client.closed, { closeCode: 1000, reason: "" });
  assertEquals(await server.closed, { closeCode: 1000, reason: "" });
}

Deno.test("long polling: messages in order and exactly once, both ways", async () => {
  await both({});
});

Deno.test("short polling: the same, polling with wait=0 at an interval", async () => {
  const waits = new Set<string | null>();
  await both({
    interval: 5,
    fetch: (input, init) => {
      if ((init.method ?? "GET") === "GET") {
        waits.add(new URL(input).searchParams.get("wait"));
      }
      return fetch(input, init);
    },
  }, { holdTimeout: 60_000 });
  assertEquals([...waits], ["0"]);
});

Deno.test("polling: lost poll and send responses, and a replayed poll, lose and duplicate nothing", async () => {
  let lostPolls = 0;
  let lostSends = 0;
  let staleAcks = 0;
  let previousAck = "0";
  const lossy: PollingClientOptions["fetch"] = async (input, init) => {
    const method = init.method ?? "GET";
    const url = new URL(input);
    let stale = false;
    if (method === "GET") {
      // Every fourth poll carries the ack of the one before, as a proxy
      // replaying an old request would: the server sends again messages
      // the client has, and the client drops them by sequence number.
      const ack = url.searchParams.get("ack")!;
      if (ack !== previousAck && ++staleAcks % 4 === 0) {
        url.searchParams.set("ack", previousAck);
        stale = true;
      }
      previousAck = ack;
    }
    const response = await fetch(url.href, init);
    const text = await response.text();
    // Every third poll that carried messages, and every other send: the
    // server sent the answer, the client never sees it.
    if (method === "GET" && !stale && decodeBatch(text).messages.length > 0) {
      if (++lostPolls % 3 === 1) throw new TypeError("lost poll response");
    }
    if (method === "POST" && url.searchParams.has("session")) {
      if (++lostSends % 2 === 1) throw new TypeError("lost send response");
    }
    return new Response(text, {
      status: response.status,
      headers: response.headers,
    });
  };
  // Small queues: many batches, so many polls and sends to lose.
  await both({ fetch: lossy, maxQueuedMessages: 8 }, { maxQueuedMessages: 8 });
  assert(lostPolls >= 2, `only ${lostPolls} polls with messages`);
  assert(lostSends >= 2, `only ${lostSends} sends`);
  assert(staleAcks >= 4, `only ${staleAcks} stale acks`);
  console.log({ lostPolls, lostSends, staleAcks });
});

Deno.test("polling: a session with no request for sessionTimeout fails, and its client learns it", async () => {
  await using s = setup({ sessionTimeout: 100 });
  // A raw session that never polls.
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  const error = await assertRejects(() => connection.closed, WebSocketError);
  assertEquals(error.code, "ERR_SESSION_TIMEOUT");
  await assertRejects(() => take(connection.readable, 1), WebSocketError);
  assertEquals(s.polling.size, 0);
  const late = await fetch(`${s.url}?session=${session}&ack=0&wait=0`);
  assertEquals(late.status, 404);
  await late.body?.cancel();

  // A short-polling client whose interval outlasts the session.
  const client = await connectPolling(s.url, { interval: 1000, retry: 5 });
  const clientError = await assertRejects(() => client.closed, WebSocketError);
  assertEquals(clientError.code, "ERR_SESSION_CLOSED");
  await assertRejects(() => take(client.readable, 1), WebSocketError);
});

Deno.test("polling: a full outbound queue makes writes wait until the client acknowledges", async () => {
  await using s = setup({ maxQueuedMessages: 4 });
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  const writer = connection.writable.getWriter();
  let written = 0;
  const all = Promise.all(
    Array.from(
      { length: 10 },
      (_, i) => writer.write(`m${i}`).then(() => written++),
    ),
  );
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
  assertEquals(written, 4); // the fifth waits: nothing is dropped
  const poll = async (ack: number) => {
    const response = await fetch(
      `${s.url}?session=${session}&ack=${ack}&wait=0`,
    );
    return decodeBatch(await response.text());
  };
  assertEquals(await poll(0), { seq: 1, messages: ["m0", "m1", "m2", "m3"] });
  // Not acknowledged: the same again (a lost response costs nothing).
  assertEquals(await poll(0), { seq: 1, messages: ["m0", "m1", "m2", "m3"] });
  // Two acknowledged: two writes go through.
  const third = await poll(2);
  assertEquals(third.seq, 3);
  assertEquals(third.messages.slice(0, 2), ["m2", "m3"]);
  const rest: PollingMessage[] = [];
  let ack = 2;
  while (rest.length < 8) {
    const batch = await poll(ack);
    // The batch starts at the first unacknowledged message, ack + 1.
    assertEquals(batch.seq, ack + 1);
    const fresh = batch.messages.slice(ack + 1 - batch.seq);
    rest.push(...fresh);
    ack = batch.seq + batch.messages.length - 1;
  }
  assertEquals(rest, ["m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]);
  await all;
  assertEquals(written, 10);
  const end = await fetch(`${s.url}?session=${session}`, { method: "DELETE" });
  await end.body?.cancel();
});

/**
 * Opens a session by hand: its id, the server's side of it, and a raw POST
 * of a batch that resolves with the server's ack.
 */
async function openRaw(s: Setup) {
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  const send = async (seq: number, items: string[]): Promise<number> => {
    const response = await fetch(`${s.url}?session=${session}`, {
      method: "POST",
      body: encodeBatch({ seq, messages: items }),
    });
    return (await response.json()).ack;
  };
  return { session, connection, send };
}

Deno.test("polling: a full inbound queue acknowledges only what fits, and a resent batch is deduplicated", async () => {
  await using s = setup({ maxQueuedMessages: 2 });
  const { session, connection, send } = await openRaw(s);
  assertEquals(await send(1, ["a", "b", "c", "d"]), 2); // the application reads nothing yet
  assertEquals(await send(1, ["a", "b", "c", "d"]), 2); // resent: a and b not taken twice
  assertEquals(await take(connection.readable, 2), ["a", "b"]);
  assertEquals(await send(3, ["c", "d"]), 4);
  assertEquals(await take(connection.readable, 2), ["c", "d"]);
  // A gap is refused.
  const gap = await fetch(`${s.url}?session=${session}`, {
    method: "POST",
    body: encodeBatch({ seq: 9, messages: ["x"] }),
  });
  assertEquals(gap.status, 409);
  await gap.body?.cancel();
  const end = await fetch(`${s.url}?session=${session}`, { method: "DELETE" });
  await end.body?.cancel();
  assertEquals(await connection.closed, { closeCode: 1000, reason: "" });
});

// maxQueuedMessages counts messages inbound too, whatever their length: a
// POST takes as many as there is room for, not as many characters.
Deno.test("polling: a full inbound queue counts messages, not their length", async () => {
  await using s = setup({ maxQueuedMessages: 4 });
  const { session, connection, send } = await openRaw(s);
  // Nobody reads: all three fit the four places.
  assertEquals(await send(1, ["hello", "hello", "hello"]), 3);
  // One place left: one long message takes it, the next waits.
  const long = "x".repeat(2048);
  assertEquals(await send(4, [long, long]), 4);
  assertEquals(await take(connection.readable, 4), [
    "hello",
    "hello",
    "hello",
    long,
  ]);
  assertEquals(await send(5, [long]), 5);
  assertEquals(await take(connection.readable, 1), [long]);
  const end = await fetch(`${s.url}?session=${session}`, { method: "DELETE" });
  await end.body?.cancel();
  assertEquals(await connection.closed, { closeCode: 1000, reason: "" });
});

// The session engine's methods (acknowledge, hold, sendAll, …) break its
// invariants when called from outside: the application holds a connection
// with only the documented shape, never the engine.
// Every member of the engine's prototype, methods and getters: a new one
// is checked too.
const ENGINE_MEMBERS = Object.getOwnPropertyNames(CometSession.prototype)
  .filter((name) => name !== "constructor");

Deno.test("polling: the connection the application holds has the connection's shape and no engine methods", async () => {
  await using s = setup();
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  assertEquals(Object.getPrototypeOf(connection), Object.prototype);
  assertEquals(Object.keys(connection).sort(), [
    "close",
    "closed",
    "id",
    "readable",
    "writable",
  ]);
  assertEquals(ENGINE_MEMBERS.filter((name) => name in connection), []);
  assertEquals(connection.id, session);
  // It is the session: its close is the client's.
  connection.close();
  const poll = await fetch(`${s.url}?session=${session}&ack=0&wait=0`);
  assertEquals(decodeBatch(await poll.text()), {
    seq: 1,
    messages: [],
    closed: true,
  });
  assertEquals(await connection.closed, { closeCode: 1000, reason: "" });
});

Deno.test("polling: the server's close delivers what is queued, then ends the client cleanly", async () => {
  await using s = setup();
  const client = await connectPolling(s.url, { retry: 5 });
  const server = await s.next();
  const writer = server.writable.getWriter();
  await writer.write("last words");
  await writer.write(new Uint8Array([7]));
  server.close();
  await assertRejects(() => writer.write("late"), TypeError, "Cannot send");
  assertEquals(await Array.fromAsync(client.readable), [
    "last words",
    new Uint8Array([7]),
  ]);
  assertEquals(await client.closed, { closeCode: 1000, reason: "" });
  assertEquals(await server.closed, { closeCode: 1000, reason: "" });
  assertEquals(s.polling.size, 0);
});

Deno.test("polling: the signal fails the client; options and batches are checked", async () => {
  await using s = setup();
  const abort = new AbortController();
  const client = await connectPolling(s.url, { signal: abort.signal });
  abort.abort(new Error("stop"));
  await assertRejects(() => client.closed, Error, "stop");
  const server = await s.next();
  server.close();
  assertThrows(
    () => new PollingServer(() => {}, { holdTimeout: -1 }),
    RangeError,
  );
  await assertRejects(
    () => connectPolling(s.url, { interval: NaN }),
    RangeError,
  );
  for (const closeTimeout of [0, NaN]) {
    await assertRejects(
      () => connectPolling(s.url, { closeTimeout }),
      RangeError,
      "closeTimeout",
    );
  }
  assertThrows(() => decodeBatch('{"seq":0,"messages":[]}'), TypeError);
  assertThrows(() => decodeBatch('{"seq":1,"messages":[1]}'), TypeError);
  assertThrows(
    () => decodeBatch("nope"),
    TypeError,
    "Cannot decode polling batch",
  );
});

Deno.test("polling: a burst of small messages is split under the server's maxBodySize", async () => {
  const got: unknown[] = [];
  const polling = new PollingServer((c) => {
    (async () => {
      try {
        for await (const m of c.readable) got.push(m);
      } catch { /* the test checks what arrived */ }
    })();
  }, { maxBodySize: 1000, holdTimeout: 100 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    polling.fetch,
  );
  const client = await connectPolling(`http://127.0.0.1:${server.addr.port}/`, {
    retry: 10,
    maxRetryDelay: 20,
    maxRetries: 3,
    hold: 100,
    // No maxBodySize: the server says its own when the session opens.
  });
  const w = client.writable.getWriter();
  // Each fits a body alone (400 bytes < 1000); together they do not.
  const sent = [];
  for (let i = 0; i < 5; i++) sent.push(w.write(String(i).repeat(400)));
  await Promise.all(sent);
  // One more than a body holds fails the write, and says why.
  const error = await w.write("z".repeat(1000)).then(() => undefined, (e) => e);
  assertEquals(error?.code, "ERR_MESSAGE_TOO_LARGE");
  const outcome = await Promise.race([
    client.closed.then(() => "closed", (e) => `failed: ${e.message}`),
    new Promise((r) => setTimeout(() => r("open"), 1500)),
  ]);
  client.close();
  await client.closed.catch(() => {});
  polling.close();
  await server.shutdown();
  assertEquals(outcome, "open");
  assertEquals(got, ["0", "1", "2", "3", "4"].map((d) => d.repeat(400)));
});

Deno.test("polling: a lost {closed: true} answer is answered again, not with 404", async () => {
  let conn!: PollingConnection;
  const polling = new PollingServer((c) => (conn = c), { holdTimeout: 0 });
  const open = await polling.fetch(
    new Request("http://x/", { method: "POST" }),
  );
  const { session } = await open.json();
  conn.close();
  const poll = () =>
    polling.fetch(new Request(`http://x/?session=${session}&ack=0&wait=0`));
  const first = await poll();
  assertEquals((await first.json()).closed, true);
  // That answer is lost; the client polls again with the same ack.
  const retry = await poll();
  assertEquals(retry.status, 200);
  assertEquals((await retry.json()).closed, true);
  assertEquals(polling.size, 0);
});

Deno.test("polling: a client that pauses reading longer than sessionTimeout keeps its session", async () => {
  let serverClosed!: Promise<string>;
  let writes!: Promise<unknown>;
  const polling = new PollingServer((c) => {
    serverClosed = c.closed.then(() => "clean", (e) => e.code);
    const w = c.writable.getWriter();
    writes = Promise.allSettled([0, 1, 2].map((i) => w.write("m" + i)));
  }, { sessionTimeout: 300, holdTimeout: 100 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    polling.fetch,
  );
  const client = await connectPolling(`http://127.0.0.1:${server.addr.port}/`, {
    hold: 100,
    maxQueuedMessages: 1,
  });
  // The application is busy: its readable is full, so no poll goes out.
  await new Promise((r) => setTimeout(r, 1000));
  const state = await Promise.race([
    serverClosed,
    new Promise((r) => setTimeout(() => r("open"), 10)),
  ]);
  // Once it reads again, every message arrives.
  const reader = client.readable.getReader();
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await reader.read()).value);
  reader.releaseLock();
  client.close();
  await client.closed.catch(() => {});
  await writes;
  polling.close();
  await server.shutdown();
  assertEquals(state, "open");
  assertEquals(got, ["m0", "m1", "m2"]);
});

// close() sends what was written before it, but a server whose application
// reads nothing takes nothing (each retry gets the same ack): closeTimeout
// bounds the wait, the session still ends on the server, and `closed` says
// what was lost.
Deno.test("polling: close() with messages the server never takes ends after closeTimeout", async () => {
  await using s = setup({ maxQueuedMessages: 2 });
  const client = await connectPolling(s.url, { retry: 20, closeTimeout: 300 });
  const server = await s.next();
  await writeAll(client.writable, messages(5, "up"));
  client.close();
  const outcome = await settleWithin(client.closed, 10_000);
  assert(outcome instanceof WebSocketError, String(outcome));
  assertEquals(outcome.code, "ERR_CLOSE_TIMEOUT");
  // The server heard the close: its side of the session ends.
  assertEquals(await server.closed, { closeCode: 1000, reason: "" });
});

// The session engine settles every waiter when a session ends: a write
// waiting for room (never queued) fails with the session's error, and
// `closed` and `readable` say why; the sanitizers check that no timer is
// left behind.
Deno.test("polling: a write waiting for room fails when the session times out", async () => {
  await using s = setup({ sessionTimeout: 200, maxQueuedMessages: 1 });
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  const writer = connection.writable.getWriter();
  await writer.write("queued");
  const waiting = writer.write("waits for room");
  const error = await assertRejects(() => waiting, WebSocketError);
  assertEquals(error.code, "ERR_SESSION_TIMEOUT");
  await assertRejects(() => connection.closed, WebSocketError);
  assertEquals(s.polling.size, 0);
  // No tombstone for a failed session: its client learns it with a 404.
  const late = await fetch(`${s.url}?session=${session}&ack=0&wait=0`);
  assertEquals(late.status, 404);
  await late.body?.cancel();
});

// A held poll is the client's only way to hear the server's close: the
// close answers it at once, with `closed: true` after the messages.
Deno.test("polling: the server's close answers a held poll", async () => {
  await using s = setup({ holdTimeout: 60_000 });
  const opened = await fetch(s.url, { method: "POST" });
  const { session } = await opened.json();
  const connection = await s.next();
  const held = fetch(`${s.url}?session=${session}&ack=0&wait=60000`).then(
    async (response) => decodeBatch(await response.text()),
  );
  // Let the poll reach the server and be held.
  await new Promise((r) => setTimeout(r, 100));
  connection.close();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const answer = await Promise.race([
      held,
      new Promise((r) => timer = setTimeout(() => r("still held"), 30_000)),
    ]);
    assertEquals(answer, { seq: 1, messages: [], closed: true });
  } finally {
    clearTimeout(timer);
  }
  assertEquals(await connection.closed, { closeCode: 1000, reason: "" });
  // A retry of that poll (its answer lost) gets the close again.
  const retry = await fetch(`${s.url}?session=${session}&ack=0&wait=0`);
  assertEquals(decodeBatch(await retry.text()), {
    seq: 1,
    messages: [],
    closed: true,
  });
});

// close() is a handshake, as a WebSocket's (RFC 6455 §1.4, §7.1.2): what
// the server's application wrote before it learned of the close still
// arrives, in order and once, then `readable` ends and `closed` resolves.
// The first message fills the client's readable (maxQueuedMessages: 1), so
// it polls no more: the rest still waits on the server when close() comes.
for (const interval of [0, 5]) {
  Deno.test(`polling (interval ${interval}): close() still delivers what the server wrote before it`, async () => {
    const connections: PollingConnection[] = [];
    const polling = new PollingServer((c) => connections.push(c), {
      holdTimeout: 60_000,
    });
    const { watched, seen } = watch(polling.fetch, "first");
    const http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      watched,
    );
    try {
      const client = await connectPolling(
        `http://127.0.0.1:${http.addr.port}/`,
        { interval, hold: 60_000, maxQueuedMessages: 1 },
      );
      const server = connections[0]!;
      const rest = messages(20, "down");
      await writeAll(server.writable, ["first"]);
      await seen;
      await writeAll(server.writable, rest);
      client.close();
      // Nothing read until the close is over: it must not need a reader.
      assertEquals(await client.closed, { closeCode: 1000, reason: "" });
      const got = await take(client.readable, rest.length + 2);
      assertEquals(got, ["first", ...rest]);
      assertEquals(await server.closed, { closeCode: 1000, reason: "" });
      // The server's writable is closed: a write now fails.
      await assertRejects(() => writeAll(server.writable, ["late"]), TypeError);
    } finally {
      polling.close();
      await http.shutdown();
    }
  });
}

// The close is bounded: a server (here a proxy) that never answers the
// DELETE ends the client after closeTimeout, with ERR_CLOSE_TIMEOUT.
Deno.test("polling: a close the server never answers ends after closeTimeout", async () => {
  const polling = new PollingServer(() => {});
  const { promise: release, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      if (request.method === "DELETE") {
        await release;
        return new Response(null, { status: 502 });
      }
      return polling.fetch(request);
    },
  );
  try {
    const client = await connectPolling(
      `http://127.0.0.1:${server.addr.port}/`,
      { closeTimeout: 300 },
    );
    client.close();
    const outcome = await settleWithin(client.closed, 20_000);
    assert(outcome instanceof WebSocketError, String(outcome));
    assertEquals(outcome.code, "ERR_CLOSE_TIMEOUT");
  } finally {
    resolve();
    polling.close();
    await server.shutdown();
  }
});

// An older client's DELETE has no ack: it is answered with every message
// not acknowledged (the client drops the body), and the session ends.
Deno.test("polling: a DELETE without ack answers what is unacknowledged and ends the session", async () => {
  let conn!: PollingConnection;
  const polling = new PollingServer((c) => (conn = c), { holdTimeout: 0 });
  const open = await polling.fetch(
    new Request("http://x/", { method: "POST" }),
  );
  const { session } = await open.json();
  await writeAll(conn.writable, ["a", "b"]);
  const answer = await polling.fetch(
    new Request(`http://x/?session=${session}`, { method: "DELETE" }),
  );
  assertEquals(decodeBatch(await answer.text()), {
    seq: 1,
    messages: ["a", "b"],
    closed: true,
  });
  assertEquals(await conn.closed, { closeCode: 1000, reason: "" });
  assertEquals(polling.size, 0);
});

// The DELETE's answer carries what the server had not yet delivered: when
// it is lost, so may those messages be, and the session is gone, so no
// retry can fetch them. The close is then not clean.
Deno.test("polling: a lost answer to the client's close fails the close, not a clean end", async () => {
  const connections: PollingConnection[] = [];
  const polling = new PollingServer((c) => void connections.push(c));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const response = await polling.fetch(request);
      if (request.method !== "DELETE") return response;
      await response.body?.cancel();
      return new Response("bad gateway", { status: 502 });
    },
  );
  try {
    const client = await connectPolling(
      `http://127.0.0.1:${server.addr.port}/`,
      { retry: 5 },
    );
    await writeAll(connections[0]!.writable, ["x", "y"]);
    client.close();
    const outcome = await client.closed.then((info) => info, (error) => error);
    assert(outcome instanceof WebSocketError, String(outcome));
    assertEquals(outcome.code, "ERR_ABNORMAL_CLOSURE");
    await client.readable.cancel().catch(() => {});
  } finally {
    polling.close();
    await server.shutdown();
  }
});
