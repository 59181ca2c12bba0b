// npm:ws 8 on Node, echo. WS_NO_BUFFER_UTIL=1 turns bufferutil off.
// `node bench/e2e/servers/ws_server.mjs --port N` (ws from bench/.cache/node)
import { WebSocketServer } from "ws";
const i = process.argv.indexOf("--port");
const port = Number(process.argv[i + 1] ?? 9000);
const deflate = process.argv.includes("--deflate");
const wss = new WebSocketServer({
  port,
  host: "127.0.0.1",
  perMessageDeflate: deflate ? { threshold: 1024 } : false,
  maxPayload: 32 * 1024 * 1024,
});
wss.on("listening", () => console.log(`ws listening on ${port}`));
wss.on("connection", (socket) => {
  socket.on(
    "message",
    (data, isBinary) => socket.send(data, { binary: isBinary }),
  );
});
