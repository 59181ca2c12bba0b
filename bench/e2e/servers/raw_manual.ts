// A raw TCP byte echo with manual conn.read/conn.write: no framing at all,
// the ceiling for any server written for Deno.
// `deno run -A bench/e2e/servers/raw_manual.ts --port N`
const i = Deno.args.indexOf("--port");
const port = Number(Deno.args[i + 1] ?? 9000);
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`raw manual listening on ${port}`);
for await (const conn of listener) {
  conn.setNoDelay(true);
  (async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await conn.write(buffer.subarray(off, n));
      }
    } catch { /* peer gone */ }
    try {
      conn.close();
    } catch { /* closed */ }
  })();
}
