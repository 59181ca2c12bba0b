// realtime() and connectRealtime() over real HTTP on loopback: the same
// full-duplex contract (ordered, exactly once, text and binary, both closes)
// for every transport, and the iframe escaping as a page's parser sees it.

import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { settleWithin, watch } from "./_helpers.ts";
import { CometSession } from "../lib/_comet_session.ts";
import {
  connectRealtime,
  encodeIframeChunk,
  realtime,
  type RealtimeConnection,
  type RealtimeConnectionInfo,
  type RealtimeTransport,
} from "../lib/realtime/mod.ts";
import { WebSocketError } from "../lib/errors.ts";
import { serve } from "../lib/net/serve.ts";

const TRANSPORTS: RealtimeTransport[] = [
  "websocket",
  "sse",
  "long-polling",
  "polling",
  "iframe",
];

// Strings that would break a careless encoding: the iframe's script end and
// comment start, SSE's line ends, JSON's escapes, lone surrogates excluded.
const NASTY = [
  "</script><script>parent.evil()</script>",
  "<!--<script>",
  "line\r\nbreak\rcr\nlf",
  "\u2028\u2029",
  'quote " backslash \\ ',
  "data: fake\n\nid: 99\n\n",
  "",
  "ünïcödé 🎉",
];

function startServer(
  options: Parameters<typeof realtime>[0],
  onConnection: (c: RealtimeConnection, info: RealtimeConnectionInfo) => void,
) {
  const handler = realtime(options, onConnection);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/rt`,
    handler,
    async shutdown() {
      handler.close();
      await server.shutdown();
    },
  };
}

for (const transport of TRANSPORTS) {
  Deno.test(`${transport}: full duplex, ordered, exactly once, then the client closes`, async () => {
    const seen: RealtimeConnectionInfo[] = [];
    const serverClosed: Promise<unknown>[] = [];
    const server = startServer({}, (connection, info) => {
      seen.push(info);
      serverClosed.push(connection.closed);
      // Echo, tagged, so that order and count are visible to the peer.
      connection.readable.pipeThrough(
        new TransformStream({
          transform(message, controller) {
            controller.enqueue(
              typeof message === "string" ? `echo:${message}` : message,
            );
          },
        }),
      ).pipeTo(connection.writable).catch(() => {});
    });
    try {
      const connection = await connectRealtime(server.url, {
        transports: [transport],
        pollInterval: 20,
      });
      assertEquals(connection.transport, transport);
      const writer = connection.writable.getWriter();
      const reader = connection.readable.getReader();
      const sent: (string | Uint8Array)[] = [...NASTY];
      for (let i = 0; i < 200; i++) sent.push(`message ${i}`);
      sent.push(new Uint8Array([0, 1, 2, 255]), new Uint8Array(70_000).fill(7));
      // Written without waiting, so that the Comet POSTs batch them.
      const writes = sent.map((message) => writer.write(message));
      await Promise.all(writes);
      const received: (string | Uint8Array)[] = [];
      while (received.length < sent.length) {
        const { value, done } = await reader.read();
        assert(!done, `ended after ${received.length} messages`);
        received.push(value!);
      }
      assertEquals(
        received,
        sent.map((m) => typeof m === "string" ? `echo:${m}` : m),
      );
      reader.releaseLock();
      writer.releaseLock();
      connection.close({ closeCode: 1000, reason: "done" });
      assertEquals(await connection.closed, {
        closeCode: 1000,
        reason: "done",
      });
      assertEquals(seen.map((info) => info.transport), [transport]);
      assertEquals(await serverClosed[0], { closeCode: 1000, reason: "done" });
    } finally {
      await server.shutdown();
    }
  });

  Deno.test(`${transport}: the server closes, the client sees its code and reason`, async () => {
    const server = startServer({}, (connection) => {
      const writer = connection.writable.getWriter();
      writer.write("last words").then(() =>
        connection.close({ closeCode: 4001, reason: "bye" })
      );
    });
    try {
      const connection = await connectRealtime(server.url, {
        transports: [transport],
        pollInterval: 20,
      });
      const messages = await Array.fromAsync(connection.readable);
      assertEquals(messages, ["last words"]);
      assertEquals(await connection.closed, { closeCode: 4001, reason: "bye" });
    } finally {
      await server.shutdown();
    }
  });
}

Deno.test("connectRealtime falls back when the WebSocket upgrade is refused", async () => {
  const server = startServer({ transports: ["sse", "long-polling"] }, (c) => {
    c.readable.pipeTo(c.writable).catch(() => {});
  });
  try {
    const connection = await connectRealtime(server.url);
    assertEquals(connection.transport, "sse");
    const writer = connection.writable.getWriter();
    await writer.write("fell back");
    const reader = connection.readable.getReader();
    assertEquals((await reader.read()).value, "fell back");
    reader.releaseLock();
    writer.releaseLock();
    connection.close();
    await connection.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("connectRealtime fails with ERR_NO_TRANSPORT when none opens", async () => {
  const server = startServer({ transports: [] }, () => {});
  try {
    const error = await assertRejects(
      () =>
        connectRealtime(server.url, {
          transports: ["websocket", "sse", "polling"],
        }),
      WebSocketError,
    );
    assertEquals(error.code, "ERR_NO_TRANSPORT");
    assertEquals((error.cause as unknown[]).length, 3);
  } finally {
    await server.shutdown();
  }
});

Deno.test("iframe: no message can end its script element", () => {
  for (const message of NASTY) {
    const chunk = encodeIframeChunk({ i: 1, m: message });
    // One script element, whose body holds no "<" at all.
    assertEquals(chunk.split("<script>").length, 2);
    assertEquals(chunk.split("</script>").length, 2);
    const body = chunk.slice("<script>f(".length, -")</script>\n".length);
    assert(!body.includes("<"), body);
    assert(!/[\u2028\u2029]/.test(body));
    assertEquals(JSON.parse(body).m, message);
  }
});

Deno.test("a Comet session that idles past sessionTimeout fails", async () => {
  let closed: Promise<unknown> | undefined;
  const server = startServer(
    { sessionTimeout: 200, transports: ["polling"] },
    (c) => {
      closed = c.closed;
    },
  );
  try {
    const response = await fetch(`${server.url}/session?transport=polling`, {
      method: "POST",
    });
    await response.body?.cancel();
    const error = await assertRejects(() => closed!, WebSocketError);
    assertEquals(error.code, "ERR_SESSION_TIMEOUT");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a retried POST is not delivered twice", async () => {
  const received: unknown[] = [];
  const server = startServer({ transports: ["long-polling"] }, (c) => {
    c.readable.pipeTo(
      new WritableStream({ write: (m) => void received.push(m) }),
    )
      .catch(() => {});
  });
  try {
    const open = await fetch(`${server.url}/session?transport=long-polling`, {
      method: "POST",
    });
    const { sid } = await open.json();
    const send = async (seq: number, m: string[]) => {
      const response = await fetch(`${server.url}/send?sid=${sid}`, {
        method: "POST",
        body: JSON.stringify({ seq, m }),
      });
      return (await response.json()).ack;
    };
    assertEquals(await send(0, ["a", "b"]), 2);
    assertEquals(await send(0, ["a", "b", "c"]), 3); // a retry that grew
    assertEquals(await send(5, ["gap"]), 3); // a gap is not taken
    assertEquals(await send(2, ["c", "d"]), 4);
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(received, ["a", "b", "c", "d"]);
    const close = await fetch(`${server.url}/close?sid=${sid}`, {
      method: "POST",
      body: JSON.stringify({ c: 1000, r: "" }),
    });
    await close.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("iframe: documents that end every few messages resume from the last id, exactly once", async () => {
  for (const transport of ["iframe"] as const) {
    const server = startServer({ iframeStreamBytes: 64 }, (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    });
    try {
      const connection = await connectRealtime(server.url, {
        transports: [transport],
      });
      const writer = connection.writable.getWriter();
      const reader = connection.readable.getReader();
      const sent = Array.from({ length: 100 }, (_, i) => `m${i}`);
      await Promise.all(sent.map((m) => writer.write(m)));
      const received: unknown[] = [];
      while (received.length < sent.length) {
        received.push((await reader.read()).value);
      }
      assertEquals(received, sent);
      reader.releaseLock();
      writer.releaseLock();
      connection.close();
      await connection.closed;
    } finally {
      await server.shutdown();
    }
  }
});

async function openSession(url: string, transport: RealtimeTransport) {
  const response = await fetch(`${url}/session?transport=${transport}`, {
    method: "POST",
  });
  return (await response.json()).sid as string;
}

async function send(url: string, sid: string, seq: number, m: unknown[]) {
  const response = await fetch(`${url}/send?sid=${sid}`, {
    method: "POST",
    body: JSON.stringify({ seq, m }),
  });
  return (await response.json()).ack as number;
}

async function endSession(url: string, sid: string) {
  const response = await fetch(`${url}/close?sid=${sid}`, {
    method: "POST",
    body: JSON.stringify({ c: 1000, r: "" }),
  });
  await response.body?.cancel();
}

Deno.test("a client that takes nothing fails the server's write after sendTimeout", async () => {
  let write: Promise<unknown> | undefined;
  let closed: Promise<unknown> | undefined;
  const server = startServer({
    transports: ["polling"],
    writableHighWaterMark: 10,
    sendTimeout: 200,
  }, (connection) => {
    closed = connection.closed;
    write = connection.writable.getWriter().write("x".repeat(100));
    write.catch(() => {});
  });
  try {
    await openSession(server.url, "polling");
    const error = await assertRejects(() => write!, WebSocketError);
    assertEquals(error.code, "ERR_SEND_TIMEOUT");
    await assertRejects(() => closed!, WebSocketError);
  } finally {
    await server.shutdown();
  }
});

Deno.test("messages past maxQueuedBytes are not acknowledged, and arrive once when sent again", async () => {
  let readable: ReadableStream<string | Uint8Array> | undefined;
  const server = startServer({
    transports: ["long-polling"],
    maxQueuedBytes: 250,
  }, (connection) => {
    readable = connection.readable;
  });
  try {
    const sid = await openSession(server.url, "long-polling");
    const messages = Array.from({ length: 10 }, (_, i) => `${i}`.repeat(100));
    // Nothing read yet: the empty queue takes 100 + 100 bytes, not a third.
    assertEquals(await send(server.url, sid, 0, messages), 2);
    const reader = readable!.getReader();
    const received: unknown[] = [];
    let seq = 2;
    while (received.length < messages.length) {
      received.push((await reader.read()).value);
      received.push((await reader.read()).value);
      seq = await send(server.url, sid, seq, messages.slice(seq));
    }
    assertEquals(received, messages);
    reader.releaseLock();
    await endSession(server.url, sid);
  } finally {
    await server.shutdown();
  }
});

Deno.test("an ack older than the replay window gets 410, not a gap", async () => {
  const { handler, conn, sid, poll } = await openHandlerSession({
    maxReplayBytes: 50,
  });
  const writer = conn.writable.getWriter();
  for (let i = 1; i <= 5; i++) await writer.write(`message ${i}`.padEnd(20));
  // A stream takes all five; it breaks, and the window kept only the last.
  const stream = await handler(
    new Request(`http://x/rt/sse?sid=${sid}&ack=0`),
  );
  const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("id: 5")) text += (await reader.read()).value;
  await reader.cancel();
  // A poll from before the stream: its messages are gone.
  assertEquals((await poll(0)).status, 410);
  // A poll from the window on still gets the rest.
  assertEquals((await poll(4)).body, {
    items: [{ i: 5, m: "message 5".padEnd(20) }],
  });
  handler.close();
  await conn.closed.catch(() => {});
});

