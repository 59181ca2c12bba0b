// Our echo server (examples/echo_server.ts) started at top level, so that
// heap_wrap.ts can import it: `deno run -A bench/e2e/servers/ours.ts --port N`
import { startEchoServer } from "../../../examples/echo_server.ts";
const i = Deno.args.indexOf("--port");
startEchoServer(Number(Deno.args[i + 1] ?? 9000), "127.0.0.1", () => {});
