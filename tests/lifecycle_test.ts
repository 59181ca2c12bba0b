// How connections end: after a local close, on failure, on timeouts, with a
// peer that stops reading, and what each peer sees then. Real sockets on
// 127.0.0.1 and raw peers written here that send and check exact bytes.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  connect,
  serve,
  type ServeOptions,
  type WebSocketConnection,
  WebSocketError,
  type WebSocketServer,
} from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import { readBufferStats } from "../lib/_pools.ts";
import {
  assertWsError,
  concat,
  delay,
  rawClient,
  rawFrame,
  rawServer,
  readUntilClose,
  within,
} from "./_helpers.ts";

const te = new TextEncoder();
const KEY = new Uint8Array([1, 2, 3, 4]);

function echoServer(options: Partial<ServeOptions> = {}): WebSocketServer {
  return serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
}

Deno.test("after our close, every message the peer sent is delivered in order", async () => {
  const server = echoServer();
  // A small readable queue, read slowly: the echoes of the last lines come
  // back after our close frame has gone out, into a full queue.
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
    readableHighWaterMark: 256,
    perMessageDeflate: false,
  });
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
  const sending = ReadableStream.from(lines).pipeTo(client.writable);
  const got: unknown[] = [];
  for await (const message of client.readable) {
    got.push(message);
    if (got.length % 200 === 0) await delay(1);
  }
  await sending;
  assertEquals(got.length, lines.length);
  assertEquals(got, lines);
  assertEquals(await client.closed, { closeCode: 1005, reason: "" });
  await server.shutdown();
});

Deno.test("the echo pattern: pipeTo resolves on a clean close and rejects on an unclean one", async (t) => {
  await t.step(
    "the server's pipe, when the client closes cleanly",
    async () => {
      const pipe = Promise.withResolvers<{ piping: Promise<void> }>();
      const server = serve(
        { port: 0, hostname: "127.0.0.1", onListen() {} },
        (connection) => {
          // Wrapped: resolving with a promise would adopt it.
          pipe.resolve({
            piping: connection.readable.pipeTo(connection.writable),
          });
        },
      );
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      const writer = client.writable.getWriter();
      await writer.write("hello");
      const reader = client.readable.getReader();
      assertEquals((await reader.read()).value, "hello");
      client.close({ closeCode: 1000, reason: "bye" });
      await within((await pipe.promise).piping, 3000, "the server's pipe");
      assertEquals(await client.closed, { closeCode: 1000, reason: "bye" });
      await server.shutdown();
    },
  );

  await t.step(
    "the client's pipe, when the server closes cleanly",
    async () => {
      const server = serve(
        { port: 0, hostname: "127.0.0.1", onListen() {} },
        async (connection) => {
          const writer = connection.writable.getWriter();
          await writer.write("one");
          writer.releaseLock();
          connection.close({ closeCode: 1000 });
        },
      );
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      await within(
        client.readable.pipeTo(client.writable),
        3000,
        "the client's pipe",
      );
      await client.closed;
      await server.shutdown();
    },
  );

  await t.step(
    "the server's pipe, when the client's TCP ends with no close",
    async () => {
      const pipe = Promise.withResolvers<{ piping: Promise<void> }>();
      const server = serve(
        { port: 0, hostname: "127.0.0.1", onListen() {} },
        (connection) => {
          // Wrapped: resolving with a promise would adopt it.
          pipe.resolve({
            piping: connection.readable.pipeTo(connection.writable),
          });
          connection.closed.catch(() => {});
        },
      );
      const { conn } = await rawClient(server.addr.port);
      const { piping } = await pipe.promise;
      conn.close();
      const error = await within(
        piping.then(() => undefined, (e) => e),
        3000,
        "pipe",
      );
      assertWsError(error, "ERR_ABNORMAL_CLOSURE");
      await server.shutdown();
    },
  );
});