Deno.test("realtime() refuses sessions past maxSessions with 503", async () => {
  const server = startServer(
    { transports: ["polling"], maxSessions: 1 },
    () => {},
  );
  try {
    const sid = await openSession(server.url, "polling");
    const refused = await fetch(`${server.url}/session?transport=polling`, {
      method: "POST",
    });
    await refused.body?.cancel();
    assertEquals(refused.status, 503);
    await endSession(server.url, sid);
  } finally {
    await server.shutdown();
  }
});

Deno.test("realtime() and connectRealtime() check their arguments", async () => {
  assertThrows(() => realtime({ path: "rt" }, () => {}), TypeError, "path");
  assertThrows(
    () =>
      realtime(
        { transports: ["carrier-pigeon" as RealtimeTransport] },
        () => {},
      ),
    TypeError,
    "carrier-pigeon",
  );
  assertThrows(() => realtime({ sessionTimeout: -1 }, () => {}), RangeError);
  await assertRejects(
    () => connectRealtime("http://127.0.0.1:1/rt", { timeout: 0 }),
    RangeError,
  );
  for (const closeTimeout of [0, NaN, -5]) {
    await assertRejects(
      () => connectRealtime("http://127.0.0.1:1/rt", { closeTimeout }),
      RangeError,
      "closeTimeout",
    );
  }
  await assertRejects(
    () => connectRealtime("not a url"),
    TypeError,
    "not a URL",
  );
});

