// Topics across processes on a real redis-server: two or three server
// processes (tests/topics/server.ts), each with its own clients. Every
// message published on any process reaches every subscriber on every
// process exactly once, in one order per topic; with streams, Redis dies
// and comes back empty mid-run, and the readers, resuming from their last
// id, miss nothing.

import { assert, assertEquals } from "@std/assert";
import { connect, type WebSocketConnection } from "../mod.ts";
import { freePort, hasRedis, type RedisServer, startRedis } from "./_redis.ts";

const SERVER = new URL("./topics/server.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
// Generous: the machine is shared.
const DEADLINE = 90_000;

interface ServerProcess {
  port: number;
  stop(): Promise<void>;
}

async function spawnServer(
  redis: RedisServer,
  mode: "pubsub" | "streams",
  ...extra: string[]
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      CONFIG,
      SERVER,
      "--redis",
      redis.url,
      "--mode",
      mode,
      ...extra,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error("the server process ended before listening");
    text += value;
  }
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n")));
  return {
    port,
    async stop() {
      await child.stdin.close();
      await lines.cancel();
      const status = await child.status;
      assertEquals(status.code, 0, "the server process failed");
    },
  };
}

/** Fails the test instead of hanging it, and clears its timer either way. */
async function within<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out: ${what}`)),
      DEADLINE,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Client {
  connection: WebSocketConnection;
  reader: ReadableStreamDefaultReader<string | Uint8Array>;
  writer: WritableStreamDefaultWriter<string>;
  got: string[];
}

async function join(port: number, topics: string): Promise<Client> {
  const connection = await connect(`ws://127.0.0.1:${port}/?t=${topics}`);
  const reader = connection.readable.getReader();
  // A resuming client's missed messages come before "ready".
  const got: string[] = [];
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the connection ended before ready");
    if (value === "ready") break;
    got.push(value as string);
  }
  return { connection, reader, writer: connection.writable.getWriter(), got };
}

async function receive(client: Client, n: number): Promise<void> {
  while (client.got.length < n) {
    const { value, done } = await client.reader.read();
    if (done) throw new Error("the connection ended");
    client.got.push(value as string);
  }
}

async function leave(client: Client): Promise<void> {
  client.reader.releaseLock();
  client.writer.releaseLock();
  client.connection.close();
  await client.connection.closed;
}

