// Our server whose handler never reads: the slow-consumer case.
// `deno run -A bench/e2e/servers/stall.ts --port N`
import { serve } from "../../../mod.ts";
const i = Deno.args.indexOf("--port");
serve({
  port: Number(Deno.args[i + 1] ?? 9000),
  hostname: "127.0.0.1",
  perMessageDeflate: false,
  onListen: ({ port }) => console.log(`stall listening on ${port}`),
}, () => {});
