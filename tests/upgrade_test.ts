// upgradeWebSocket over Deno.serve, and the WebSocketStream facade, on
// 127.0.0.1 against our client, Deno's native client and a raw TCP peer.

import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  connect,
  serve,
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  type WebSocketConnection,
  WebSocketError,
  WebSocketHandshakeError,
  WebSocketStream,
} from "../mod.ts";
import type { UpgradedWebSocket } from "../lib/net/upgrade.ts";
import { assertWsError, prng, randomBytes } from "./_helpers.ts";

const te = new TextEncoder();

/** Deno.serve with upgradeWebSocket; `handler` gets each connection. */
function nativeServe(
  handler: (connection: UpgradedWebSocket) => void,
  options: UpgradeWebSocketOptions = {},
) {
  return Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { response, connection } = upgradeWebSocket(request, options);
      handler(connection as UpgradedWebSocket);
      return response;
    },
  );
}

function echo(connection: UpgradedWebSocket): void {
  connection.readable.pipeTo(connection.writable).catch(() => {});
}

Deno.test("upgradeWebSocket echoes text and binary to our client", async (t) => {
  const server = nativeServe(echo);
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
    fragmentSize: 4096,
  });
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  const random = prng(11);
  for (const size of [0, 1, 125, 126, 65536, 1 << 20, 4 << 20]) {
    await t.step(`${size} bytes`, async () => {
      const bytes = randomBytes(random, size);
      await writer.write(bytes);
      assertEquals((await reader.read()).value, bytes);
      const text = "ü€x".repeat(size / 6 | 0);
      await writer.write(text);
      assertEquals((await reader.read()).value, text);
    });
  }
  reader.releaseLock();
  writer.releaseLock();
  client.close({ closeCode: 4005, reason: "bye" });
  assertEquals(await client.closed, { closeCode: 4005, reason: "bye" });
  await server.shutdown();
});

Deno.test("upgradeWebSocket: opened, protocol, and closed in both orders", async (t) => {
  await t.step("the server closes with a code and reason", async () => {
    const serverSide = Promise.withResolvers<UpgradedWebSocket>();
    const server = nativeServe((c) => serverSide.resolve(c), {
      protocol: "v2",
    });
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
      protocols: ["v1", "v2"],
    });
    assertEquals(client.protocol, "v2");
    const connection = await serverSide.promise;
    const { protocol, extensions } = await connection.opened;
    assertEquals({ protocol, extensions }, { protocol: "v2", extensions: "" });
    assertEquals(connection.protocol, "v2");
    connection.close({ closeCode: 4100, reason: "server done" });
    assertEquals(await client.closed, {
      closeCode: 4100,
      reason: "server done",
    });
    assertEquals(await connection.closed, {
      closeCode: 4100,
      reason: "server done",
    });
    await server.shutdown();
  });

  await t.step("the client closes; the server's readable ends", async () => {
    const serverSide = Promise.withResolvers<UpgradedWebSocket>();
    const server = nativeServe((c) => serverSide.resolve(c));
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    const connection = await serverSide.promise;
    const received = Array.fromAsync(connection.readable);
    const writer = client.writable.getWriter();
    await writer.write("a");
    await writer.write(new Uint8Array([1]));
    writer.releaseLock();
    client.close({ closeCode: 1000, reason: "ok" });
    assertEquals(await received, ["a", new Uint8Array([1])]);
    assertEquals(await connection.closed, { closeCode: 1000, reason: "ok" });
    await client.closed;
    await server.shutdown();
  });

  await t.step("close() before the socket opens waits for it", async () => {
    const server = nativeServe((c) => c.close({ closeCode: 4200 }));
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    assertEquals(await client.closed, { closeCode: 4200, reason: "" });
    await server.shutdown();
  });

  await t.step(
    "messages written before the socket opens are sent after",
    async () => {
      const server = nativeServe((c) => {
        // The handler runs before Deno has sent the 101: still CONNECTING.
        const writer = c.writable.getWriter();
        writer.write("first").catch(() => {});
        writer.write(new Uint8Array([1, 2, 3])).catch(() => {});
        writer.releaseLock();
      });
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      const reader = client.readable.getReader();
      assertEquals((await reader.read()).value, "first");
      assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
      reader.releaseLock();
      client.close();
      await client.closed;
      await server.shutdown();
    },
  );

  await t.step(
    "readable.cancel(WebSocketError) closes with its code",
    async () => {
      const server = nativeServe((c) => {
        c.readable.cancel(
          new WebSocketError("Cannot talk: policy", {
            code: "ERR_HANDSHAKE",
            closeCode: 4403,
          }),
        );
      });
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      assertEquals(await client.closed, { closeCode: 4403, reason: "policy" });
      await server.shutdown();
    },
  );
});

