// A raw TCP byte echo with conn.readable.pipeTo(conn.writable).
// `deno run -A bench/e2e/servers/raw_pipe.ts --port N`
const i = Deno.args.indexOf("--port");
const port = Number(Deno.args[i + 1] ?? 9000);
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`raw pipe listening on ${port}`);
for await (const conn of listener) {
  conn.setNoDelay(true);
  conn.readable.pipeTo(conn.writable).catch(() => {});
}
