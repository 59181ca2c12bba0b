// Connections over real sockets on 127.0.0.1, against Deno's native
// WebSocket (client and server) and raw TCP peers that misbehave.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  connect,
  serve,
  type ServeOptions,
  type WebSocketConnection,
  type WebSocketServer,
} from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import {
  assertWsError,
  concat,
  hex,
  prng,
  randomBytes,
  rawExchange,
  rawFrame,
  rawServer,
  upgradeRequest,
  writeAllThenRead,
} from "./_helpers.ts";

const te = new TextEncoder();
const td = new TextDecoder();

function echoServer(options: Partial<ServeOptions> = {}): WebSocketServer {
  return serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
}

function nativeClient(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(socket);
    socket.onerror = (e) => reject(e);
  });
}

function nextMessage(socket: WebSocket): Promise<string | Uint8Array> {
  return new Promise((resolve) => {
    socket.addEventListener("message", (event) => {
      resolve(
        typeof event.data === "string"
          ? event.data
          : new Uint8Array(event.data),
      );
    }, { once: true });
  });
}

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

Deno.test("Deno's native client against our serve()", async (t) => {
  const server = echoServer();
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const socket = await nativeClient(url);
  const random = prng(3);
  for (const size of SIZES) {
    await t.step(`binary echo, ${size} bytes`, async () => {
      const data = randomBytes(random, Math.min(size, 4096));
      const payload = new Uint8Array(size);
      for (let i = 0; i < size; i += data.length) {
        payload.set(data.subarray(0, size - i), i);
      }
      const reply = nextMessage(socket);
      socket.send(payload);
      assertEquals(await reply, payload);
    });
    await t.step(`text echo, ${size} bytes`, async () => {
      const text = "€ab".repeat(Math.ceil(size / 5)).slice(
        0,
        Math.ceil(size / 2),
      );
      const reply = nextMessage(socket);
      socket.send(text);
      assertEquals(await reply, text);
    });
  }
  await t.step("a close code and reason reach our server", async () => {
    const closedEvent = new Promise<CloseEvent>((resolve) =>
      socket.onclose = resolve
    );
    socket.close(4001, "client done");
    const event = await closedEvent;
    assertEquals([event.code, event.reason, event.wasClean], [
      4001,
      "client done",
      true,
    ]);
  });
  await server.shutdown();
});

Deno.test("our connect() against Deno.serve + Deno.upgradeWebSocket", async (t) => {
  const serverClosed = Promise.withResolvers<[number, string]>();
  const native = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol: request.headers.get("sec-websocket-protocol")?.split(",")[1]
          ?.trim(),
      });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        if (event.data === "close please") socket.close(4002, "server done");
        else socket.send(event.data);
      };
      socket.onclose = (event) =>
        serverClosed.resolve([event.code, event.reason]);
      return response;
    },
  );
  const client = await connect(
    `ws://127.0.0.1:${native.addr.port}/chat?room=1`,
    {
      protocols: ["v1", "v2"],
      fragmentSize: 1000,
    },
  );
  assertEquals(client.protocol, "v2");
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  for (const size of SIZES) {
    await t.step(`fragmented binary and text echo, ${size} bytes`, async () => {
      const payload = new Uint8Array(size).map((_, i) => i % 251);
      await writer.write(payload);
      assertEquals((await reader.read()).value, payload);
      const text = "x".repeat(size);
      await writer.write(text);
      assertEquals((await reader.read()).value, text);
    });
  }
  await t.step("ping() resolves with a round-trip time", async () => {
    const rtt = await client.ping(te.encode("hello"));
    assert(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
  });
  await t.step("the server's close code and reason reach closed", async () => {
    await writer.write("close please");
    assertEquals(await reader.read(), { done: true, value: undefined });
    assertEquals(await client.closed, {
      closeCode: 4002,
      reason: "server done",
    });
    assertEquals(await serverClosed.promise, [4002, "server done"]);
  });
  reader.releaseLock();
  writer.releaseLock();
  await native.shutdown();
});

