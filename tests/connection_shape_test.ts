// One connection shape: the connection that serve(), connect() and
// upgradeWebSocket() hand out meets WebSocketConnection, checked by one test
// body against each face, with Deno's native WebSocket as the peer on the
// other end of loopback.

import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  connect,
  serve,
  upgradeWebSocket,
  type WebSocketConnection,
} from "../mod.ts";

/** A peer: Deno's own WebSocket, on the other end. */
interface Peer {
  /** Messages the peer received, in order. */
  received: (string | Uint8Array)[];
  /** Resolves when the peer has received `count` messages. */
  receivedCount(count: number): Promise<void>;
  /** Sends a message from the peer. */
  send(data: string | Uint8Array): void;
  /** The close the peer saw. */
  closed: Promise<{ code: number; reason: string }>;
}

function peerOf(socket: WebSocket): Peer {
  socket.binaryType = "arraybuffer";
  const received: (string | Uint8Array)[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  socket.addEventListener("message", (event) => {
    received.push(
      typeof event.data === "string" ? event.data : new Uint8Array(event.data),
    );
    for (const waiter of waiters) {
      if (received.length >= waiter.count) waiter.resolve();
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.addEventListener(
      "close",
      (event) => resolve({ code: event.code, reason: event.reason }),
      { once: true },
    )
  );
  return {
    received,
    receivedCount(count) {
      if (received.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    send(data) {
      socket.send(data as string | Uint8Array<ArrayBuffer>);
    },
    closed,
  };
}

function opened(socket: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true });
    socket.addEventListener("error", reject, { once: true });
  });
}

/** One face: how it is set up, and what it knows. */
interface Face {
  name: string;
  /** Opens a connection of this face at `/path?x=1`, and its peer. */
  open(): Promise<{
    connection: WebSocketConnection;
    peer: Peer;
    /**
     * The remoteAddr the connection should report: `undefined`, or a
     * loopback TCP address on `port` (or on any port but `notPort`, for
     * the native client's end, whose port it does not tell).
     */
    remoteAddr: { port?: number; notPort?: number } | undefined;
    shutdown(): Promise<void>;
  }>;
  /** Whether ping() works on this face. */
  pings: boolean;
}

const listen = { port: 0, hostname: "127.0.0.1", onListen() {} };

const faces: Face[] = [
  {
    name: "serve() (server side, our protocol on a Deno.Conn)",
    pings: true,
    async open() {
      const ours = Promise.withResolvers<WebSocketConnection>();
      const server = serve({ ...listen, protocol: "chat" }, ours.resolve);
      const socket = new WebSocket(
        `ws://127.0.0.1:${server.addr.port}/path?x=1`,
        "chat",
      );
      const peer = peerOf(socket);
      await opened(socket);
      const connection = await ours.promise;
      return {
        connection,
        peer,
        remoteAddr: { notPort: server.addr.port },
        shutdown: () => server.shutdown(),
      };
    },
  },
  {
    name: "connect() (client side, our protocol on a Deno.Conn)",
    pings: true,
    async open() {
      const peerSocket = Promise.withResolvers<WebSocket>();
      const server = Deno.serve(listen, (request) => {
        const { socket, response } = Deno.upgradeWebSocket(request, {
          protocol: "chat",
        });
        peerSocket.resolve(socket);
        return response;
      });
      const connection = await connect(
        `ws://127.0.0.1:${server.addr.port}/path?x=1`,
        { protocols: ["chat"] },
      );
      const socket = await peerSocket.promise;
      const peer = peerOf(socket);
      if (socket.readyState !== WebSocket.OPEN) await opened(socket);
      return {
        connection,
        peer,
        remoteAddr: { port: server.addr.port },
        shutdown: () => server.shutdown(),
      };
    },
  },
  {
    name: "upgradeWebSocket() (server side, Deno's socket under Deno.serve)",
    pings: false,
    async open() {
      const ours = Promise.withResolvers<WebSocketConnection>();
      const server = Deno.serve(listen, (request) => {
        const { response, connection } = upgradeWebSocket(request, {
          protocol: "chat",
        });
        ours.resolve(connection);
        return response;
      });
      const socket = new WebSocket(
        `ws://127.0.0.1:${server.addr.port}/path?x=1`,
        "chat",
      );
      const peer = peerOf(socket);
      await opened(socket);
      return {
        connection: await ours.promise,
        peer,
        remoteAddr: undefined,
        shutdown: () => server.shutdown(),
      };
    },
  },
];

for (const face of faces) {
  Deno.test(`WebSocketConnection: ${face.name}`, async (t) => {
    const { connection, peer, remoteAddr, shutdown } = await face.open();

    await t.step(
      "opened gives the streams and the handshake's outcome",
      async () => {
        const info = await connection.opened;
        assert(info.readable === connection.readable);
        assert(info.writable === connection.writable);
        assertEquals(info.protocol, "chat");
        assertEquals(info.extensions, connection.extensions);
        assert(connection.opened === connection.opened, "one promise");
        assertEquals(connection.protocol, "chat");
        assertEquals(typeof connection.extensions, "string");
      },
    );

    await t.step("url and remoteAddr say where the connection goes", () => {
      const url = new URL(connection.url!);
      assertEquals(url.pathname + url.search, "/path?x=1");
      assertEquals(url.host, `127.0.0.1:${url.port}`);
      if (remoteAddr === undefined) {
        assertEquals(connection.remoteAddr, undefined);
      } else {
        const addr = connection.remoteAddr as Deno.NetAddr;
        assertEquals(addr.transport, "tcp");
        assertEquals(addr.hostname, "127.0.0.1");
        if (remoteAddr.port !== undefined) {
          assertEquals(addr.port, remoteAddr.port);
        }
        assert(addr.port > 0 && addr.port !== remoteAddr.notPort);
      }
    });

    await t.step("messages go both ways", async () => {
      peer.send("from the peer");
      const reader = connection.readable.getReader();
      assertEquals((await reader.read()).value, "from the peer");
      reader.releaseLock();
      const writer = connection.writable.getWriter();
      await writer.write(new Uint8Array([1, 2, 3]));
      await writer.write("to the peer");
      writer.releaseLock();
      await peer.receivedCount(2);
      assertEquals(peer.received, [new Uint8Array([1, 2, 3]), "to the peer"]);
      assertEquals(typeof connection.bufferedAmount, "number");
      assert(connection.bufferedAmount >= 0);
    });

    await t.step(
      face.pings
        ? "ping() resolves with the round trip when the peer's pong is back"
        : "ping() rejects with a TypeError that says why",
      async () => {
        if (face.pings) {
          const rtt = await connection.ping(new Uint8Array([7]));
          assert(rtt >= 0);
        } else {
          await assertRejects(
            () => connection.ping(),
            TypeError,
            "Cannot ping: Deno's native WebSocket under Deno.serve gives no ping API",
          );
        }
      },
    );

    await t.step("close() sends its code and reason to the peer", async () => {
      connection.close({ closeCode: 4001, reason: "bye" });
      assertEquals(await peer.closed, { code: 4001, reason: "bye" });
      assertEquals(await connection.closed, { closeCode: 4001, reason: "bye" });
    });

    await shutdown();
  });
}
