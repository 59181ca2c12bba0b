// Many connections flushing in the same turn of the event loop. Deno polls
// each I/O op once as it starts, within tokio's cooperative budget of 128
// polls per turn; an op started past the budget waits, and on a busy event
// loop it waited for as long as the load lasted (bench/op_starvation.ts:
// of 800 writes, 128 or 256 went at once, the rest after up to 19 s). That
// stalled `deno task soak`: 1,000 clients flushed in one microtask, 872
// writes waited, and one passed sendTimeout. So the writers start at most
// 100 socket writes per turn, and the rest in a later one (lib/net/_turns.ts).
//
// What is checked: the socket writes started per macrotask (a 0 ms timer's
// span, one turn or more: stricter than the budget asks), counted on the
// real Deno.Conn (its prototype's write, wrapped), and that every message
// still reaches the peer. Without the bound, all 300 started in one.

import { assert, assertEquals } from "@std/assert";
import { connect, serve } from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import { writesCounted } from "../lib/net/_turns.ts";

// tokio's budget (tokio::runtime::coop): past it, an op's first poll fails.
const RUNTIME_BUDGET = 128;
const CLIENTS = 300;

Deno.test(`${CLIENTS} connections flushing in one turn start at most ${RUNTIME_BUDGET} socket writes per turn, and every message arrives`, async () => {
  let received = 0;
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (connection) => {
      for await (const _ of connection.readable) received++;
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, () => connect(url)),
  );

  // Every TCP connection shares the prototype of this one.
  const probe = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const proto = Object.getPrototypeOf(probe) as Deno.Conn;
  probe.close();
  const write = proto.write;
  let inTurn = 0;
  let most = 0;
  let total = 0;
  proto.write = function (this: Deno.Conn, bytes: Uint8Array) {
    total++;
    // A macrotask ends the turn: the first write of a turn sets it.
    if (inTurn++ === 0) {
      setTimeout(() => {
        most = Math.max(most, inTurn);
        inTurn = 0;
      }, 0);
    }
    return write.call(this, bytes);
  };
  try {
    // All in one turn: each write() resolves at once (under the
    // high-water mark), and each connection's flush is queued.
    const writers = clients.map((client) => client.writable.getWriter());
    await Promise.all(writers.map((writer, i) => writer.write(`hello ${i}`)));
    for (const writer of writers) writer.releaseLock();
    // Generous: a lost write fails here, not as a hung test.
    const deadline = Date.now() + 30_000;
    while (received < CLIENTS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  } finally {
    proto.write = write;
  }
  assert(total >= CLIENTS, `only ${total} socket writes`);
  assert(
    most <= RUNTIME_BUDGET,
    `${most} socket writes started in one turn`,
  );
  assertEquals(received, CLIENTS);

  for (const client of clients) client.close({ closeCode: 1000 });
  await Promise.all(clients.map((client) => client.closed));
  await server.shutdown();
});

// The cap is for Deno ops. A connection over a byte pair writes in
// JavaScript: its writes must neither wait for a turn nor take the room of
// the socket writes beside it (counted, they made bench/pipeline.ts 6×
// slower, each 100 writes waiting for a timer).
Deno.test("connections over byte pairs are not counted against a turn's socket writes", async () => {
  const pairs = Array.from({ length: 300 }, () => {
    const up = new TransformStream<Uint8Array, Uint8Array>();
    const down = new TransformStream<Uint8Array, Uint8Array>();
    return {
      client: new TransportWebSocket(
        { readable: down.readable, writable: up.writable },
        { role: "client" },
      ),
      server: new TransportWebSocket(
        { readable: up.readable, writable: down.writable },
        { role: "server" },
      ),
    };
  });
  const counted = writesCounted();
  const writers = pairs.map(({ client }) => client.writable.getWriter());
  await Promise.all(writers.map((writer, i) => writer.write(`hello ${i}`)));
  for (const [i, { server }] of pairs.entries()) {
    const reader = server.readable.getReader();
    assertEquals((await reader.read()).value, `hello ${i}`);
    reader.releaseLock();
  }
  assertEquals(writesCounted(), counted, "byte-pair writes were counted");
  for (const writer of writers) writer.releaseLock();
  for (const { client } of pairs) client.close({ closeCode: 1000 });
  for (const { client, server } of pairs) {
    server.readable.cancel().catch(() => {});
    await client.closed;
    await server.closed.catch(() => {});
  }
});