Deno.test("our client and server: close handshakes in each order", async (t) => {
  await t.step("client closes first", async () => {
    const serverSide = Promise.withResolvers<WebSocketConnection>();
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (c) => {
        serverSide.resolve(c);
      },
    );
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    const peer = await serverSide.promise;
    client.close({ closeCode: 3000, reason: "first" });
    assertEquals(await peer.closed, { closeCode: 3000, reason: "first" });
    assertEquals(await client.closed, { closeCode: 3000, reason: "first" });
    await server.shutdown();
  });
  await t.step("connections counts the live ones", async () => {
    const server = echoServer();
    assertEquals(server.connections, 0);
    const a = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    const b = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    // The server side may still be finishing its handshake.
    for (let i = 0; i < 100 && server.connections < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assertEquals(server.connections, 2);
    a.close();
    await a.closed;
    // The server ends TCP once its side is done, before a's closed settles.
    assertEquals(server.connections, 1);
    await server.shutdown();
    assertEquals((await b.closed).closeCode, 1001);
    assertEquals(server.connections, 0);
  });
  await t.step("server shutdown closes clients with 1001", async () => {
    const server = echoServer();
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
    await server.shutdown();
    assertEquals((await client.closed).closeCode, 1001);
  });
});

/** A raw TCP client: sends bytes, returns everything the server sent. */

Deno.test("handshake negatives get the right status and a closed socket", async (t) => {
  const server = echoServer({ maxHeaderSize: 1024, handshakeTimeout: 300 });
  const port = server.addr.port;
  const cases: [string, Uint8Array, string][] = [
    ["no key", upgradeRequest({ "Sec-WebSocket-Key": undefined }), "400"],
    [
      "a key of 15 bytes",
      upgradeRequest({ "Sec-WebSocket-Key": btoa("x".repeat(15)) }),
      "400",
    ],
    ["version 8", upgradeRequest({ "Sec-WebSocket-Version": "8" }), "426"],
    ["POST", upgradeRequest({}, "POST"), "400"],
    ["no Host", upgradeRequest({ Host: undefined }), "400"],
    [
      "Connection without upgrade",
      upgradeRequest({ Connection: "keep-alive" }),
      "400",
    ],
    ["a plain GET", te.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "426"],
    [
      "HTTP/1.0",
      te.encode(td.decode(upgradeRequest()).replace("HTTP/1.1", "HTTP/1.0")),
      "400",
    ],
    ["a 2 KiB header", upgradeRequest({ "X-Big": "y".repeat(2048) }), "431"],
  ];
  for (const [name, request, status] of cases) {
    await t.step(name, async () => {
      const answer = td.decode(await rawExchange(port, request));
      assert(answer.startsWith(`HTTP/1.1 ${status} `), answer);
      if (status === "426" && name === "version 8") {
        assertStringIncludes(answer.toLowerCase(), "sec-websocket-version: 13");
      }
    });
  }
  await t.step(
    "a slow handshake is cut off after handshakeTimeout",
    async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(te.encode("GET / HTTP/1.1\r\nHost: x\r\n"));
      const start = performance.now();
      const n = await conn.read(new Uint8Array(100)).catch(() => null);
      assertEquals(n, null);
      assert(performance.now() - start < 5000);
      conn.close();
    },
  );
  await server.shutdown();
});

Deno.test("a protocol violation is answered with its close code, then TCP ends", async () => {
  const server = echoServer();
  const port = server.addr.port;
  // An unmasked frame from a client: RFC 6455 §5.1 says fail with 1002.
  const answer = await rawExchange(
    port,
    concat(upgradeRequest(), rawFrame(0x81, te.encode("hi"))),
  );
  const text = td.decode(answer);
  const frameStart = text.indexOf("\r\n\r\n") + 4;
  const frame = answer.subarray(frameStart);
  assertEquals(frame[0], 0x88);
  assertEquals((frame[2]! << 8) | frame[3]!, 1002);
  await server.shutdown();
});

Deno.test("invalid UTF-8 in the first TCP read of a frame fails with 1007 before the rest", async () => {
  const failure = Promise.withResolvers<unknown>();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (c) => {
      c.closed.catch((e) => failure.resolve(e));
      c.readable.pipeTo(new WritableStream()).catch(() => {});
    },
  );
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(upgradeRequest());
  // A text frame that declares 100 KiB; only 10 bytes follow, the last bad.
  const key = new Uint8Array([1, 2, 3, 4]);
  const frame = rawFrame(
    0x81,
    concat(
      te.encode("abcdefghi"),
      new Uint8Array([0xff]),
      new Uint8Array(100 * 1024 - 10),
    ),
    key,
  );
  await conn.write(frame.subarray(0, 14 + 10));
  // The peer reads the close frame (after the 101 head), not the rest of
  // the frame: fail, not hang, when the check waits for the rest of it.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = (async () => {
    let bytes: Uint8Array = new Uint8Array(0);
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return bytes;
      bytes = concat(bytes, buffer.subarray(0, n));
      const at = td.decode(bytes).indexOf("\r\n\r\n") + 4;
      if (at >= 4 && bytes.length >= at + 4) return bytes.subarray(at);
    }
  })();
  const frameBack = await Promise.race([
    read,
    new Promise<Uint8Array>((resolve) => {
      timer = setTimeout(() => resolve(new Uint8Array(0)), 5000);
    }),
  ]);
  clearTimeout(timer);
  conn.close();
  assertEquals(frameBack[0], 0x88, "a close frame within 5 s");
  assertEquals((frameBack[2]! << 8) | frameBack[3]!, 1007);
  assertWsError(await failure.promise, "ERR_INVALID_UTF8", 1007);
  await server.shutdown();
});