Deno.test("writing a value that is not a message fails the connection with 1011, named", async (t) => {
  for (
    const [name, value] of [["42", 42], ["{}", {}], ["null", null]] as const
  ) {
    await t.step(name, async () => {
      const serverClosed = Promise.withResolvers<
        { closed: Promise<unknown> }
      >();
      const server = serve(
        { port: 0, hostname: "127.0.0.1", onListen() {} },
        (connection) => {
          serverClosed.resolve({ closed: connection.closed });
          connection.readable.pipeTo(new WritableStream()).catch(() => {});
        },
      );
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      const writer = client.writable.getWriter();
      const write = writer.write(value as unknown as string).then(
        () => undefined,
        (e) => e,
      );
      const error = assertWsError(
        await within(
          client.closed.then(() => undefined, (e) => e),
          3000,
          "closed",
        ),
        "ERR_INVALID_MESSAGE",
        1011,
      );
      assertStringIncludes(error.message, name === "{}" ? "object" : name);
      assert((await write) instanceof WebSocketError);
      // The peer hears why.
      const heard = await (await serverClosed.promise).closed;
      assertEquals((heard as { closeCode: number }).closeCode, 1011);
      await server.shutdown();
    });
  }
});

Deno.test("a write after closed has resolved says the connection is closed", async () => {
  const server = echoServer();
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  client.close();
  await client.closed;
  const error = await writer.write("late").then(() => undefined, (e) => e);
  assert(error instanceof TypeError, String(error));
  assertEquals(error.message, "Cannot send message: the connection is closed");
  await server.shutdown();
});

Deno.test("a block goes back to the pool only after the write that holds it settles", async () => {
  // A: a server over a byte pair whose writable holds its first chunk.
  const settle = Promise.withResolvers<void>();
  const held: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const a = new TransportWebSocket({
    readable: new ReadableStream({ start: (c) => void (input = c) }),
    writable: new WritableStream({
      write(chunk) {
        held.push(chunk);
        copies.push(chunk.slice());
        return settle.promise;
      },
    }),
  }, { role: "server", closeTimeout: 100 });
  const writer = a.writable.getWriter();
  // A small frame, a large one (sent by reference: the small block is
  // sealed part-filled), and a small one after it in the same block.
  writer.write(new Uint8Array([1, 2, 3])).catch(() => {});
  writer.write(new Uint8Array(20000)).catch(() => {});
  writer.write(new Uint8Array([4, 5, 6])).catch(() => {});
  await delay(10);
  assertEquals(held.length, 1, "the first write is in flight, held");
  // The peer's close, then EOF: A finishes while its write is held.
  input.enqueue(rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
  input.close();
  await a.closed.catch(() => {});

  // B takes blocks from the same pool and writes over whatever it gets.
  const sent: Uint8Array[] = [];
  const b = new TransportWebSocket({
    readable: new ReadableStream(),
    writable: new WritableStream({ write: (chunk) => void sent.push(chunk) }),
  }, { role: "server", closeTimeout: 100 });
  const bWriter = b.writable.getWriter();
  for (let i = 0; i < 8; i++) {
    await bWriter.write(new Uint8Array(32).fill(0xee));
  }
  await delay(10);
  assert(sent.length > 0);
  assertEquals(held[0], copies[0], "bytes in flight to A's peer changed");
  settle.resolve();
  bWriter.releaseLock();
  b.close();
  await b.closed.catch(() => {});
});

/** A raw server peer that never reads; resolves its socket. */
function deafPeer() {
  const socket = Promise.withResolvers<Deno.Conn>();
  const release = Promise.withResolvers<void>();
  const peer = rawServer(async (conn) => {
    socket.resolve(conn);
    await release.promise;
  });
  return { peer, socket: socket.promise, release };
}

/** Writes until the writes stall on a peer that does not read. */
async function stuffUntilStalled(connection: WebSocketConnection) {
  const writer = connection.writable.getWriter();
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < 64; i++) {
    const write = writer.write(chunk).catch(() => {});
    const stalled = await Promise.race([
      write.then(() => false),
      delay(200).then(() => true),
    ]);
    if (stalled) break;
  }
  writer.releaseLock();
}

