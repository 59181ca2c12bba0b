/**
 * Server memory per connection with permessage-deflate, for the defaults
 * decision (issue: deflate memory at 1,000 connections).
 *
 * `deno run -A bench/deflate_memory.ts [--connections 1000]`
 *
 * For each mode it starts a server process (this file with `--serve`), opens
 * N client connections from this process, sends one 2.7 KiB JSON message on
 * each (so both directions have compressed once) and reads the server's
 * RSS (/proc) and JS heap (after a GC) with the connections idle.
 *
 * @module
 */

import { connect, serve } from "../mod.ts";

const MODES = {
  "no deflate": false,
  "deflate, default policy (no context takeover, pooled)": true,
  "deflate, context takeover": {},
} as const;

type Mode = keyof typeof MODES;

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

const JSON_MESSAGE = JSON.stringify(
  Array.from({ length: 40 }, (_, i) => ({
    id: i,
    name: `user${i}`,
    active: i % 2 === 0,
    tags: ["a", "b"],
    score: i * 1.5,
  })),
);

if (Deno.args.includes("--serve")) {
  const mode = flag("serve", "no deflate") as Mode;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    perMessageDeflate: MODES[mode],
    onListen: (addr) => console.log(addr.port),
  }, async (connection) => {
    const reader = connection.readable.getReader();
    const writer = connection.writable.getWriter();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({
        value: undefined,
        done: true,
      }));
      if (done) break;
      if (value === "stats") {
        // deno-lint-ignore no-explicit-any
        (globalThis as any).gc?.();
        await writer.write(JSON.stringify(Deno.memoryUsage()));
      } else {
        await writer.write(value!).catch(() => {});
      }
    }
  });
  await server.finished;
} else {
  const count = Number(flag("connections", "1000"));
  const rows: string[] = [];
  for (const mode of Object.keys(MODES) as Mode[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "--serve",
        mode,
      ],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const port = Number((await reader.read()).value!.trim());
    const rss = () =>
      Number(
        /VmRSS:\s+(\d+)/.exec(
          Deno.readTextFileSync(`/proc/${child.pid}/status`),
        )![1],
      ) * 1024;
    const url = `ws://127.0.0.1:${port}/`;
    const stats = async () => {
      const c = await connect(url, { perMessageDeflate: false });
      const w = c.writable.getWriter();
      const r = c.readable.getReader();
      await w.write("stats");
      const value = JSON.parse((await r.read()).value as string);
      r.releaseLock();
      w.releaseLock();
      c.close();
      await c.closed.catch(() => {});
      return value as Deno.MemoryUsage;
    };
    const heap0 = (await stats()).heapUsed;
    const rss0 = rss();
    const clients = [];
    for (let i = 0; i < count; i++) {
      const client = await connect(url, {
        perMessageDeflate: { threshold: 0 },
      });
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      await writer.write(JSON_MESSAGE);
      await reader.read();
      writer.releaseLock();
      reader.releaseLock();
      clients.push(client);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const heap1 = (await stats()).heapUsed;
    const rss1 = rss();
    rows.push(
      `| ${mode} | ${count} | ${((rss1 - rss0) / count / 1024).toFixed(1)} | ${
        ((heap1 - heap0) / count / 1024).toFixed(1)
      } |`,
    );
    for (const client of clients) client.close();
    await Promise.all(clients.map((c) => c.closed.catch(() => {})));
    child.kill();
    await child.status;
    await reader.cancel();
  }
  console.log(
    "| server mode | connections | RSS KiB/conn | JS heap KiB/conn |",
  );
  console.log("|---|---:|---:|---:|");
  for (const row of rows) console.log(row);
}