Deno.test("an abrupt TCP end rejects closed with 1006", async () => {
  const serverSide = Promise.withResolvers<WebSocketConnection>();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (c) => serverSide.resolve(c),
  );
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(upgradeRequest());
  const peer = await serverSide.promise;
  conn.close();
  const error = await peer.closed.then(() => undefined, (e) => e);
  assertWsError(error, "ERR_ABNORMAL_CLOSURE", 1006);
  await server.shutdown();
});

Deno.test("a rejected closed that nobody observes is not an unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    unhandled.push(event.reason);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    const ended = Promise.withResolvers<void>();
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      // Neither closed nor the readable is touched; only the end is seen.
      () => {},
    );
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    await conn.write(upgradeRequest());
    await conn.read(new Uint8Array(1024));
    conn.close();
    // Long enough for the server to see the end and for rejections to be
    // reported (they are, after a macrotask).
    const poll = setInterval(() => {
      if (server.connections === 0) ended.resolve();
    }, 10);
    await ended.promise;
    clearInterval(poll);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await server.shutdown();
    assertEquals(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
});

/** A raw server that completes the handshake, then runs `then`. */

Deno.test("heartbeat fails a peer that never answers pings", async () => {
  const release = Promise.withResolvers<void>();
  const peer = rawServer(async (conn) => {
    await release.promise;
    conn.close();
  });
  const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
    heartbeat: { interval: 20, timeout: 50 },
  });
  const error = await client.closed.then(() => undefined, (e) => e);
  assertWsError(error, "ERR_HEARTBEAT_TIMEOUT", 1006);
  release.resolve();
  await peer.done;
});

Deno.test("close times out on a peer that never answers the close", async () => {
  const release = Promise.withResolvers<void>();
  const peer = rawServer(async (conn) => {
    await release.promise;
    conn.close();
  });
  const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
    closeTimeout: 100,
  });
  client.close({ closeCode: 1000 });
  const error = await client.closed.then(() => undefined, (e) => e);
  assertWsError(error, "ERR_CLOSE_TIMEOUT", 1006);
  release.resolve();
  await peer.done;
});

Deno.test("inbound backpressure: a flood into a reader that does not read stays bounded", async () => {
  const serverSide = Promise.withResolvers<WebSocketConnection>();
  const highWaterMark = 256 * 1024;
  const server = serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      readableHighWaterMark: highWaterMark,
    },
    (c) => serverSide.resolve(c),
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
    writableHighWaterMark: 1 << 20,
    // Zeros would deflate to nothing; this test counts wire bytes.
    perMessageDeflate: false,
  });
  const peer = await serverSide.promise;
  const writer = client.writable.getWriter();
  const message = new Uint8Array(64 * 1024);
  let accepted = 0;
  // Offer 64 MiB; the writes stall once our bounds and the kernel's fill.
  const flood = (async () => {
    for (let i = 0; i < 1024; i++) {
      await writer.write(message);
      accepted++;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const pulled = (peer as TransportWebSocket).bytesReceived;
  // What the server took from TCP: its high-water mark, one 64 KiB read and
  // one message being assembled, with one message of slack.
  const bound = highWaterMark + 64 * 1024 + 2 * (message.length + 14);
  assert(pulled <= bound, `pulled ${pulled} bytes, bound ${bound}`);
  assert(accepted < 1024, "the sender was held back");
  assert(
    client.bufferedAmount <= (1 << 20) + message.length + 14,
    `buffered ${client.bufferedAmount}`,
  );
  // Now read everything; the flood completes.
  const drained = peer.readable.pipeTo(new WritableStream()).catch(() => {});
  await flood;
  writer.releaseLock();
  client.close();
  await client.closed;
  await drained;
  await server.shutdown();
});

Deno.test("frames written in one turn share socket writes", async () => {
  const peer = rawServer(async (conn) => {
    const buffer = new Uint8Array(65536);
    let total = 0;
    let reads = 0;
    while (total < 100 * 7) {
      total += (await conn.read(buffer))!;
      reads++;
    }
    assert(reads < 50, `100 frames took ${reads} reads`);
    conn.close();
  });
  const client = await connect(`ws://127.0.0.1:${peer.port}/`);
  const writer = client.writable.getWriter();
  const writes = [];
  for (let i = 0; i < 100; i++) writes.push(writer.write(new Uint8Array(1)));
  await Promise.all(writes);
  await peer.done;
  await client.closed.catch(() => {});
});

Deno.test("outbound backpressure: writes wait on a peer that does not read", async () => {
  const release = Promise.withResolvers<void>();
  let peerRead = 0;
  const peer = rawServer(async (conn) => {
    await release.promise;
    // Now drain all 64 MiB, then end TCP.
    const buffer = new Uint8Array(1 << 16);
    while (peerRead < 512 * (128 * 1024 + 14)) {
      const n = await conn.read(buffer);
      if (n === null) break;
      peerRead += n;
    }
    conn.close();
  });
  const highWaterMark = 256 * 1024;
  const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
    writableHighWaterMark: highWaterMark,
  });
  const writer = client.writable.getWriter();
  const message = new Uint8Array(128 * 1024);
  let accepted = 0;
  const total = 512; // 64 MiB: far more than the kernel's buffers
  const sending = (async () => {
    for (let i = 0; i < total; i++) {
      await writer.write(message);
      accepted++;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 400));
  const stalledAt = accepted;
  assert(stalledAt < total / 4, `${stalledAt} of ${total} writes resolved`);
  assert(
    client.bufferedAmount <= highWaterMark + message.length + 14,
    `bufferedAmount ${client.bufferedAmount}`,
  );
  // No progress while the peer still reads nothing.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assertEquals(accepted, stalledAt);
  release.resolve();
  await sending;
  assertEquals(accepted, total);
  writer.releaseLock();
  client.close();
  await client.closed.catch(() => {});
  await peer.done;
  // Every frame arrived (the close frame may follow in the same read).
  assert(peerRead >= total * (message.length + 14), `peer read ${peerRead}`);
});