/** What a deaf peer gets once it reads at last: our bytes, then the end. */
async function drainsToEnd(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1 << 16);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
  }
  conn.close();
}

Deno.test("a peer that stops reading: every timeout still ends the transport", async (t) => {
  await t.step("closeTimeout", async () => {
    const { peer, socket, release } = deafPeer();
    const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
      closeTimeout: 200,
      perMessageDeflate: false,
    });
    await stuffUntilStalled(client);
    client.close();
    const error = await within(
      client.closed.then(() => undefined, (e) => e),
      5000,
      "closed after closeTimeout",
    );
    assertWsError(error, "ERR_CLOSE_TIMEOUT");
    await within(drainsToEnd(await socket), 5000, "the peer sees the end");
    release.resolve();
    await peer.done;
  });

  for (
    const [name, options, code] of [
      [
        "heartbeat",
        { heartbeat: { interval: 50, timeout: 100 } },
        "ERR_HEARTBEAT_TIMEOUT",
      ],
      ["sendTimeout", { sendTimeout: 200 }, "ERR_SEND_TIMEOUT"],
    ] as const
  ) {
    await t.step(name, async () => {
      const { peer, socket, release } = deafPeer();
      const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
        ...options,
        perMessageDeflate: false,
      });
      await stuffUntilStalled(client);
      const error = await within(
        client.closed.then(() => undefined, (e) => e),
        5000,
        `closed after ${name}`,
      );
      assertWsError(error, code);
      await within(drainsToEnd(await socket), 5000, "the peer sees the end");
      release.resolve();
      await peer.done;
    });
  }

  await t.step("server.shutdown()", async () => {
    const ready = Promise.withResolvers<void>();
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, closeTimeout: 200 },
      async (connection) => {
        connection.closed.catch(() => {});
        await stuffUntilStalled(connection);
        ready.resolve();
      },
    );
    const { conn } = await rawClient(server.addr.port);
    await ready.promise;
    await within(server.shutdown(), 5000, "shutdown");
    await within(drainsToEnd(conn), 5000, "the peer sees the end");
  });
});

Deno.test("read buffers and SIMD slots go back after failures and EOF", async () => {
  const server = echoServer();
  const before = readBufferStats();
  // A first read over 1 KiB moves a connection to pooled 64 KiB buffers;
  // the second read, in one of them, then fails or ends.
  const big = rawFrame(0x82, new Uint8Array(1500), KEY);
  for (let i = 0; i < 300; i++) {
    const { conn, frames } = await rawClient(server.addr.port);
    await conn.write(big);
    const buffer = new Uint8Array(4096);
    while (!frames.next()) {
      frames.push(buffer.subarray(0, (await conn.read(buffer))!));
    }
    if (i % 2 === 0) {
      // An unmasked frame from a client: 1002.
      await conn.write(rawFrame(0x81, te.encode("hi")));
      await readUntilClose(conn, frames);
    } else {
      await conn.closeWrite();
    }
    conn.close();
  }
  await server.shutdown();
  const after = readBufferStats();
  assert(
    after.free >= before.free,
    `free read buffers: ${before.free} before, ${after.free} after`,
  );
});

