/**
 * Memory per idle connection: `deno run -A bench/e2e/idle.ts SCRIPT COUNT`.
 * Starts the server script (with a heap probe), opens COUNT WebSocket
 * connections from this process with raw handshakes, lets them idle, and
 * prints the server's RSS and JS heap growth per connection as JSON.
 *
 * @module
 */

const [script, countText] = Deno.args as [string, string];
const count = Number(countText);
const root = new URL("../../", import.meta.url).pathname;
const heapFile = await Deno.makeTempFile();
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;
listener.close();
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    `${root}bench/e2e/servers/heap_wrap.ts`,
    `${root}${script}`,
    "--port",
    `${port}`,
  ],
  env: { HEAP_FILE: heapFile },
  stdout: "null",
  stderr: "inherit",
}).spawn();

async function waitPort(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error("server did not start");
}

function rss(): number {
  const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
}

async function heap(): Promise<number> {
  Deno.writeTextFileSync(heapFile, "");
  child.kill("SIGUSR1");
  for (let i = 0; i < 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const text = Deno.readTextFileSync(heapFile);
    if (text) return JSON.parse(text).heapUsed;
  }
  throw new Error("no heap report");
}

await waitPort();
await new Promise((resolve) => setTimeout(resolve, 300));
const heap0 = await heap();
const rss0 = rss();
const request = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);
const conns: Deno.Conn[] = [];
const buffer = new Uint8Array(1024);
for (let i = 0; i < count; i += 100) {
  await Promise.all(
    Array.from({ length: Math.min(100, count - i) }, async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(request);
      await conn.read(buffer);
      conns.push(conn);
    }),
  );
}
await new Promise((resolve) => setTimeout(resolve, 1000));
const heap1 = await heap();
const rss1 = rss();
console.log(JSON.stringify({
  count,
  rssPerConn: (rss1 - rss0) / count,
  heapPerConn: (heap1 - heap0) / count,
}));
for (const conn of conns) conn.close();
child.kill("SIGKILL");
await child.status;
await Deno.remove(heapFile);
