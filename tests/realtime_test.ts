// realtime() and connectRealtime() over real HTTP on loopback: the same
// full-duplex contract (ordered, exactly once, text and binary, both closes)
// for every transport, and the iframe escaping as a page's parser sees it.

import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  connectRealtime,
  encodeIframeChunk,
  realtime,
  type RealtimeConnection,
  type RealtimeConnectionInfo,
  type RealtimeTransport,
} from "../lib/realtime/mod.ts";
import { WebSocketError } from "../lib/errors.ts";

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

Deno.test("iframe: a session that idles past sessionTimeout fails", async () => {
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