Deno.test({
  name:
    "pub/sub: a message published on any of three processes reaches every subscriber once, in one order per topic",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const servers: ServerProcess[] = [];
    const clients: Client[] = [];
    try {
      for (let p = 0; p < 3; p++) {
        servers.push(await spawnServer(redis, "pubsub"));
      }
      for (const server of servers) {
        for (let c = 0; c < 2; c++) {
          clients.push(await join(server.port, "a,b"));
        }
      }
      const perClient = 10;
      await Promise.all(clients.map(async (client, c) => {
        for (let i = 0; i < perClient; i++) {
          const topic = i % 2 === 0 ? "a" : "b";
          await client.writer.write(`${topic}\n${topic}:${c}:${i}`);
        }
      }));
      const total = clients.length * perClient;
      await within(
        "every message at every client",
        Promise.all(clients.map((client) => receive(client, total))),
      );
      const first = clients[0]!.got;
      for (const client of clients) {
        // Exactly once each.
        assertEquals(new Set(client.got).size, total);
        for (const topic of ["a", "b"]) {
          const mine = client.got.filter((m) => m.startsWith(topic + ":"));
          // One order per topic at every subscriber, on every process.
          assertEquals(mine, first.filter((m) => m.startsWith(topic + ":")));
          // Each publisher's messages in the order it published them.
          for (let c = 0; c < clients.length; c++) {
            const ids = mine.filter((m) => m.split(":")[1] === String(c))
              .map((m) => Number(m.split(":")[2]));
            assertEquals(ids, [...ids].sort((x, y) => x - y));
            assertEquals(ids.length, perClient / 2);
          }
        }
      }
    } finally {
      for (const client of clients) await leave(client);
      for (const server of servers) await server.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "streams: Redis restarts mid-run, and the readers resume from their last id and miss nothing",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const servers: ServerProcess[] = [];
    const clients: Client[] = [];
    try {
      for (let p = 0; p < 2; p++) {
        servers.push(await spawnServer(redis, "streams"));
      }
      for (const server of servers) clients.push(await join(server.port, "s"));
      const sent: string[] = [];
      const publish = async (count: number) => {
        for (let i = 0; i < count; i++) {
          const c = sent.length % clients.length;
          const text = `s:${sent.length}`;
          sent.push(text);
          await clients[c]!.writer.write(`s\n${text}`);
        }
      };
      await publish(10);
      await within(
        "the first messages",
        Promise.all(clients.map((client) => receive(client, 10))),
      );
      // Redis dies (nothing saved) and comes back empty; what is published
      // meanwhile waits in each process's Redis client.
      await redis.stop();
      await publish(10);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await redis.start();
      await publish(10);
      await within(
        "every message after the restart",
        Promise.all(clients.map((client) => receive(client, sent.length))),
      );
      for (const client of clients) {
        assertEquals(new Set(client.got).size, sent.length);
        // One order everywhere: the stream's.
        assertEquals(client.got, clients[0]!.got);
        // Per publisher, its own order.
        for (let c = 0; c < clients.length; c++) {
          const ids = client.got.map((m) => Number(m.slice(2)))
            .filter((n) => n % clients.length === c);
          assertEquals(ids, [...ids].sort((x, y) => x - y));
        }
      }
      assert(sent.length === 30);
    } finally {
      for (const client of clients) await leave(client);
      for (const server of servers) await server.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "examples/chat_cluster.ts: two processes on one Redis, and a member's text reaches every member on both",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const processes: { child: Deno.ChildProcess; url: string }[] = [];
    const members: Client[] = [];
    try {
      for (let p = 0; p < 2; p++) {
        const port = freePort();
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--config",
            CONFIG,
            new URL("../examples/chat_cluster.ts", import.meta.url).pathname,
            "--port",
            String(port),
            "--redis",
            redis.url,
          ],
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const lines = child.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let text = "";
        while (!text.includes("\n")) {
          const { value, done } = await lines.read();
          if (done) throw new Error("chat_cluster.ts ended before listening");
          text += value;
        }
        lines.releaseLock();
        child.stdout.cancel().catch(() => {});
        const url = /open (\S+)/.exec(text)![1]!;
        processes.push({ child, url });
      }
      for (const { url } of processes) {
        for (let m = 0; m < 2; m++) {
          const connection = await connect(
            new URL("/ws", url).href.replace("http", "ws"),
          );
          const member: Client = {
            connection,
            reader: connection.readable.getReader(),
            writer: connection.writable.getWriter(),
            got: [],
          };
          // Its own "joined" comes back once its room is joined in Redis.
          await within(
            "joining",
            receiveUntil(member, (m) => /joined/.test(m.text)),
          );
          members.push(member);
        }
      }
      const page = await fetch(processes[1]!.url);
      assert((await page.text()).includes("<title>websocket-streams chat"));
      const text = "héllo from the first process ✓";
      await members[0]!.writer.write(text);
      for (const member of members) {
        const said = await within(
          "the message at every member",
          receiveUntil(member, (m) => m.text === text),
        );
        assert(said.from.endsWith("guest-1"), said.from);
      }
    } finally {
      for (const member of members) await leave(member);
      for (const { child } of processes) {
        child.kill("SIGTERM");
        await child.status;
      }
      await redis.stop();
    }
  },
});

async function receiveUntil(
  client: Client,
  found: (message: { from: string; text: string }) => boolean,
): Promise<{ from: string; text: string }> {
  while (true) {
    const { value, done } = await client.reader.read();
    if (done) throw new Error("the connection ended");
    const message = JSON.parse(value as string);
    if (found(message)) return message;
  }
}

Deno.test({
  name:
    "streams: a client that reconnects with its last id gets what it missed, across a Redis restart, once each",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const servers: ServerProcess[] = [];
    const open: Client[] = [];
    try {
      for (let p = 0; p < 2; p++) {
        servers.push(await spawnServer(redis, "streams", "--stamp"));
      }
      const [a, b] = servers as [ServerProcess, ServerProcess];
      const publisher = await join(b.port, "s");
      open.push(publisher);
      let sent = 0;
      const publish = async (count: number) => {
        for (let i = 0; i < count; i++) {
          await publisher.writer.write(`s\nm${sent++}`);
        }
      };
      // What the resuming client has read, and its last id.
      const seen: string[] = [];
      let lastId = "";
      const readOn = async (client: Client, until: number) => {
        await within(
          "the messages",
          receive(client, until),
        );
        for (const text of client.got.splice(0)) {
          const { id, data } = JSON.parse(text);
          seen.push(data);
          lastId = id;
        }
      };
      let reader = await join(a.port, "s");
      await publish(3);
      await readOn(reader, 3);
      await leave(reader);
      // Missed while away; then back with its last id.
      await publish(3);
      reader = await join(a.port, `s&since=${lastId}`);
      await readOn(reader, 3);
      await leave(reader);
      // Away again while Redis dies and comes back empty; what is
      // published after it is there when the client returns.
      await redis.stop();
      await redis.start();
      await publish(3);
      reader = await join(a.port, `s&since=${lastId}`);
      open.push(reader);
      await readOn(reader, 3);
      // And live from there.
      await publish(2);
      await readOn(reader, 2);
      assertEquals(seen, Array.from({ length: 11 }, (_, i) => `m${i}`));
    } finally {
      for (const client of open) await leave(client);
      for (const server of servers) await server.stop();
      await redis.stop();
    }
  },
});