Deno.test("a fragment flood past maxFragments: the peer reads 1009 before TCP ends", async () => {
  const server = echoServer({ maxFragments: 10_000 });
  const { conn, frames } = await rawClient(server.addr.port);
  // 1,000,000 one-byte fragments (7 MB), all written before reading: our
  // close frame waits in the peer's receive buffer meanwhile, and is lost
  // if we close TCP with its flood unread (the kernel then sends RST).
  const fragment = rawFrame(0x00, te.encode("a"), KEY);
  const batch = concat(...Array.from({ length: 8192 }, () => fragment));
  // Pings first, whose pongs fill the kernel's buffers toward the peer:
  // our close frame then waits behind them in our send queue.
  const pings = concat(
    ...Array.from(
      { length: 1024 },
      () => rawFrame(0x89, new Uint8Array(125), KEY),
    ),
  );
  const writeAll = async (bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) {
      at += await conn.write(bytes.subarray(at));
    }
  };
  let writeError: unknown;
  const flood = async () => {
    for (let i = 0; i < 64; i++) await writeAll(pings);
    await writeAll(rawFrame(0x01, te.encode("a"), KEY));
    for (let sent = 1; sent < 1_000_000; sent += 8192) await writeAll(batch);
  };
  try {
    // Bounded: a server that stops reading leaves the writes stuck.
    await within(flood(), 10000, "the flood");
  } catch (error) {
    writeError = error;
  }
  const heard = await within(readUntilClose(conn, frames), 10000, "close");
  conn.close();
  assertEquals(heard.code, 1009, `${heard.reason}; write error: ${writeError}`);
  await server.shutdown();
});

Deno.test("closing by cancelling readable drops what is still coming and completes the handshake", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (connection) => {
      const writer = connection.writable.getWriter();
      // 8 MiB the client will not read: more than its queue and the kernel's.
      const chunk = new Uint8Array(64 * 1024);
      for (let i = 0; i < 128; i++) await writer.write(chunk).catch(() => {});
      writer.releaseLock();
      await connection.closed.catch(() => {});
    },
  );
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
    readableHighWaterMark: 64 * 1024,
    perMessageDeflate: false,
  });
  await delay(100);
  await client.readable.cancel(
    new WebSocketError("Cannot read: done", {
      code: "ERR_ABORTED",
      closeCode: 1000,
    }),
  );
  const info = await within(client.closed, 5000, "closed after cancel");
  assertEquals(info.closeCode, 1000);
  await server.shutdown();
});

Deno.test("a ping flood from a peer that reads nothing keeps our outbox bounded", async () => {
  const highWaterMark = 64 * 1024;
  const serverSide = Promise.withResolvers<WebSocketConnection>();
  const server = serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      writableHighWaterMark: highWaterMark,
    },
    (connection) => {
      serverSide.resolve(connection);
      connection.readable.pipeTo(new WritableStream()).catch(() => {});
    },
  );
  const { conn, frames } = await rawClient(server.addr.port);
  const peer = await serverSide.promise;
  // 100,000 pings of 125 bytes (13 MB of pongs to answer), none read.
  const ping = rawFrame(0x89, new Uint8Array(125).fill(7), KEY);
  const batch = concat(...Array.from({ length: 1000 }, () => ping));
  let most = 0;
  const flood = async () => {
    for (let i = 0; i < 100; i++) {
      for (let at = 0; at < batch.length;) {
        at += await conn.write(batch.subarray(at));
      }
      most = Math.max(most, peer.bufferedAmount);
    }
    // The last ping, with a payload of its own: its pong must come back.
    await conn.write(rawFrame(0x89, new Uint8Array([1, 2, 3]), KEY));
  };
  await within(flood(), 20000, "the flood");
  // Bounded: the high-water mark, one pong past it, and one write's worth.
  assert(
    most <= highWaterMark + 256 * 1024,
    `our outbox held ${most} bytes`,
  );
  // Now read: pongs come back, the last one for the latest ping.
  const buffer = new Uint8Array(65536);
  let last: Uint8Array | undefined;
  const read = async () => {
    while (!last || last.length !== 3) {
      for (let frame = frames.next(); frame; frame = frames.next()) {
        if (frame.opcode === 0xa) last = frame.payload;
      }
      if (last?.length === 3) break;
      const n = await conn.read(buffer);
      if (n === null) break;
      frames.push(buffer.subarray(0, n));
    }
  };
  await within(read(), 10000, "the last pong");
  assertEquals(last, new Uint8Array([1, 2, 3]));
  conn.close();
  await server.shutdown();
});