Deno.test("upgradeWebSocket against Deno's native client", async () => {
  const server = nativeServe(echo);
  const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  socket.binaryType = "arraybuffer";
  const replies: unknown[] = [];
  const got = Promise.withResolvers<void>();
  socket.onmessage = (event) => {
    replies.push(
      typeof event.data === "string" ? event.data : new Uint8Array(event.data),
    );
    if (replies.length === 2) got.resolve();
  };
  await new Promise((resolve) => socket.onopen = resolve);
  socket.send("native");
  socket.send(new Uint8Array([9, 8, 7]));
  await got.promise;
  assertEquals(replies, ["native", new Uint8Array([9, 8, 7])]);
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  socket.close(4001, "x");
  assertEquals((await closed).code, 4001);
  await server.shutdown();
});

Deno.test("upgradeWebSocket fails a reader that falls behind with 1008", async () => {
  const serverSide = Promise.withResolvers<UpgradedWebSocket>();
  // The handler never reads.
  const server = nativeServe((c) => serverSide.resolve(c), {
    maxQueuedBytes: 64 * 1024,
  });
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  const chunk = new Uint8Array(10 * 1024);
  // 6 messages fit under 64 KiB; the 7th does not. Nothing follows it:
  // Deno drops TCP when data arrives after its close frame.
  for (let i = 0; i < 7; i++) await writer.write(chunk);
  writer.releaseLock();
  const connection = await serverSide.promise;
  const error = await connection.closed.then(() => undefined, (e) => e);
  assertWsError(error, "ERR_INBOUND_QUEUE_FULL", 1008);
  const info = await client.closed;
  assertEquals(info.closeCode, 1008);
  await server.shutdown();
});

Deno.test("upgradeWebSocket fails an over-large message with 1009", async () => {
  const serverSide = Promise.withResolvers<UpgradedWebSocket>();
  const server = nativeServe((c) => {
    serverSide.resolve(c);
    c.readable.pipeTo(new WritableStream()).catch(() => {});
  }, { maxMessageSize: 1000 });
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  await writer.write(new Uint8Array(1000));
  await writer.write(new Uint8Array(1001));
  writer.releaseLock();
  const error = await (await serverSide.promise).closed.then(
    () => undefined,
    (e) => e,
  );
  assertWsError(error, "ERR_MESSAGE_TOO_LARGE", 1009);
  assertEquals((await client.closed).closeCode, 1009);
  await server.shutdown();
});

Deno.test("upgradeWebSocket: writes wait while a peer does not read", async () => {
  const highWaterMark = 256 * 1024;
  const result = Promise.withResolvers<[number, number]>();
  const server = nativeServe((connection) => {
    const writer = connection.writable.getWriter();
    const message = new Uint8Array(256 * 1024);
    let accepted = 0;
    (async () => {
      for (let i = 0; i < 256; i++) {
        await writer.write(message);
        accepted++;
      }
    })().catch(() => {});
    setTimeout(() => {
      result.resolve([accepted, connection.bufferedAmount]);
      connection.close({ closeCode: 1000 });
    }, 400);
  }, { writableHighWaterMark: highWaterMark, sendTimeout: 5000 });
  // A raw client: it handshakes, then reads nothing until told.
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(te.encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  const [accepted, buffered] = await result.promise;
  // 64 MiB offered; kernel buffers take a few MiB, then the writes wait.
  assert(accepted < 64, `${accepted} of 256 writes went through`);
  assert(
    buffered <= highWaterMark + 256 * 1024 + 64,
    `bufferedAmount ${buffered}`,
  );
  conn.close();
  await server.shutdown();
});

Deno.test("upgradeWebSocket refuses a request that is not an upgrade", () => {
  const error = assertThrows(
    () => upgradeWebSocket(new Request("http://localhost/")),
    WebSocketHandshakeError,
    "Cannot upgrade",
  ) as WebSocketHandshakeError;
  assertEquals([error.code, error.status], ["ERR_UPGRADE_REQUIRED", 426]);
  const request = new Request("http://localhost/", {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  assertThrows(
    () => upgradeWebSocket(request, { maxQueuedBytes: -1 }),
    RangeError,
    "maxQueuedBytes",
  );
});

Deno.test("WebSocketStream: opened, closed, and close() while connecting", async (t) => {
  await t.step("a refused handshake rejects opened and closed", async () => {
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      () => new Response("no", { status: 403 }),
    );
    const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`);
    assertWsError(await wss.opened.catch((e) => e), "ERR_HANDSHAKE", 1006);
    assertWsError(await wss.closed.catch((e) => e), "ERR_HANDSHAKE", 1006);
    await server.shutdown();
  });

  await t.step("close() while connecting abandons the attempt", async () => {
    // A server that never answers the handshake.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const wss = new WebSocketStream(
      `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
    );
    const conn = await accepted;
    wss.close();
    assertWsError(await wss.opened.catch((e) => e), "ERR_ABORTED", 1006);
    conn.close();
    listener.close();
  });

  await t.step("subprotocol and a server-sent close", async () => {
    const server = serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      onUpgrade: (_request, info) => ({ protocol: info.protocols[0] }),
    }, (connection) => connection.close({ closeCode: 4000, reason: "r" }));
    const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`, {
      protocols: ["chat"],
    });
    assertEquals((await wss.opened).protocol, "chat");
    assertEquals(await wss.closed, { closeCode: 4000, reason: "r" });
    await server.shutdown();
  });
});

Deno.test("under Deno.serve, a plain GET and a malformed upgrade get answers that say why, not a 500", async () => {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      try {
        const { response, connection } = upgradeWebSocket(request);
        connection.close();
        return response;
      } catch (error) {
        if (error instanceof WebSocketHandshakeError) return error.toResponse();
        throw error;
      }
    },
  );
  const base = `http://127.0.0.1:${server.addr.port}/`;

  const plain = await fetch(base);
  assertEquals(plain.status, 426);
  assertEquals(plain.headers.get("upgrade"), "websocket");
  assertEquals(plain.headers.get("sec-websocket-version"), "13");
  const body = await plain.text();
  assert(
    body.startsWith("Cannot upgrade: the request is not a WebSocket upgrade"),
    body,
  );

  // Upgrade: websocket, but version 8: Deno refuses it, and the answer
  // names the version to use (RFC 6455 §4.4).
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(te.encode(
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
  ));
  const buffer = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    head += new TextDecoder().decode(buffer.subarray(0, n));
  }
  conn.close();
  assert(head.startsWith("HTTP/1.1 426"), head);
  assert(/sec-websocket-version: 13/i.test(head), head);
  await server.shutdown();
});