Deno.test("seeded: large messages on concurrent connections keep every byte through the shared buffers", async () => {
  // Text is assembled, and large text and masked payloads are encoded, in
  // scratch buffers shared by all connections; a buffer reused too early
  // would corrupt another connection's message. Sizes straddle the block
  // (64 KiB) and scratch thresholds, and some text is not ASCII.
  const server = echoServer({ perMessageDeflate: false });
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const words = ["plain ", "é", "日本語", "🎉", "x".repeat(300)];
  const run = async (seed: number) => {
    const random = prng(seed);
    // Odd seeds send in 300 KB frames: the server then reads the rest of
    // each large continuation frame straight into the message's buffer.
    const client = await connect(url, {
      perMessageDeflate: false,
      fragmentSize: seed % 2 ? 300_000 : undefined,
    });
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const sent: (string | Uint8Array)[] = [];
    for (let i = 0; i < 24; i++) {
      const size = [10, 20_000, 70_000, 300_000, 1_200_000][
        Math.floor(random() * 5)
      ]!;
      if (random() < 0.5) {
        const parts: string[] = [];
        for (let n = 0; n < size;) {
          const word = words[Math.floor(random() * words.length)]!;
          parts.push(word);
          n += word.length;
        }
        sent.push(parts.join(""));
      } else {
        sent.push(randomBytes(random, size));
      }
    }
    // All written before any is read: the frames wait in the outbox and in
    // the socket together.
    const writes = sent.map((message) => writer.write(message));
    for (const message of sent) {
      assertEquals((await reader.read()).value, message);
    }
    await Promise.all(writes);
    client.close();
    await client.closed;
  };
  await Promise.all([1, 2, 3, 4].map(run));
  await server.shutdown();
});

Deno.test("the writable's own queue counts bytes, so small writes keep it ready", async () => {
  const pair = (options: { writableHighWaterMark?: number }) => {
    const a = new TransformStream<Uint8Array, Uint8Array>();
    const b = new TransformStream<Uint8Array, Uint8Array>();
    return [
      new TransportWebSocket({ readable: a.readable, writable: b.writable }, {
        role: "client",
        ...options,
      }),
      new TransportWebSocket({ readable: b.readable, writable: a.writable }, {
        role: "server",
      }),
    ] as const;
  };
  const [client, server] = pair({});
  const writer = client.writable.getWriter();
  // min(writableHighWaterMark, 64 KiB), in bytes (UTF-16 units for text).
  assertEquals(writer.desiredSize, 64 * 1024);
  const first = writer.write("hello");
  assertEquals(writer.desiredSize, 64 * 1024 - 5);
  await first;
  assertEquals(writer.desiredSize, 64 * 1024);
  const reader = server.readable.getReader();
  assertEquals((await reader.read()).value, "hello");
  writer.releaseLock();
  reader.releaseLock();
  client.close();
  await Promise.all([client.closed, server.closed]);

  // writableHighWaterMark 0: every write waits, and the queue holds one byte.
  const [strict, peer] = pair({ writableHighWaterMark: 0 });
  assertEquals(strict.writable.getWriter().desiredSize, 1);
  strict.close();
  await Promise.all([strict.closed, peer.closed]);
});

