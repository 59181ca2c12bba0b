// A topics server for the cross-process tests, run as its own process:
// `deno run -A tests/topics/server.ts --redis URL [--mode pubsub|streams]
// [--stamp]`. It prints `{"port":N}` once it listens. A client connects to
// `/?t=a,b` (with `&since=ID` to resume; `--stamp` sends each message as
// `{"id","data"}`),
// is sent "ready" once its topics are subscribed everywhere, and each text
// it sends as `topic\npayload` is published. It stops when stdin ends.

import { serve, Topics } from "../../mod.ts";
import { RedisBackplane, type RedisBackplaneMode } from "../../redis/mod.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

const backplane = new RedisBackplane({
  url: flag("redis", "redis://127.0.0.1:6379"),
  mode: flag("mode", "pubsub") as RedisBackplaneMode,
});
const topics = new Topics({
  backplane,
  stamp: Deno.args.includes("--stamp")
    ? (message, { id }) => JSON.stringify({ id, data: message })
    : undefined,
});
const server = serve(
  {
    port: 0,
    hostname: "127.0.0.1",
    onListen: (addr) => console.log(JSON.stringify({ port: addr.port })),
  },
  async (connection, request) => {
    const params = new URL(request.url).searchParams;
    const names = params.get("t")!.split(",");
    const since = params.get("since") ?? undefined;
    await Promise.all(
      names.map((name) => topics.subscribe(connection, name, { since })),
    );
    const writer = connection.writable.getWriter();
    await writer.write("ready");
    writer.releaseLock();
    try {
      for await (const message of connection.readable) {
        const text = message as string;
        const at = text.indexOf("\n");
        await topics.publish(text.slice(0, at), text.slice(at + 1));
      }
    } catch {
      // The connection failed: it has left its topics.
    }
  },
);

// Stop when the test closes our stdin.
for await (const _ of Deno.stdin.readable) {
  // Nothing is read but the end.
}
await server.shutdown();
topics.close();
backplane.close();
await backplane.finished;