// A peer that stops reading: sendTimeout fails the connection, and Deno's
// close handshake then cannot finish (the peer reads nothing, and with
// idleTimeout 0 Deno never gives up). closeTimeout bounds the wait:
// `closed` rejects with the failure instead of waiting for Deno's `close`.
Deno.test("upgradeWebSocket: after sendTimeout on a peer that stopped reading, closed rejects within closeTimeout", async () => {
  let connection!: WebSocketConnection;
  const got = Promise.withResolvers<void>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const r = upgradeWebSocket(request, {
        idleTimeout: 0,
        sendTimeout: 300,
        closeTimeout: 300,
      });
      connection = r.connection;
      got.resolve();
      return r.response;
    },
  );
  // A raw client: the handshake, then it never reads again.
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  await got.promise;
  await connection.opened;
  const writer = connection.writable.getWriter();
  const big = new Uint8Array(1 << 20);
  let failure: unknown;
  try {
    for (let i = 0; i < 1000; i++) await writer.write(big);
  } catch (error) {
    failure = error;
  }
  assertWsError(failure, "ERR_ABNORMAL_CLOSURE");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    connection.closed.then(() => "resolved", (error) => error),
    // Generous: closeTimeout is 300 ms; without it, never.
    new Promise((r) =>
      timer = setTimeout(() => r("pending after 20 s"), 20_000)
    ),
  ]);
  clearTimeout(timer);
  assertEquals(outcome, failure);
  conn.close();
  await server.shutdown();
});

// The interface's promise (websocket_connection.ts): a clean close does not
// error the writable, so the echo pattern `readable.pipeTo(writable)`
// resolves when the peer closes cleanly, as it does under serve(); a write
// after the close is refused with a TypeError.
Deno.test("upgradeWebSocket: readable.pipeTo(writable) resolves on a clean close, and a later write is refused", async () => {
  const piped = Promise.withResolvers<unknown>();
  let connection!: WebSocketConnection;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const r = upgradeWebSocket(request);
      connection = r.connection;
      connection.readable.pipeTo(connection.writable).then(
        () => "resolved",
        (error) => error,
      ).then(piped.resolve);
      return r.response;
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  await writer.write("echo");
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "echo");
  reader.releaseLock();
  client.close({ closeCode: 1000, reason: "done" });
  assertEquals(await client.closed, { closeCode: 1000, reason: "done" });
  assertEquals(await piped.promise, "resolved");
  assertEquals(await connection.closed, { closeCode: 1000, reason: "done" });
  const late = await connection.writable.getWriter().write("late").then(
    () => undefined,
    (error) => error,
  );
  assert(late instanceof TypeError, String(late));
  await server.shutdown();
});
