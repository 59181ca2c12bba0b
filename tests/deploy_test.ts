// examples/deploy.ts as Deno Deploy runs it: under `deno serve` in a
// subprocess, with our client and Deno's native WebSocket in the room, and
// under `deno serve --parallel`, where two isolates share the room through
// a BroadcastChannel.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { connect, type WebSocketConnection } from "../mod.ts";

const ENTRY = new URL("../examples/deploy.ts", import.meta.url).pathname;

interface Line {
  from: string;
  text: string;
  isolate?: string;
}

/** The lines a member received, and a wait for one that matches. */
class Inbox {
  seen: Line[] = [];
  #waiting: { test: (line: Line) => boolean; resolve: (l: Line) => void }[] =
    [];

  push(data: string): void {
    const line = JSON.parse(data) as Line;
    this.seen.push(line);
    for (const w of [...this.#waiting]) {
      if (w.test(line)) {
        this.#waiting.splice(this.#waiting.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  /** Waits at most 30 s (generous: the machine may be loaded). */
  waitFor(test: (line: Line) => boolean): Promise<Line> {
    const found = this.seen.find(test);
    if (found) return Promise.resolve(found);
    const { promise, resolve, reject } = Promise.withResolvers<Line>();
    const timer = setTimeout(() => {
      this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
      reject(new Error(`not received; got ${JSON.stringify(this.seen)}`));
    }, 30_000);
    const waiter = {
      test,
      resolve: (line: Line) => {
        clearTimeout(timer);
        resolve(line);
      },
    };
    this.#waiting.push(waiter);
    return promise;
  }

  /** Resolves with the new member's name and isolate from the welcome. */
  async welcome(): Promise<{ name: string; isolate: string }> {
    const line = await this.waitFor((l) => l.isolate !== undefined);
    return {
      name: /welcome, (\S+)/.exec(line.text)![1]!,
      isolate: line.isolate!,
    };
  }
}

/** Our client in the room. */
async function ours(url: string) {
  const connection = await connect(url);
  const inbox = new Inbox();
  const reading = (async () => {
    try {
      for await (const message of connection.readable) {
        inbox.push(message as string);
      }
    } catch {
      // Checked through `closed`.
    }
  })();
  const writer = connection.writable.getWriter();
  return {
    inbox,
    send: (text: string) => writer.write(text),
    async close() {
      writer.releaseLock();
      connection.close({ closeCode: 1000 });
      await connection.closed;
      await reading;
    },
    connection: connection as WebSocketConnection,
  };
}

/** Deno's native WebSocket in the room. */
async function native(url: string) {
  const socket = new WebSocket(url);
  const inbox = new Inbox();
  socket.onmessage = (event) => inbox.push(event.data);
  const closed = new Promise((resolve) => (socket.onclose = resolve));
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  return {
    inbox,
    send: (text: string) => socket.send(text),
    async close() {
      socket.close(1000);
      await closed;
    },
  };
}

/** Sends a raw request head; reads the answer's head and its body. */
async function rawAnswer(http: string, head: string): Promise<string> {
  const url = new URL(http);
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  await conn.write(new TextEncoder().encode(head));
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(16 * 1024);
  let answer = "";
  for (;;) {
    const end = answer.indexOf("\r\n\r\n");
    const length = /content-length: *(\d+)/i.exec(answer)?.[1];
    if (end >= 0 && answer.length >= end + 4 + Number(length ?? 0)) break;
    const n = await conn.read(buffer);
    if (n === null) break;
    answer += decoder.decode(buffer.subarray(0, n));
  }
  conn.close();
  return answer;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** `deno serve` on the example, in a subprocess; resolves once it listens. */
async function deploy(parallel: boolean) {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      ...(parallel ? ["--parallel"] : []),
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      ENTRY,
    ],
    env: parallel ? { DENO_JOBS: "2" } : {},
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const { promise: listening, resolve } = Promise.withResolvers<void>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output += text;
      if (output.includes("Listening on")) resolve();
    }
  };
  const draining = Promise.all([drain(child.stdout), drain(child.stderr)]);
  // Bounded: a server that never listens fails the test, not hangs it.
  const timer = setTimeout(() => resolve(), 60_000);
  await Promise.race([listening, child.status]);
  clearTimeout(timer);
  assertStringIncludes(output, "Listening on", output);
  return {
    http: `http://127.0.0.1:${port}/`,
    ws: `ws://127.0.0.1:${port}/ws`,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await draining;
    },
  };
}

Deno.test("deploy.ts under deno serve: the page, and our client and the native WebSocket in one room", async () => {
  const server = await deploy(false);
  try {
    await room(server);
  } finally {
    await server.stop();
  }
});

async function room(server: Awaited<ReturnType<typeof deploy>>) {
  const page = await fetch(server.http);
  assertEquals(page.status, 200);
  assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
  assertStringIncludes(await page.text(), "<title>websocket-streams chat");
  const notWs = await fetch(new URL("/ws", server.http));
  assertEquals(notWs.status, 426);
  await notWs.body?.cancel();
  // A malformed upgrade gets the answer upgradeWebSocket's error carries
  // (what was wrong, and its status), not a 500.
  const noKey = await rawAnswer(
    server.http,
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  assertStringIncludes(noKey, "HTTP/1.1 400 ");
  assertStringIncludes(noKey, "Sec-WebSocket-Key");
  const oldVersion = await rawAnswer(
    server.http,
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 8\r\n\r\n",
  );
  assertStringIncludes(oldVersion, "HTTP/1.1 426 ");
  assertStringIncludes(oldVersion.toLowerCase(), "sec-websocket-version: 13");

  const alice = await ours(server.ws);
  const aliceIs = await alice.inbox.welcome();
  const bob = await native(server.ws);
  const bobIs = await bob.inbox.welcome();
  // One isolate: both are served by it.
  assertEquals(aliceIs.isolate, bobIs.isolate);
  await alice.inbox.waitFor((l) => l.text === `${bobIs.name} joined`);

  await alice.send("hello from our client");
  await bob.inbox.waitFor((l) =>
    l.from === aliceIs.name && l.text === "hello from our client"
  );
  bob.send("hello from the native WebSocket");
  await alice.inbox.waitFor((l) =>
    l.from === bobIs.name && l.text === "hello from the native WebSocket"
  );

  await bob.close();
  await alice.inbox.waitFor((l) => l.text === `${bobIs.name} left`);
  await alice.close();
}

Deno.test("deploy.ts under deno serve --parallel: two isolates share the room through a BroadcastChannel, with no echo", async () => {
  const server = await deploy(true);
  try {
    await parallelRoom(server);
  } finally {
    await server.stop();
  }
});

async function parallelRoom(server: Awaited<ReturnType<typeof deploy>>) {
  assertStringIncludes(server.output(), "with 2 threads");
  // The kernel spreads connections over the workers' sockets
  // (SO_REUSEPORT): which isolate gets one is not ours to choose, and a
  // worker that is still starting gets none. So connect until two isolates
  // are hit, each known by its welcome, for at most 60 s (generous: the
  // machine may be loaded), closing each connection that adds nothing.
  const byIsolate = new Map<string, Awaited<ReturnType<typeof ours>>>();
  const names = new Map<Awaited<ReturnType<typeof ours>>, string>();
  const deadline = Date.now() + 60_000;
  let tries = 0;
  while (byIsolate.size < 2 && Date.now() < deadline) {
    tries++;
    const member = await ours(server.ws);
    const { name, isolate } = await member.inbox.welcome();
    names.set(member, name);
    if (byIsolate.has(isolate)) {
      await member.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
    } else byIsolate.set(isolate, member);
  }
  assertEquals(
    byIsolate.size,
    2,
    `${tries} connections in 60 s all reached one isolate`,
  );
  const [alice, bob] = [...byIsolate.values()] as [
    Awaited<ReturnType<typeof ours>>,
    Awaited<ReturnType<typeof ours>>,
  ];
  const aliceName = names.get(alice)!;
  const bobName = names.get(bob)!;

  // Alice's lines cross to Bob's isolate through the channel.
  await alice.send("m1");
  await alice.send("m2");
  await bob.inbox.waitFor((l) => l.from === aliceName && l.text === "m2");
  // And Bob's to Alice's. The channel keeps one sender's order, so had
  // Bob's isolate posted m1 or m2 back, Alice would see it before "end".
  await bob.send("end");
  await alice.inbox.waitFor((l) => l.from === bobName && l.text === "end");
  // Bob's own copy of "end" comes from his isolate, and may come later
  // than Alice's through the channel.
  await bob.inbox.waitFor((l) => l.from === bobName && l.text === "end");
  const fromAlice = (inbox: { seen: Line[] }) =>
    inbox.seen.filter((l) => l.from === aliceName).map((l) => l.text);
  assertEquals(fromAlice(alice.inbox), ["m1", "m2"]);
  assertEquals(fromAlice(bob.inbox), ["m1", "m2"]);
  assert(
    bob.inbox.seen.filter((l) => l.text === "end").length === 1,
    JSON.stringify(bob.inbox.seen),
  );

  await alice.close();
  await bob.close();
}
