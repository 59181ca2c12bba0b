/**
 * An echo server: every message comes back as it went.
 *
 * `deno run -A examples/echo_server.ts --port 8080 [--hostname 127.0.0.1]`
 *
 * It prints one line when it listens.
 *
 * @module
 */

import { serve, type WebSocketServer } from "../mod.ts";

/**
 * Starts the echo server.
 *
 * @param port The port; 0 picks a free one.
 * @param hostname The address to listen on.
 * @param onListen Called with the address once listening.
 * @returns The server.
 */
export function startEchoServer(
  port: number,
  hostname = "127.0.0.1",
  onListen?: (addr: Deno.NetAddr) => void,
): WebSocketServer {
  // permessage-deflate is accepted whatever the library's default is.
  return serve(
    { port, hostname, onListen, perMessageDeflate: true },
    (connection) => {
      // Backpressure end to end: pipeTo reads only as fast as it can write.
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
}

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

if (import.meta.main) {
  const server = startEchoServer(
    Number(flag("port", "8080")),
    flag("hostname", "127.0.0.1"),
    (addr) =>
      console.log(
        `echo server listening on ws://${addr.hostname}:${addr.port}/`,
      ),
  );
  Deno.addSignalListener("SIGINT", () => server.shutdown());
  await server.finished;
}
