/**
 * A client-side echo benchmark: `deno run -A bench/e2e/client.ts
 * ours|native PORT CONNS SIZE SECONDS`. Each connection keeps one binary
 * message in flight; prints `{"msgs_per_s": …}`.
 *
 * @module
 */

import { connect } from "../../mod.ts";

const [impl, ...rest] = Deno.args;
const [port, conns, size, seconds] = rest.map(Number) as [
  number,
  number,
  number,
  number,
];
const url = `ws://127.0.0.1:${port}/`;
const payload = new Uint8Array(size).fill(7);
let measuring = false;
let stop = false;
let count = 0;

async function ours(): Promise<() => void> {
  const client = await connect(url, { perMessageDeflate: false });
  const writer = client.writable.getWriter();
  const reader = client.readable.getReader();
  (async () => {
    await writer.write(payload);
    while (!stop) {
      const { value, done } = await reader.read();
      if (done) break;
      if ((value as Uint8Array).byteLength !== size) {
        throw new Error("wrong echo");
      }
      if (measuring) count++;
      await writer.write(payload);
    }
  })().catch(() => {});
  return () => client.close();
}

async function native(): Promise<() => void> {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  socket.onmessage = (event) => {
    if ((event.data as ArrayBuffer).byteLength !== size) {
      throw new Error("wrong echo");
    }
    if (measuring) count++;
    if (!stop) socket.send(payload);
  };
  socket.send(payload);
  return () => socket.close();
}

const closers = await Promise.all(
  Array.from({ length: conns }, () => impl === "native" ? native() : ours()),
);
await new Promise((resolve) =>
  setTimeout(resolve, Math.min(1000, seconds * 500))
);
measuring = true;
const t0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
measuring = false;
const elapsed = (performance.now() - t0) / 1000;
stop = true;
console.log(JSON.stringify({ msgs_per_s: count / elapsed }));
for (const close of closers) close();
Deno.exit(0);