Deno.test("under our serve(), handler.accept takes the WebSocket and its fetch fallback the four Comet transports", async () => {
  const handler = realtime({}, (connection, info) => {
    const writer = connection.writable.getWriter();
    writer.write(`hello over ${info.transport}`).catch(() => {});
    connection.readable.pipeTo(
      new WritableStream({ write: (m) => writer.write(m) }),
    ).catch(() => {});
  });
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    fetch: handler,
    onUpgrade: (request) =>
      new URL(request.url).pathname === "/rt/ws" ? undefined : { reject: 404 },
  }, (connection, request) => handler.accept(connection, request));
  try {
    for (const transport of TRANSPORTS) {
      const connection = await connectRealtime(
        `http://127.0.0.1:${server.addr.port}/rt`,
        { transports: [transport], pollInterval: 20 },
      );
      assertEquals(connection.transport, transport);
      const writer = connection.writable.getWriter();
      const reader = connection.readable.getReader();
      const sent = [...NASTY, new Uint8Array([1, 2, 3])];
      await Promise.all(sent.map((m) => writer.write(m)));
      const received: unknown[] = [];
      while (received.length < sent.length + 1) {
        received.push((await reader.read()).value);
      }
      assertEquals(received, [`hello over ${transport}`, ...sent], transport);
      reader.releaseLock();
      writer.releaseLock();
      connection.close({ closeCode: 1000, reason: transport });
      assertEquals(await connection.closed, {
        closeCode: 1000,
        reason: transport,
      });
    }
    // A plain request reaches the handler through serve()'s fetch.
    const response = await fetch(
      `http://127.0.0.1:${server.addr.port}/rt/nothing`,
    );
    await response.body?.cancel();
    assertEquals(response.status, 404);
  } finally {
    handler.close();
    await server.shutdown();
  }
});

