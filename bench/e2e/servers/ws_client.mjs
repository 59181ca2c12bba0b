// ws 8 on Node as a client: `node ws_client.mjs PORT CONNS SIZE SECONDS`.
// Each connection keeps one binary message in flight; prints msgs_per_s.
import WebSocket from "ws";
const [port, conns, size, seconds] = process.argv.slice(2).map(Number);
const payload = Buffer.alloc(size, 7);
let measuring = false;
let count = 0;
const sockets = await Promise.all(
  Array.from({ length: conns }, () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, {
        perMessageDeflate: false,
      });
      ws.on("open", () => resolve(ws));
      ws.on("error", reject);
    })),
);
for (const ws of sockets) {
  ws.on("message", (data) => {
    if (data.length !== size) throw new Error("wrong echo");
    if (measuring) count++;
    ws.send(payload);
  });
  ws.send(payload);
}
await new Promise((r) => setTimeout(r, Math.min(1000, seconds * 500)));
measuring = true;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const elapsed = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ msgs_per_s: count / elapsed }));
for (const ws of sockets) ws.terminate();
process.exit(0);
