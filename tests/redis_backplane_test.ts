// RedisBackplane alone on a real redis-server (tests/_redis.ts): what
// subscribe() promises once it resolves.

import { assertEquals } from "@std/assert";
import { RedisBackplane } from "../redis/mod.ts";
import { hasRedis, startRedis } from "./_redis.ts";

// ioredis 5.9.3 (issue #2037): a SUBSCRIBE sent while the client is still
// connecting races its ready check (INFO), which then fails with
// "Connection in subscriber mode…"; ioredis drops and redoes the connection,
// and a message published right after subscribe() resolved is lost.
Deno.test({
  name:
    "pub/sub: subscribe() right after the backplane is made is active, with no error",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const problems: string[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const errors: string[] = [];
        const backplane = new RedisBackplane({
          url: redis.url,
          onError: (e) => errors.push(String(e)),
        });
        // Vary where in the connection's startup the SUBSCRIBE lands.
        await new Promise((r) => setTimeout(r, i % 4));
        const got = Promise.withResolvers<boolean>();
        const stop = await backplane.subscribe("room", () => got.resolve(true));
        await backplane.publish("room", new Uint8Array([1]));
        // Generous: the machine is shared; a lost message never comes.
        const timer = setTimeout(() => got.resolve(false), 5000);
        const arrived = await got.promise;
        clearTimeout(timer);
        if (!arrived || errors.length) {
          problems.push(
            `#${i}: arrived=${arrived} errors=${errors.join("; ")}`,
          );
        }
        stop();
        backplane.close();
        await backplane.finished;
      }
    } finally {
      await redis.stop();
    }
    assertEquals(problems, []);
  },
});

// A topic subscribed while the reader asks Redis for its client id (the
// first XREAD's CLIENT ID) used to wait out the whole blocking XREAD: the
// reader could not be interrupted (CLIENT UNBLOCK needs the id), and its
// XREAD named only the topics known before the id came.
Deno.test({
  name:
    "streams: topics subscribed together are all read at once, whatever blockTimeout",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    const backplane = new RedisBackplane({
      url: redis.url,
      mode: "streams",
      // Far beyond the wait below: a missed interrupt shows as a timeout.
      blockTimeout: 600_000,
    });
    try {
      for (const topic of ["a", "b", "c"]) {
        const got = Promise.withResolvers<string>();
        const stops = await Promise.all(
          ["x", "y", topic].map((t) =>
            backplane.subscribe(t + topic, () => got.resolve(t))
          ),
        );
        await backplane.publish(topic + topic, new Uint8Array([1]));
        let timer: ReturnType<typeof setTimeout> | undefined;
        const arrived = await Promise.race([
          got.promise,
          new Promise<string>((r) =>
            timer = setTimeout(() => r("none"), 20_000)
          ),
        ]);
        clearTimeout(timer);
        assertEquals(arrived, topic);
        for (const stop of stops) stop();
      }
    } finally {
      backplane.close();
      await backplane.finished;
      await redis.stop();
    }
  },
});

// close() only asks the clients to disconnect: ioredis ends each socket and
// keeps a timer (0.5 s here) that destroys it if the server never closes its side.
// `finished` must wait for both sockets, or a caller that awaits it and
// exits leaves them, and that timer, behind (a leak the sanitizers caught
// on a loaded CI machine). A frozen server does not answer the FIN, so
// while it is frozen `finished` must stay pending; once it is thawed and
// `finished` resolves, the server has no client of ours left.
Deno.test({
  name: "finished waits until Redis has closed both connections",
  ignore: !hasRedis,
  async fn(t) {
    const redis = await startRedis();
    try {
      for (const mode of ["pubsub", "streams"] as const) {
        await t.step(mode, async () => {
          const backplane = new RedisBackplane({ url: redis.url, mode });
          const got = Promise.withResolvers<void>();
          const stop = await backplane.subscribe("room", () => got.resolve());
          await backplane.publish("room", new Uint8Array([1]));
          await got.promise;
          stop();
          assertEquals(await clientCount(redis.port), 2);
          redis.pause();
          let settled = false;
          try {
            backplane.close();
            backplane.finished.then(() => settled = true);
            // A window, not a timing: ioredis destroys the sockets after 0.5 s.
            await new Promise((r) => setTimeout(r, 100));
          } finally {
            redis.resume();
          }
          assertEquals(settled, false, "finished resolved with sockets open");
          await backplane.finished;
          assertEquals(await clientCount(redis.port), 0);
        });
      }
    } finally {
      await redis.stop();
    }
  },
});

/** How many clients redis-server has, not counting the one that asks. */
async function clientCount(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("CLIENT LIST\r\n"));
    // A bulk string: "$<length>\r\n<lines>\r\n".
    let text = "";
    const buffer = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("redis-server closed the connection");
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const head = text.indexOf("\r\n");
      if (head < 0) continue;
      const length = Number(text.slice(1, head));
      if (text.length >= head + 2 + length) {
        const body = text.slice(head + 2, head + 2 + length);
        return body.split("\n").filter((line) => line.trim()).length - 1;
      }
    }
  } finally {
    conn.close();
  }
}

// Redis gone when close() is called: ioredis is waiting to reconnect, its
// commands (the reader's XREAD) never settle, and disconnect() emits no
// "end" (and starts a destroy timer of its own). `finished` must still
// resolve, and leave nothing open (one test per mode: a step's sanitizers
// do not see timers).
for (const mode of ["pubsub", "streams"] as const) {
  Deno.test({
    name:
      `${mode}: finished resolves, leaving nothing open, when Redis is down at close()`,
    ignore: !hasRedis,
    async fn() {
      const redis = await startRedis();
      const backplane = new RedisBackplane({ url: redis.url, mode });
      const got = Promise.withResolvers<void>();
      const stop = await backplane.subscribe("room", () => got.resolve());
      await backplane.publish("room", new Uint8Array([1]));
      await got.promise;
      await redis.stop();
      // Long enough for both clients to see the loss.
      await new Promise((r) => setTimeout(r, 500));
      stop();
      backplane.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        backplane.finished.then(() => "finished"),
        new Promise((r) => timer = setTimeout(() => r("pending"), 10_000)),
      ]);
      clearTimeout(timer);
      assertEquals(outcome, "finished");
    },
  });
}

// close() at every point of the connections' start: ioredis 5.9.3's ready
// check, cut by close(), made it disconnect the closed socket a second
// time, and that destroy timer outlived `finished` (the sanitizers see it).
Deno.test({
  name: "close() right after the backplane is made leaves nothing open",
  ignore: !hasRedis,
  async fn() {
    const redis = await startRedis();
    try {
      for (let i = 0; i < 60; i++) {
        const backplane = new RedisBackplane({ url: redis.url });
        await new Promise((r) => setTimeout(r, i % 3));
        backplane.close();
        await backplane.finished;
      }
    } finally {
      await redis.stop();
    }
  },
});
