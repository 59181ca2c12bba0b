// The server side of bench/fanout.ts, in its own process so that its CPU is
// its own: `deno run -A bench/fanout/server.ts ours|native`. It prints
// `{"port":N}`; WebSockets at `/` subscribe; `GET /go?m=M&size=S` publishes M
// text messages of S bytes to every subscriber, one turn each, and answers
// with the CPU time the process has used (`GET /cpu` answers it alone).

import process from "node:process";
import { serve, Topics } from "../../mod.ts";

const mode = Deno.args[0] ?? "ours";
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return Response.json({ cpuMicros: user + system });
};
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

if (mode === "ours") {
  const topics = new Topics({ maxBufferedAmount: 16 * 1024 * 1024 });
  serve({
    port: 0,
    hostname: "127.0.0.1",
    perMessageDeflate: false,
    onListen: (addr) => console.log(JSON.stringify({ port: addr.port })),
    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === "/go") {
        const text = "x".repeat(Number(url.searchParams.get("size")));
        for (let i = 0; i < Number(url.searchParams.get("m")); i++) {
          await topics.publish("bench", text);
          await turn();
        }
      }
      return cpu();
    },
  }, (connection) => {
    topics.subscribe(connection, "bench");
    connection.readable.pipeTo(new WritableStream()).catch(() => {});
  });
} else {
  // The usual loop over Deno's native sockets.
  const sockets = new Set<WebSocket>();
  Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: (addr) => console.log(JSON.stringify({ port: addr.port })),
  }, async (request) => {
    if (request.headers.get("upgrade") === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onopen = () => sockets.add(socket);
      socket.onclose = () => sockets.delete(socket);
      return response;
    }
    const url = new URL(request.url);
    if (url.pathname === "/go") {
      const text = "x".repeat(Number(url.searchParams.get("size")));
      for (let i = 0; i < Number(url.searchParams.get("m")); i++) {
        for (const socket of sockets) socket.send(text);
        await turn();
      }
    }
    return cpu();
  });
}
