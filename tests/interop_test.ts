// Interop with Node's `ws` running under Deno, in both directions, and
// acceptWebSocket on a node:http server's "upgrade" socket.

import { assert, assertEquals } from "@std/assert";
import { createServer, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import WebSocket, { WebSocketServer } from "ws";
import {
  acceptWebSocket,
  connect,
  serve,
  type WebSocketConnection,
} from "../mod.ts";
import { prng, randomBytes } from "./_helpers.ts";

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 8 << 20];

function opened(socket: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
}

function nextMessage(socket: WebSocket): Promise<string | Uint8Array> {
  return new Promise((resolve) => {
    socket.once("message", (data: Buffer, isBinary: boolean) => {
      resolve(isBinary ? new Uint8Array(data) : data.toString("utf8"));
    });
  });
}

function wsClosed(socket: WebSocket): Promise<[number, string]> {
  return new Promise((resolve) => {
    socket.once("close", (code: number, reason: Buffer) => {
      resolve([code, reason.toString("utf8")]);
    });
  });
}

Deno.test("npm:ws client against our serve()", async (t) => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, protocol: (p) => p[0] },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/x?y=1`, [
    "proto-a",
  ]);
  await opened(socket);
  assertEquals(socket.protocol, "proto-a");
  const random = prng(21);
  for (const size of SIZES) {
    await t.step(`binary and text echo, ${size} bytes`, async () => {
      const bytes = randomBytes(random, size);
      let reply = nextMessage(socket);
      socket.send(bytes);
      assertEquals(await reply, bytes);
      const text = "aé€😀".repeat(size / 10 | 0);
      reply = nextMessage(socket);
      socket.send(text);
      assertEquals(await reply, text);
    });
  }
  await t.step("fragmented sends from ws are reassembled", async () => {
    const reply = nextMessage(socket);
    socket.send("part one, ", { fin: false });
    socket.send("part two", { fin: true });
    assertEquals(await reply, "part one, part two");
  });
  await t.step(
    "our server answers ws's ping with a matching pong",
    async () => {
      const pong = new Promise<Buffer>((resolve) =>
        socket.once("pong", resolve)
      );
      socket.ping(Buffer.from("are you there"));
      assertEquals(new TextDecoder().decode(await pong), "are you there");
    },
  );
  await t.step("a close code and reason round-trip", async () => {
    const closed = wsClosed(socket);
    socket.close(4321, "ws done");
    assertEquals(await closed, [4321, "ws done"]);
  });
  await server.shutdown();
});

Deno.test("our connect() against an npm:ws server", async (t) => {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => wss.once("listening", resolve));
  const serverSide = Promise.withResolvers<WebSocket>();
  wss.on("connection", (socket: WebSocket) => {
    serverSide.resolve(socket);
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      socket.send(data, { binary: isBinary });
    });
  });
  const port = (wss.address() as { port: number }).port;
  const client = await connect(`ws://127.0.0.1:${port}/`, {
    fragmentSize: 16 * 1024,
  });
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  const random = prng(22);
  for (const size of SIZES) {
    await t.step(`fragmented echo, ${size} bytes`, async () => {
      const bytes = randomBytes(random, size);
      await writer.write(bytes);
      assertEquals((await reader.read()).value, bytes);
      const text = "ws€".repeat(size / 5 | 0);
      await writer.write(text);
      assertEquals((await reader.read()).value, text);
    });
  }
  await t.step("ping() is answered by ws", async () => {
    const rtt = await client.ping();
    assert(rtt >= 0 && rtt < 5000);
  });
  await t.step(
    "ws closes with a code and reason; we see it cleanly",
    async () => {
      (await serverSide.promise).close(4444, "ws server done");
      reader.releaseLock();
      writer.releaseLock();
      assertEquals(await client.closed, {
        closeCode: 4444,
        reason: "ws server done",
      });
    },
  );
  await new Promise((resolve) => wss.close(resolve));
});

Deno.test("our client closes first against npm:ws", async () => {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => wss.once("listening", resolve));
  const serverClosed = Promise.withResolvers<[number, string]>();
  wss.on("connection", (socket: WebSocket) => {
    wsClosed(socket).then(serverClosed.resolve);
  });
  const port = (wss.address() as { port: number }).port;
  const client = await connect(`ws://127.0.0.1:${port}/`);
  client.close({ closeCode: 4001, reason: "client done" });
  assertEquals(await client.closed, { closeCode: 4001, reason: "client done" });
  assertEquals(await serverClosed.promise, [4001, "client done"]);
  await new Promise((resolve) => wss.close(resolve));
});

Deno.test("acceptWebSocket on a node:http server's upgrade socket", async () => {
  const connections: Promise<WebSocketConnection>[] = [];
  const server = createServer((_req, res) => {
    res.writeHead(200).end("plain http");
  });
  server.on(
    "upgrade",
    (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers.set(name, String(value));
      }
      const request = new Request(`http://${req.headers.host}${req.url}`, {
        headers,
      });
      const accepted = acceptWebSocket(
        Duplex.toWeb(socket) as {
          readable: ReadableStream<Uint8Array>;
          writable: WritableStream<Uint8Array>;
        },
        request,
        { head: new Uint8Array(head), protocol: "node" },
      );
      connections.push(accepted);
      accepted.then((connection) =>
        connection.readable.pipeTo(connection.writable)
      ).catch(() => {});
    },
  );
  await new Promise<void>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve())
  );
  const port = (server.address() as { port: number }).port;

  const client = await connect(`ws://127.0.0.1:${port}/node`, {
    protocols: ["node"],
  });
  assertEquals(client.protocol, "node");
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  const big = randomBytes(prng(23), 2 << 20);
  await writer.write("through node:http");
  await writer.write(big);
  assertEquals((await reader.read()).value, "through node:http");
  assertEquals((await reader.read()).value, big);
  reader.releaseLock();
  writer.releaseLock();
  client.close({ closeCode: 1000, reason: "bye" });
  assertEquals(await client.closed, { closeCode: 1000, reason: "bye" });
  const serverConnection = await connections[0]!;
  assertEquals(await serverConnection.closed, {
    closeCode: 1000,
    reason: "bye",
  });
  await new Promise((resolve) => server.close(resolve));
});
