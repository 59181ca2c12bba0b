// Our upgradeWebSocket adapter over Deno.serve, echo through its streams.
// `deno run -A bench/e2e/servers/upgrade.ts --port N`
import { upgradeWebSocket } from "../../../mod.ts";
const i = Deno.args.indexOf("--port");
const port = Number(Deno.args[i + 1] ?? 9000);
Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(`upgrade listening on ${port}`),
}, (request) => {
  const { response, connection } = upgradeWebSocket(request);
  connection.readable.pipeTo(connection.writable).catch(() => {});
  return response;
});
