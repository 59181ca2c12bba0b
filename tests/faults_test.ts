// Faults: a peer that resets TCP in the middle of a frame, of the opening
// handshake and of the close handshake (against our server and our client;
// a real RST from node:net's resetAndDestroy(), SO_LINGER 0, or from
// closing with bytes unread); an application that throws in its handler,
// and an onError that throws. `closed` rejects with 1006 each
// time, the server goes on serving, and no rejection goes unhandled.

import { assert, assertEquals } from "@std/assert";
import net from "node:net";
import { connect, serve, type WebSocketServer } from "../mod.ts";
import { acceptKey } from "../lib/handshake/mod.ts";
import {
  assertWsError,
  rawFrame,
  rawServer,
  upgradeRequest,
} from "./_helpers.ts";

const KEY = new Uint8Array([1, 2, 3, 4]);
const te = new TextEncoder();

/**
 * Runs `body` and fails if any promise rejection went unhandled meanwhile
 * (or in the few turns after it).
 */
async function noUnhandledRejection(body: () => Promise<void>) {
  const seen: unknown[] = [];
  const listener = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    seen.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", listener);
  try {
    await body();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    globalThis.removeEventListener("unhandledrejection", listener);
  }
  assertEquals(seen, [], "unhandled rejections");
}

/** A client that echoes one message through `server`: it still serves. */
async function stillServes(server: WebSocketServer) {
  const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const writer = client.writable.getWriter();
  await writer.write("still here");
  const reader = client.readable.getReader();
  assertEquals((await reader.read()).value, "still here");
  reader.releaseLock();
  writer.releaseLock();
  client.close();
  await client.closed;
}

/**
 * A raw client that resets: it never reads the 101 response, so closing
 * with those bytes unread makes the kernel send RST instead of FIN.
 */
async function resettingClient(port: number, bytes: Uint8Array[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  for (const chunk of bytes) {
    await conn.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  conn.close();
}

Deno.test("a reset in the middle of a frame or of the handshake: 1006, and the server goes on", async (t) => {
  await noUnhandledRejection(async () => {
    const outcomes: unknown[] = [];
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (connection) => {
        connection.closed.then(
          (info) => outcomes.push(info),
          (error) => outcomes.push(error),
        );
        connection.readable.pipeTo(connection.writable).catch(() => {});
      },
    );
    const frame = rawFrame(0x82, new Uint8Array(1000), KEY);

    await t.step("in the middle of a frame", async () => {
      await resettingClient(server.addr.port, [
        upgradeRequest(),
        frame.subarray(0, 500),
      ]);
      while (outcomes.length < 1) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assertWsError(outcomes[0], "ERR_ABNORMAL_CLOSURE", 1006);
      await stillServes(server);
    });

    await t.step("in the middle of the handshake", async () => {
      const head = upgradeRequest();
      await resettingClient(server.addr.port, [head.subarray(0, 40)]);
      await stillServes(server);
    });

    await t.step("in the middle of the close handshake", async () => {
      // Our client closes; the raw server resets instead of answering.
      const peer = rawServer(async (conn) => {
        // Wait for our close frame, leave it unread, and close: RST.
        await new Promise((resolve) => setTimeout(resolve, 100));
        conn.close();
      });
      const client = await connect(`ws://127.0.0.1:${peer.port}/`);
      client.close({ closeCode: 1000 });
      const error = await client.closed.then(() => undefined, (e) => e);
      assertWsError(error, "ERR_ABNORMAL_CLOSURE", 1006);
      await peer.done;
    });

    await server.shutdown();
  });
});

Deno.test("a handler that throws closes its connection with 1011; a throwing onError crashes nothing", async (t) => {
  await noUnhandledRejection(async () => {
    const reported: unknown[] = [];
    let throwInOnError = false;
    const server = serve(
      {
        port: 0,
        hostname: "127.0.0.1",
        onListen() {},
        onError(error) {
          reported.push(error);
          if (throwInOnError) throw new Error("onError itself failed");
        },
      },
      (connection, request) => {
        if (new URL(request.url).pathname === "/throw") {
          throw new Error("the handler failed");
        }
        connection.readable.pipeTo(connection.writable).catch(() => {});
      },
    );

    for (const throwing of [false, true]) {
      await t.step(`onError ${throwing ? "throws" : "reports"}`, async () => {
        throwInOnError = throwing;
        const client = await connect(
          `ws://127.0.0.1:${server.addr.port}/throw`,
        );
        let timer: ReturnType<typeof setTimeout> | undefined;
        const info = await Promise.race([
          client.closed,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("no close")), 3000);
          }),
        ]).finally(() => clearTimeout(timer));
        assertEquals(info.closeCode, 1011);
        assert(
          reported.some((e) => (e as Error).message === "the handler failed"),
        );
        await stillServes(server);
      });
    }
    await server.shutdown();
  });
});

Deno.test("maxConnections: an upgrade past the cap gets 503, and the count recovers", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, maxConnections: 2 },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const first = await connect(url);
  const second = await connect(url);
  assertEquals(server.connections, 2);
  const refused = await connect(url).then(() => undefined, (e) => e);
  assertWsError(refused, "ERR_HANDSHAKE", 1006);
  assert(String(refused.message).includes("503"), refused.message);
  first.close();
  await first.closed;
  // The count goes down as connections end; a new one is let in.
  while (server.connections > 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const third = await connect(url);
  third.close();
  await third.closed;
  second.close();
  await second.closed;
  await server.shutdown();
});

