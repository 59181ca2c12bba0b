// Our echo server with permessage-deflate accepted with context takeover,
// as ws's perMessageDeflate server does, for the deflate scenario.
// `deno run -A bench/e2e/servers/ours_deflate.ts --port N`
import { serve } from "../../../mod.ts";
const i = Deno.args.indexOf("--port");
serve({
  port: Number(Deno.args[i + 1] ?? 9000),
  hostname: "127.0.0.1",
  perMessageDeflate: { threshold: 1024 },
  onListen: ({ port }) => console.log(`ours deflate listening on ${port}`),
}, (connection) => {
  connection.readable.pipeTo(connection.writable).catch(() => {});
});
