// Topics across two workers of one process through a
// BroadcastChannelBackplane: every subscriber in either worker gets every
// message once, each publisher's in its order.

import { assertEquals } from "@std/assert";
import { BroadcastChannelBackplane, connect } from "../mod.ts";

const WORKER = new URL("./topics/worker.ts", import.meta.url);

function startWorker(): Promise<{ port: number; stop(): Promise<void> }> {
  const worker = new Worker(WORKER, { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onerror = (event) => reject(event.error ?? event.message);
    worker.onmessage = (event) => {
      resolve({
        port: event.data.port,
        stop() {
          const { promise, resolve: stopped } = Promise.withResolvers<void>();
          worker.onmessage = (event) => {
            if (event.data === "stopped") {
              worker.terminate();
              stopped();
            }
          };
          worker.postMessage("stop");
          return promise;
        },
      });
    };
  });
}

Deno.test("BroadcastChannel: a message published in either of two workers reaches every subscriber once", async () => {
  const workers = [await startWorker(), await startWorker()];
  const clients = [];
  for (const worker of workers) {
    for (let c = 0; c < 2; c++) {
      const connection = await connect(
        `ws://127.0.0.1:${worker.port}/?t=room`,
      );
      const reader = connection.readable.getReader();
      assertEquals((await reader.read()).value, "ready");
      clients.push({
        connection,
        reader,
        writer: connection.writable.getWriter(),
      });
    }
  }
  const perClient = 10;
  await Promise.all(clients.map(async (client, c) => {
    for (let i = 0; i < perClient; i++) {
      await client.writer.write(`room\n${c}:${i}`);
    }
  }));
  const total = clients.length * perClient;
  for (const client of clients) {
    const got: string[] = [];
    while (got.length < total) {
      const { value, done } = await client.reader.read();
      if (done) throw new Error("the connection ended");
      got.push(value as string);
    }
    assertEquals(new Set(got).size, total);
    for (let c = 0; c < clients.length; c++) {
      assertEquals(
        got.filter((m) => m.startsWith(`${c}:`)),
        Array.from({ length: perClient }, (_, i) => `${c}:${i}`),
      );
    }
  }
  for (const client of clients) {
    client.reader.releaseLock();
    client.writer.releaseLock();
    client.connection.close();
    await client.connection.closed;
  }
  for (const worker of workers) await worker.stop();
});

Deno.test("BroadcastChannelBackplane refuses to publish once closed, and unsubscribes", async () => {
  const a = new BroadcastChannelBackplane({ name: "broadcast-unit" });
  const got: number[] = [];
  const stop = await a.subscribe("t", (bytes) => got.push(bytes[0]!));
  await a.publish("t", new Uint8Array([1]));
  await Promise.resolve();
  stop();
  await a.publish("t", new Uint8Array([2]));
  await Promise.resolve();
  assertEquals(got, [1]);
  a.close();
  let error: unknown;
  try {
    await a.publish("t", new Uint8Array([3]));
  } catch (e) {
    error = e;
  }
  assertEquals(
    (error as TypeError).message,
    "Cannot publish message: the backplane is closed",
  );
});