Deno.test("a frame that declares 2^62 bytes, or one past maxFrameSize, gets 1009 from its header", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, maxFrameSize: 1 << 20 },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  for (const length of [2n ** 62n, (1n << 20n) + 1n]) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    await conn.write(upgradeRequest());
    // The header alone: 64-bit length, masked, no payload.
    const header = new Uint8Array(14);
    header[0] = 0x82;
    header[1] = 0x80 | 127;
    new DataView(header.buffer).setBigUint64(2, length);
    await conn.write(header);
    const chunks: number[] = [];
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      chunks.push(...buffer.subarray(0, n));
    }
    conn.close();
    const bytes = new Uint8Array(chunks);
    const text = new TextDecoder().decode(bytes);
    const frame = bytes.subarray(text.indexOf("\r\n\r\n") + 4);
    assertEquals(frame[0], 0x88);
    assertEquals((frame[2]! << 8) | frame[3]!, 1009);
  }
  await server.shutdown();
});

/**
 * A node:net server (under Deno) that answers one upgrade, does `then`
 * with the socket, and resets it: resetAndDestroy() closes with
 * SO_LINGER 0, a real RST whatever is unread.
 */
function resettingServer(
  then: (socket: net.Socket, upgraded: Uint8Array) => Promise<void>,
  answer: (key: string) => Promise<Uint8Array> = async (key) =>
    te.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
    ),
) {
  const listening = Promise.withResolvers<number>();
  const done = Promise.withResolvers<void>();
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    let head = "";
    const onData = async (data: Uint8Array) => {
      head += new TextDecoder().decode(data);
      if (!head.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      const key = /sec-websocket-key: (.*)\r\n/i.exec(head)![1]!;
      const response = await answer(key);
      socket.write(response);
      await then(socket, response);
      socket.resetAndDestroy();
      server.close(() => done.resolve());
    };
    socket.on("data", onData);
  });
  server.listen(0, "127.0.0.1", () => {
    listening.resolve((server.address() as net.AddressInfo).port);
  });
  return { port: listening.promise, done: done.promise };
}

Deno.test("a real RST against our client: in the handshake, in a frame, in the close handshake", async (t) => {
  await noUnhandledRejection(async () => {
    await t.step("in the middle of the 101 response", async () => {
      const peer = resettingServer(
        () => new Promise((resolve) => setTimeout(resolve, 20)),
        () =>
          Promise.resolve(
            te.encode("HTTP/1.1 101 Switching Protocols\r\nUpgr"),
          ),
      );
      const error = await connect(`ws://127.0.0.1:${await peer.port}/`)
        .then(() => undefined, (e) => e);
      assertWsError(error, "ERR_HANDSHAKE", 1006);
      await peer.done;
    });

    await t.step("in the middle of a frame", async () => {
      const peer = resettingServer(async (socket) => {
        // Half of an unmasked 1000-byte binary frame from the server.
        socket.write(rawFrame(0x82, new Uint8Array(1000)).subarray(0, 500));
        await new Promise((resolve) => setTimeout(resolve, 20));
      });
      const client = await connect(`ws://127.0.0.1:${await peer.port}/`);
      const error = await client.closed.then(() => undefined, (e) => e);
      assertWsError(error, "ERR_ABNORMAL_CLOSURE", 1006);
      await peer.done;
    });

    await t.step("in the middle of the close handshake", async () => {
      const closeSeen = Promise.withResolvers<void>();
      const peer = resettingServer(async (socket) => {
        socket.on("data", (data: Uint8Array) => {
          if ((data[0]! & 0x0f) === 0x8) closeSeen.resolve();
        });
        await closeSeen.promise;
      });
      const client = await connect(`ws://127.0.0.1:${await peer.port}/`);
      client.close({ closeCode: 1000 });
      const error = await client.closed.then(() => undefined, (e) => e);
      assertWsError(error, "ERR_ABNORMAL_CLOSURE", 1006);
      await peer.done;
    });
  });
});

Deno.test("a real RST against our server in the middle of its close handshake: 1006, and it goes on", async () => {
  await noUnhandledRejection(async () => {
    const outcome = Promise.withResolvers<unknown>();
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (connection, request) => {
        if (new URL(request.url).pathname === "/close") {
          connection.closed.then(outcome.resolve, outcome.resolve);
          connection.close({ closeCode: 1000 });
          return;
        }
        connection.readable.pipeTo(connection.writable).catch(() => {});
      },
    );
    // A node:net client that reads our close frame and resets.
    const socket = net.connect(server.addr.port, "127.0.0.1");
    socket.on("error", () => {});
    const closed = new Promise((resolve) => socket.once("close", resolve));
    const sawClose = Promise.withResolvers<void>();
    let bytes = new Uint8Array(0);
    socket.on("data", (data: Uint8Array) => {
      bytes = new Uint8Array([...bytes, ...data]);
      const text = new TextDecoder("latin1").decode(bytes);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0 && bytes[end + 4] === 0x88) sawClose.resolve();
    });
    socket.write(
      new TextDecoder().decode(upgradeRequest()).replace(
        "GET / ",
        "GET /close ",
      ),
    );
    await sawClose.promise;
    socket.resetAndDestroy();
    await closed;
    const error = await outcome.promise;
    assertWsError(error, "ERR_ABNORMAL_CLOSURE", 1006);
    await stillServes(server);
    await server.shutdown();
  });
});
