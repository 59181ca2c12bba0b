// The server side of bench/fanout.ts for npm:ws 8 on Node, the usual loop
// (`for (const socket of wss.clients) socket.send(text)`), with the same
// endpoints as bench/fanout/server.ts: it prints `{"port":N}`; WebSockets
// at `/` subscribe; `GET /go?m=M&size=S` sends M messages of S bytes to
// every client, one turn each; `GET /cpu` answers the CPU time used.
// `node bench/fanout/ws_server.mjs` with ws installed beside it (bench/.cache/node).
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const cpu = (response) => {
  const { user, system } = process.cpuUsage();
  response.setHeader("content-type", "application/json");
  response.end(JSON.stringify({ cpuMicros: user + system }));
};
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const server = createServer(async (request, response) => {
  const url = new URL(request.url, "http://127.0.0.1");
  if (url.pathname === "/go") {
    const text = "x".repeat(Number(url.searchParams.get("size")));
    for (let i = 0; i < Number(url.searchParams.get("m")); i++) {
      for (const socket of wss.clients) socket.send(text);
      await turn();
    }
  }
  cpu(response);
});
server.on("upgrade", (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws));
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