Deno.test("a pipelined echo through pipeTo answers a read of 16 frames with one socket write", async () => {
  // A Deno.Conn stand-in: one read brings 16 masked frames, and the next
  // read waits until the test ends. Every write is recorded.
  const frames = concat(
    ...Array.from(
      { length: 16 },
      (_, i) => rawFrame(0x82, new Uint8Array([i, i, i]), hex("01 02 03 04")),
    ),
  );
  const writes: number[] = [];
  let fed = false;
  const ended = Promise.withResolvers<number | null>();
  const conn = {
    read(buffer: Uint8Array): Promise<number | null> {
      if (fed) return ended.promise;
      fed = true;
      buffer.set(frames);
      return Promise.resolve(frames.length);
    },
    write(bytes: Uint8Array): Promise<number> {
      writes.push(bytes.length);
      return Promise.resolve(bytes.length);
    },
    closeWrite: () => Promise.resolve(),
    close: () => ended.resolve(null),
  };
  const server = new TransportWebSocket(conn as unknown as Deno.Conn, {
    role: "server",
  });
  const piping = server.readable.pipeTo(server.writable).catch(() => {});
  for (let i = 0; i < 200 && writes.length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
  // 16 unmasked frames of 2 + 3 bytes, in one write.
  assertEquals(writes, [16 * 5]);
  ended.resolve(null);
  await server.closed.catch(() => {});
  await piping;
});

Deno.test("a client masks every frame with its own key (RFC 6455 §5.3)", async () => {
  // 64 one-byte frames, in one burst and in one block: each carries a key
  // from the random pool, and the payload unmasks to what was sent.
  const keys: string[] = [];
  const payloads: number[] = [];
  const peer = rawServer(async (conn) => {
    const bytes: number[] = [];
    const buffer = new Uint8Array(4096);
    while (bytes.length < 64 * 7) {
      const n = await conn.read(buffer);
      if (n === null) break;
      bytes.push(...buffer.subarray(0, n));
    }
    for (let at = 0; at + 7 <= bytes.length; at += 7) {
      assertEquals(bytes[at + 1], 0x81, "masked, one byte");
      const key = bytes.slice(at + 2, at + 6);
      keys.push(key.join());
      payloads.push(bytes[at + 6]! ^ key[0]!);
    }
    conn.close();
  });
  const client = await connect(`ws://127.0.0.1:${peer.port}/`);
  const writer = client.writable.getWriter();
  await Promise.all(
    Array.from({ length: 64 }, (_, i) => writer.write(new Uint8Array([i]))),
  );
  await peer.done;
  await client.closed.catch(() => {});
  assertEquals(payloads, Array.from({ length: 64 }, (_, i) => i));
  // 64 random 32-bit keys: a repeat would mean a reused key.
  assertEquals(new Set(keys).size, 64);
});

Deno.test("seeded: small binary messages share buffers unless shareBuffers is false, and keep their bytes", async (t) => {
  // Both ends copy out of reused read buffers: the server into its slabs
  // before it echoes, the client into its own. All messages are written
  // before any is read, so a later read overwrites the buffers of earlier
  // ones while they are still held.
  const server = echoServer();
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  for (const shareBuffers of [true, false]) {
    await t.step(`shareBuffers: ${shareBuffers}`, async () => {
      const random = prng(shareBuffers ? 11 : 12);
      const client = await connect(url, { shareBuffers });
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      const sent = Array.from(
        { length: 300 },
        () => randomBytes(random, Math.floor(random() * 600)),
      );
      const got = await writeAllThenRead(writer, reader, sent) as Uint8Array[];
      assertEquals(got, sent);
      const small = got.filter((m) => m.length <= 512);
      const buffers = new Set(small.map((m) => m.buffer));
      if (shareBuffers) {
        assert(buffers.size < small.length / 2, `${buffers.size} buffers`);
        assert(small.every((m) => m.byteOffset % 8 === 0));
      } else {
        assertEquals(buffers.size, small.length);
        assert(got.every((m) => m.buffer.byteLength === m.length));
      }
      client.close();
      await client.closed;
    });
  }
  await server.shutdown();
});
