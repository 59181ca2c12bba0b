/**
 * The live demo, on its embedded default: it starts an echo server on a free
 * port of 127.0.0.1, connects a client to it, exchanges a few messages and a
 * ping, closes cleanly, and shuts the server down. No outside server needed.
 *
 * `deno task demo`
 *
 * @module
 */

import { echoExchange } from "./echo_client.ts";
import { startEchoServer } from "./echo_server.ts";

if (import.meta.main) {
  const server = startEchoServer(0, "127.0.0.1", (addr) => {
    console.log(`echo server listening on ws://${addr.hostname}:${addr.port}/`);
  });
  await echoExchange(`ws://127.0.0.1:${server.addr.port}/`, [
    "hello from websocket-streams",
    "κόσμε 😀 (UTF-8, validated as it arrives)",
    new Uint8Array(100_000).fill(42),
  ]);
  await server.shutdown();
  console.log("server shut down");
  console.log(
    "next: `deno task techniques` serves a page comparing WebSocket with SSE, long and short polling and the iframe stream",
  );
}