Deno.test("sse: Last-Event-ID resumes after it; an open stream keeps the session past sessionTimeout, even after a lost resume", async () => {
  let writer: WritableStreamDefaultWriter<string> | undefined;
  let closed: Promise<unknown> | undefined;
  const server = startServer({
    transports: ["sse"],
    maxReplayBytes: 50,
    sessionTimeout: 300,
    keepAlive: 0,
  }, (connection) => {
    writer = connection.writable.getWriter();
    closed = connection.closed;
  });
  try {
    const sid = await openSession(server.url, "sse");
    for (let i = 1; i <= 5; i++) await writer!.write(`m${i}`.padEnd(20));
    const events = async (lastEventId: string, count: number) => {
      const response = await fetch(`${server.url}/sse?sid=${sid}`, {
        headers: { "last-event-id": lastEventId },
      });
      const reader = response.body!.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while (text.split("\n\n").length <= count) {
        text += (await reader.read()).value;
      }
      return { text, reader };
    };
    // The hello and the five messages; the window keeps the last one only.
    const first = await events("0", 6);
    await first.reader.cancel();
    assertEquals(first.text.match(/^id: \d+$/gm), [
      "id: 1",
      "id: 2",
      "id: 3",
      "id: 4",
      "id: 5",
    ]);
    // Resuming from 2 would skip 3 and 4: the stream says the close instead.
    const lost = await events("2", 2);
    await lost.reader.cancel();
    assert(lost.text.includes('event: close\ndata: {"c":1006'), lost.text);
    // From 4, the fifth again. A second stream then replaces it (a client
    // reconnecting before the first ended), and stays open past
    // sessionTimeout: the session counts the streams that are open.
    const resumed = await events("4", 2);
    assert(resumed.text.includes("id: 5\n"), resumed.text);
    const replacing = await events("5", 1);
    let rest = "";
    for (let chunk; !(chunk = await resumed.reader.read()).done;) {
      rest += chunk.value;
    }
    assertEquals(rest, "", "the replaced stream ends");
    const outcome = await Promise.race([
      closed!.then(() => "closed", () => "failed"),
      new Promise((resolve) => setTimeout(resolve, 1000, "open")),
    ]);
    assertEquals(outcome, "open");
    await replacing.reader.cancel();
    await endSession(server.url, sid);
  } finally {
    await server.shutdown();
  }
});

Deno.test("connectRealtime falls back when a transport does not open in time (a proxy that buffers the event stream)", async () => {
  const handler = realtime({}, (connection) => {
    connection.readable.pipeTo(connection.writable).catch(() => {});
  });
  const held = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      // The proxy answers the event stream's headers and holds every byte.
      if (new URL(request.url).pathname === "/rt/sse") {
        let controller!: ReadableStreamDefaultController<Uint8Array>;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            controller = c;
            held.add(c);
          },
          cancel() {
            held.delete(controller);
          },
        });
        return new Response(body, {
          headers: { "content-type": "text/event-stream" },
        });
      }
      return handler(request);
    },
  );
  try {
    const connection = await connectRealtime(
      `http://127.0.0.1:${server.addr.port}/rt`,
      { transports: ["sse", "long-polling"], timeout: 500 },
    );
    assertEquals(connection.transport, "long-polling");
    const writer = connection.writable.getWriter();
    const reader = connection.readable.getReader();
    await writer.write("after the fallback");
    assertEquals((await reader.read()).value, "after the fallback");
    reader.releaseLock();
    writer.releaseLock();
    connection.close();
    await connection.closed;
  } finally {
    for (const controller of held) controller.close();
    handler.close();
    await server.shutdown();
  }
});

