// The echo server on node:http (route 1 of issue #15): node:http owns the
// listener and every request; its "upgrade" event hands the socket to our
// handshake and connection through the node:stream adapter.
// `deno run -A bench/e2e/servers/node_http.ts --port N`
import { createServer } from "node:http";
import type { Duplex } from "node:stream";
import { acceptOn } from "../../../lib/net/accept.ts";
import { NodeSocketTransport } from "../../../lib/net/_node_transport.ts";

const i = Deno.args.indexOf("--port");
const port = Number(Deno.args[i + 1] ?? 9000);
const server = createServer((_req, res) => res.end("hi\n"));
server.on("upgrade", async (req, socket: Duplex, head: Uint8Array) => {
  (socket as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
  const headers = new Headers();
  for (let j = 0; j < req.rawHeaders.length; j += 2) {
    headers.append(req.rawHeaders[j]!, req.rawHeaders[j + 1]!);
  }
  const request = new Request(`http://${req.headers.host}${req.url}`, {
    headers,
  });
  try {
    const connection = await acceptOn(
      new NodeSocketTransport(socket),
      request,
      { perMessageDeflate: true, head },
    );
    connection.readable.pipeTo(connection.writable).catch(() => {});
  } catch {
    socket.destroy();
  }
});
server.listen(port, "127.0.0.1");
