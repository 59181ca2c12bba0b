/**
 * The slow consumer: a peer tries to send 1 GiB (1 MiB binary frames) to our
 * server, whose handler never reads. Prints how much the peer got written in
 * 10 s and the server's peak RSS, against its configured bound.
 *
 * `deno run -A bench/e2e/slow.ts`
 *
 * @module
 */

const root = new URL("../../", import.meta.url).pathname;
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;
listener.close();
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}bench/e2e/servers/stall.ts`, "--port", `${port}`],
  stdout: "null",
  stderr: "inherit",
}).spawn();
for (let i = 0; i < 300; i++) {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    break;
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const status = (field: string) =>
  Number(
    new RegExp(`${field}:\\s+(\\d+)`).exec(
      Deno.readTextFileSync(`/proc/${child.pid}/status`),
    )![1],
  ) * 1024;
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
await conn.write(new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
));
await conn.read(new Uint8Array(1024));
const base = status("VmRSS");
// One masked 1 MiB binary frame, zero key: the payload is the mask's XOR.
const frame = new Uint8Array(14 + (1 << 20));
frame.set([0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]);
let written = 0;
const deadline = Date.now() + 10_000;
const writing = (async () => {
  while (written < 1 << 30 && Date.now() < deadline) {
    written += await conn.write(frame);
  }
})().catch(() => {});
await Promise.race([writing, new Promise((r) => setTimeout(r, 10_000))]);
const peak = status("VmHWM");
console.log(
  `slow consumer: the peer wrote ${
    (written / 2 ** 20).toFixed(1)
  } MiB of 1024 in 10 s; ` +
    `our server's peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB ` +
    `(${
      (base / 2 ** 20).toFixed(0)
    } MiB before; readableHighWaterMark 1 MiB + one 1 MiB frame)`,
);
child.kill("SIGKILL");
await child.status;
conn.close();
Deno.exit(0);