// close() right after write(): the /close POST must not overtake the /send
// carrying the outbox (the server could end the session first, the later
// /send would get 404, and the messages would be dropped).
for (const transport of ["long-polling", "sse"] as const) {
  Deno.test(`${transport}: messages written just before close() reach the server`, async () => {
    const got: unknown[] = [];
    let serverClosed!: Promise<unknown>;
    const handler = realtime({ path: "/rt", keepAlive: 0 }, (c) => {
      serverClosed = c.closed.catch((e) => e);
      (async () => {
        try {
          for await (const m of c.readable) got.push(m);
        } catch { /* the test checks what arrived */ }
      })();
    });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      handler,
    );
    const client = await connectRealtime(
      `http://127.0.0.1:${server.addr.port}/rt`,
      { transports: [transport] },
    );
    const writer = client.writable.getWriter();
    await writer.write("one");
    await writer.write("two");
    await writer.close();
    await client.closed.catch(() => {});
    await serverClosed;
    handler.close();
    await server.shutdown();
    assertEquals(got, ["one", "two"]);
  });
}

// Handler-level: a poll answer the client never got, asked for again.
async function openHandlerSession(opts: Record<string, unknown> = {}) {
  let conn!: RealtimeConnection;
  const handler = realtime({ path: "/rt", ...opts }, (c) => (conn = c));
  const base = "http://x/rt";
  const r = await handler(
    new Request(`${base}/session?transport=long-polling`, { method: "POST" }),
  );
  const { sid } = await r.json();
  const poll = async (ack: number) => {
    const res = await handler(
      new Request(`${base}/poll?sid=${sid}&ack=${ack}&wait=0`),
    );
    return {
      status: res.status,
      body: res.status === 200 ? await res.json() : await res.text(),
    };
  };
  return { handler, conn, sid, poll };
}

Deno.test("a lost poll answer that carried the server's close: the retry gets the close again", async () => {
  const { handler, conn, poll } = await openHandlerSession({
    closeTimeout: 200,
  });
  const w = conn.writable.getWriter();
  await w.write("a");
  assertEquals((await poll(0)).body, { items: [{ i: 1, m: "a" }] });
  conn.close({ closeCode: 1000, reason: "bye" });
  // This answer carries the close; it is lost on the way.
  assertEquals((await poll(1)).body, { items: [{ c: 1000, r: "bye" }] });
  // The client asks again with the same ack: the close is not acknowledged.
  assertEquals((await poll(1)).body, { items: [{ c: 1000, r: "bye" }] });
  await conn.closed.catch(() => {});
  handler.close();
});

// The session engine's methods (acknowledge, hold, sendAll, …) break its
// invariants when called from outside (sendAll() would hide messages from a
// live event stream): the application holds a connection with only the
// documented shape, never the engine.
// Every member of the engine's prototype, methods and getters: a new one
// is checked too.
const ENGINE_MEMBERS = Object.getOwnPropertyNames(CometSession.prototype)
  .filter((name) => name !== "constructor");

Deno.test("a Comet connection the application holds has the connection's shape and no engine methods", async () => {
  const conns: RealtimeConnection[] = [];
  const handler = realtime({ path: "/rt" }, (c) => conns.push(c));
  for (const transport of TRANSPORTS.filter((t) => t !== "websocket")) {
    const r = await handler(
      new Request(`http://x/rt/session?transport=${transport}`, {
        method: "POST",
      }),
    );
    await r.body?.cancel();
    const conn = conns.at(-1)!;
    assertEquals(conn.transport, transport);
    assertEquals(Object.getPrototypeOf(conn), Object.prototype);
    assertEquals(Object.keys(conn).sort(), [
      "close",
      "closed",
      "readable",
      "transport",
      "writable",
    ]);
    assertEquals(ENGINE_MEMBERS.filter((name) => name in conn), []);
  }
  assertEquals(conns.length, 4);
  handler.close();
  for (const conn of conns) await conn.closed.catch(() => {});
});

Deno.test("a poll answer bigger than maxReplayBytes is cut to the window, so a lost one can be asked for again", async () => {
  const { handler, conn, poll } = await openHandlerSession({
    maxReplayBytes: 100,
    writableHighWaterMark: 1000,
  });
  const w = conn.writable.getWriter();
  for (let i = 0; i < 3; i++) await w.write(String(i).repeat(60));
  const first = await poll(0);
  assertEquals(first.status, 200);
  // The answer is lost; the client asks again from ack 0 and gets the same.
  const retry = await poll(0);
  assertEquals(retry.status, 200);
  assertEquals(retry.body, first.body);
  // Every message arrives, in order, over the following polls.
  const got: string[] = [];
  let ack = 0;
  while (got.length < 3) {
    const { body } = await poll(ack);
    for (const item of body.items) {
      got.push(item.m);
      ack = item.i;
    }
  }
  assertEquals(got, ["0", "1", "2"].map((d) => d.repeat(60)));
  handler.close();
  await conn.closed.catch(() => {});
});

