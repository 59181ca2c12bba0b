/**
 * The chat room of `examples/chat.ts` over several processes: each process
 * serves the page at `/` and the WebSocket at `/ws`, and its members'
 * messages reach the members of every process through Redis.
 *
 * `deno run -A examples/chat_cluster.ts --port 8001 --redis redis://127.0.0.1:6379 [--mode pubsub|streams] [--hostname 127.0.0.1]`
 *
 * Run it twice, on two ports, against one Redis; open both pages. It prints
 * the URL once it listens and the room is joined.
 *
 * @module
 */

import { startChat } from "./chat.ts";
import { RedisBackplane, type RedisBackplaneMode } from "../redis/mod.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

if (import.meta.main) {
  const port = Number(flag("port", "8000"));
  const backplane = new RedisBackplane({
    url: flag("redis", "redis://127.0.0.1:6379"),
    mode: flag("mode", "pubsub") as RedisBackplaneMode,
    onError: (error) => console.error(`redis: ${error}`),
  });
  const chat = startChat({
    port,
    hostname: flag("hostname", "127.0.0.1"),
    backplane,
    // Guests of different processes get different names.
    prefix: `${port}/`,
  });
  console.log(`chat: open ${chat.url}`);
  const stop = async () => {
    await chat.shutdown();
    backplane.close();
    Deno.exit();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
