/**
 * Our server with a handler that keeps each connection and reads nothing:
 * what a connection itself costs while idle, without the application's
 * `pipeTo` (bench/e2e/idle.ts, the memory table).
 * `deno run -A bench/e2e/servers/hold.ts --port N`
 *
 * @module
 */
import { serve, type WebSocketConnection } from "../../../mod.ts";

const i = Deno.args.indexOf("--port");
// Kept until the process is killed, as the benchmark does: no promise or
// closure per connection of the benchmark's own to blur the figure.
const held: WebSocketConnection[] = [];
serve(
  {
    port: Number(Deno.args[i + 1] ?? 9000),
    hostname: "127.0.0.1",
    onListen() {},
  },
  (connection) => {
    held.push(connection);
  },
);