Deno.test("long-polling: the client's batches stay under the server's maxRequestBytes", async () => {
  const got: unknown[] = [];
  const handler = realtime(
    { path: "/rt", maxRequestBytes: 1000, keepAlive: 0 },
    (c) => {
      (async () => {
        try {
          for await (const m of c.readable) got.push(m);
        } catch { /* the test checks what arrived */ }
      })();
    },
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const client = await connectRealtime(
    `http://127.0.0.1:${server.addr.port}/rt`,
    // No maxRequestBytes: the server says its own when the session opens.
    { transports: ["long-polling"], maxRetries: 2 },
  );
  const w = client.writable.getWriter();
  // Each fits a body alone; together they do not. Multi-byte characters
  // count in bytes, not UTF-16 units.
  for (let i = 0; i < 5; i++) await w.write("é".repeat(300));
  const error = await w.write("é".repeat(500)).then(() => undefined, (e) => e);
  assertEquals(error?.code, "ERR_MESSAGE_TOO_LARGE");
  const outcome = await Promise.race([
    client.closed.then(() => "closed", (e) => `failed: ${e.message}`),
    new Promise((r) => setTimeout(() => r("open"), 3000)),
  ]);
  client.close();
  await client.closed.catch(() => {});
  handler.close();
  await server.shutdown();
  assertEquals(outcome, "open");
  assertEquals(got.length, 5);
});

Deno.test("long-polling: a client that pauses reading longer than sessionTimeout keeps its session", async () => {
  let serverClosed!: Promise<string>;
  let writes!: Promise<unknown>;
  const handler = realtime({
    path: "/rt",
    sessionTimeout: 300,
    pollTimeout: 100,
    keepAlive: 0,
  }, (c) => {
    serverClosed = c.closed.then(() => "clean", (e) => e.code);
    const w = c.writable.getWriter();
    writes = Promise.allSettled([0, 1, 2].map((i) => w.write("m" + i)));
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const client = await connectRealtime(
    `http://127.0.0.1:${server.addr.port}/rt`,
    { transports: ["long-polling"], maxQueuedBytes: 1 },
  );
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
  handler.close();
  await server.shutdown();
  assertEquals(state, "open");
  assertEquals(got, ["m0", "m1", "m2"]);
});

Deno.test("sse: a message past the SSE parser's default maxEventSize arrives whole", async () => {
  let writes!: Promise<unknown>;
  const handler = realtime({ path: "/rt", keepAlive: 0 }, (c) => {
    writes = c.writable.getWriter().write("z".repeat(1_100_000)).catch(
      () => {},
    );
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const client = await connectRealtime(
    `http://127.0.0.1:${server.addr.port}/rt`,
    { transports: ["sse"] },
  );
  const reader = client.readable.getReader();
  const outcome = await reader.read().then(
    ({ value }) => `got ${(value as string).length}`,
    (e) => `failed: ${e.message}`,
  );
  reader.releaseLock();
  client.close();
  await client.closed.catch(() => {});
  await writes;
  handler.close();
  await server.shutdown();
  assertEquals(outcome, "got 1100000");
});

// A poll answer whose connection breaks in the middle of its body is a lost
// answer, like one that never came: the client polls again with the same
// ack, and the server sends the same messages again.
for (const transport of ["long-polling", "polling"] as const) {
  Deno.test(`${transport}: a poll answer cut off in its body is asked for again; nothing is lost or repeated`, async () => {
    const handler = realtime(
      { transports: [transport], sessionTimeout: 10_000 },
      async (connection) => {
        const writer = connection.writable.getWriter();
        for (let i = 0; i < 20; i++) {
          await writer.write(`m${i}`);
          if (i % 5 === 4) await new Promise((r) => setTimeout(r, 20));
        }
        writer.releaseLock();
      },
    );
    let cut = 0;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) => {
        const response = await handler(request);
        const url = new URL(request.url);
        if (!url.pathname.endsWith("/poll") || response.status !== 200) {
          return response;
        }
        const bytes = new Uint8Array(await response.arrayBuffer());
        // Every other answer with messages in it breaks half way.
        if (bytes.length < 30 || cut++ % 2 === 1) {
          return new Response(bytes, response);
        }
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(bytes.subarray(0, bytes.length >> 1));
            },
            pull(controller) {
              controller.error(new Error("the connection broke"));
            },
          }),
          { status: 200, headers: response.headers },
        );
      },
    );
    const client = await connectRealtime(
      `http://127.0.0.1:${server.addr.port}/rt`,
      { transports: [transport], pollInterval: 10 },
    );
    try {
      const got: unknown[] = [];
      const reader = client.readable.getReader();
      while (got.length < 20) {
        const { value, done } = await reader.read();
        if (done) break;
        got.push(value);
      }
      reader.releaseLock();
      assertEquals(got, Array.from({ length: 20 }, (_, i) => `m${i}`));
      assert(cut >= 2, `only ${cut} answers were cut`);
    } finally {
      client.close();
      await client.closed.catch(() => {});
      handler.close();
      await server.shutdown();
    }
  });
}

// While the server's queue is full it takes nothing, and each attempt sends
// the whole batch again: the client waits longer after each one that took
// nothing (50 ms doubling, at most 1 s), not 50 ms every time.
Deno.test("long-polling: a client whose server takes nothing backs off, then delivers everything once", async () => {
  let readable: ReadableStream<string | Uint8Array> | undefined;
  const handler = realtime(
    { transports: ["long-polling"], maxQueuedBytes: 250 },
    (connection) => {
      readable = connection.readable;
    },
  );
  let sends = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      if (new URL(request.url).pathname.endsWith("/send")) sends++;
      return handler(request);
    },
  );
  const client = await connectRealtime(
    `http://127.0.0.1:${server.addr.port}/rt`,
    { transports: ["long-polling"] },
  );
  try {
    const messages = Array.from({ length: 10 }, (_, i) => `${i}`.repeat(100));
    const writer = client.writable.getWriter();
    for (const m of messages) await writer.write(m);
    writer.releaseLock();
    // The application reads nothing for 3 s: at a fixed 50 ms the client
    // would send about 60 times; backing off, about 8.
    await new Promise((r) => setTimeout(r, 3000));
    assert(sends <= 15, `${sends} sends while the server took nothing`);
    const reader = readable!.getReader();
    const received: unknown[] = [];
    while (received.length < messages.length) {
      received.push((await reader.read()).value);
    }
    reader.releaseLock();
    assertEquals(received, messages);
  } finally {
    client.close();
    await client.closed.catch(() => {});
    handler.close();
    await server.shutdown();
  }
});

// close() delivers what was written before it, but a server whose
// application reads nothing takes nothing: closeTimeout bounds the wait,
// the session still ends on the server, and `closed` says what was lost.
Deno.test("long-polling: close() with messages the server never takes ends after closeTimeout", async () => {
  let serverSide: RealtimeConnection | undefined;
  const handler = realtime(
    { transports: ["long-polling"], maxQueuedBytes: 250 },
    (connection) => {
      serverSide = connection;
    },
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const client = await connectRealtime(
    `http://127.0.0.1:${server.addr.port}/rt`,
    { transports: ["long-polling"], closeTimeout: 300 },
  );
  try {
    const writer = client.writable.getWriter();
    for (let i = 0; i < 10; i++) await writer.write(`${i}`.repeat(100));
    writer.releaseLock();
    client.close({ closeCode: 1000 });
    const outcome = await settleWithin(client.closed, 10_000);
    assert(outcome instanceof WebSocketError, String(outcome));
    assertEquals(outcome.code, "ERR_CLOSE_TIMEOUT");
    // The server heard the close: its side of the session ends.
    const info = await serverSide!.closed.catch((error) => error);
    assertEquals(info.closeCode, 1000);
  } finally {
    handler.close();
    await server.shutdown();
  }
});

// close() is a handshake, as a WebSocket's (RFC 6455 §1.4, §7.1.2): what
// the server's application wrote before it learned of the close still
// arrives, in order and once, then `readable` ends and `closed` resolves
// with the client's own code. The first message fills the client's
// readable (maxQueuedBytes: 8), so its downstream stops: the rest still
// waits on the server (or in the stream) when close() comes.
for (const transport of ["long-polling", "polling", "sse", "iframe"] as const) {
  Deno.test(`${transport}: close() still delivers what the server wrote before it`, async () => {
    const rest = Array.from({ length: 20 }, (_, i) => `down ${i}`);
    const connections: RealtimeConnection[] = [];
    const handler = realtime({ keepAlive: 0 }, (c) => connections.push(c));
    const { watched, seen } = watch(handler, "first...");
    const http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      watched,
    );
    try {
      const client = await connectRealtime(
        `http://127.0.0.1:${http.addr.port}/rt`,
        { transports: [transport], pollInterval: 20, maxQueuedBytes: 8 },
      );
      const server = connections[0]!;
      const writer = server.writable.getWriter();
      await writer.write("first...");
      await seen;
      for (const message of rest) await writer.write(message);
      client.close({ closeCode: 4000, reason: "bye" });
      // Nothing read until the close is over: it must not need a reader.
      assertEquals(await client.closed, { closeCode: 4000, reason: "bye" });
      const got: unknown[] = [];
      for await (const message of client.readable) got.push(message);
      assertEquals(got, ["first...", ...rest]);
      assertEquals(await server.closed, { closeCode: 4000, reason: "bye" });
      // The server's writable is closed: a write now fails.
      await assertRejects(() => writer.write("late"));
    } finally {
      handler.close();
      await http.shutdown();
    }
  });
}

// The close is bounded: a server (here a proxy) that never answers the
// client's close ends the client after closeTimeout, with ERR_CLOSE_TIMEOUT.
for (const transport of ["long-polling", "sse"] as const) {
  Deno.test(`${transport}: a close the server never answers ends after closeTimeout`, async () => {
    const handler = realtime({ keepAlive: 0 }, () => {});
    const { promise: release, resolve } = Promise.withResolvers<void>();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) => {
        if (new URL(request.url).pathname.endsWith("/close")) {
          await request.body?.cancel();
          await release;
          return new Response(null, { status: 502 });
        }
        return handler(request);
      },
    );
    try {
      const client = await connectRealtime(
        `http://127.0.0.1:${server.addr.port}/rt`,
        { transports: [transport], closeTimeout: 300 },
      );
      client.close({ closeCode: 1000 });
      const outcome = await settleWithin(client.closed, 20_000);
      assert(outcome instanceof WebSocketError, String(outcome));
      assertEquals(outcome.code, "ERR_CLOSE_TIMEOUT");
    } finally {
      resolve();
      handler.close();
      await server.shutdown();
    }
  });
}

// The server's side of the handshake: a client that said it reads on
// (`w: 1`) but takes nothing leaves the session to closeTimeout; an older
// client (no `w`) is gone, and its close ends the session at once.
Deno.test("a client's close with w: 1 waits for the downstream, bounded by closeTimeout; without w it ends at once", async () => {
  const close = (
    handler: (r: Request) => Promise<Response>,
    sid: string,
    body: unknown,
  ) =>
    handler(
      new Request(`http://x/rt/close?sid=${sid}`, {
        method: "POST",
        body: JSON.stringify(body),
      }),
    );
  {
    const { handler, conn, sid } = await openHandlerSession({
      closeTimeout: 200,
    });
    const w = conn.writable.getWriter();
    await w.write("a");
    assertEquals(
      (await close(handler, sid, { c: 1000, r: "", w: 1 })).status,
      204,
    );
    await assertRejects(() => w.write("late"));
    const error = await assertRejects(() => conn.closed, WebSocketError);
    assertEquals(error.code, "ERR_CLOSE_TIMEOUT");
    handler.close();
  }
  {
    const { handler, conn, sid } = await openHandlerSession({
      closeTimeout: 60_000,
    });
    await close(handler, sid, { c: 4001, r: "old" });
    assertEquals(await conn.closed, { closeCode: 4001, reason: "old" });
    handler.close();
  }
});

// A client whose downstream is gone (a page unloading, a proxy cutting the
// stream) and that is owed nothing: its close needs no answer but the one a
// later downstream would get from the ended session. The session ends
// cleanly at once, not with ERR_CLOSE_TIMEOUT after closeTimeout.
Deno.test("sse: a client close with nothing owed and no downstream ends the session cleanly at once", async () => {
  let conn: RealtimeConnection | undefined;
  const handler = realtime(
    { transports: ["sse"], closeTimeout: 10_000, keepAlive: 0 },
    (c) => conn = c,
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const base = `http://127.0.0.1:${server.addr.port}/rt`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const opened = await fetch(`${base}/session?transport=sse`, {
      method: "POST",
    });
    const { sid } = await opened.json();
    const sse = await fetch(`${base}/sse?sid=${sid}`);
    const reader = sse.body!.getReader();
    await reader.read();
    await reader.cancel(); // the browser closed its EventSource
    const close = await fetch(`${base}/close?sid=${sid}`, {
      method: "POST",
      body: JSON.stringify({ c: 1000, r: "", w: 1 }),
    });
    await close.body?.cancel();
    const outcome = await Promise.race([
      conn!.closed.then((info) => info, (error) => error),
      new Promise((r) => timer = setTimeout(() => r("still open"), 5000)),
    ]);
    assertEquals(outcome, { closeCode: 1000, reason: "" });
  } finally {
    clearTimeout(timer);
    handler.close();
    await server.shutdown();
  }
});

// The client answers the server's close with its own (`POST close`), as a
// WebSocket echoes a close frame. `closed` resolves once that answer is
// through: resolved before, it let a caller end (a test, a process) with the
// request still in flight, and the server wait out its closeTimeout.
for (const transport of ["sse", "long-polling", "polling", "iframe"] as const) {
  Deno.test(`${transport}: closed resolves after the client's answer to the server's close is through`, async () => {
    const handler = realtime({ transports: [transport] }, (connection) => {
      connection.close({ closeCode: 4001, reason: "bye" });
    });
    let answers = 0;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => {
        if (new URL(request.url).pathname.endsWith("/close")) answers++;
        return handler(request);
      },
    );
    try {
      const client = await connectRealtime(
        `http://127.0.0.1:${server.addr.port}/rt`,
        { transports: [transport], pollInterval: 20 },
      );
      assertEquals(await settleWithin(client.closed), "resolved");
      assertEquals(answers, 1);
    } finally {
      handler.close();
      await server.shutdown();
    }
  });
}
