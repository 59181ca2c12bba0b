/**
 * The Deno load generator, for machines without `wsload` (a C compiler or
 * `../shared/wsbench`). It speaks through our own `connect()` client, in
 * several worker processes, and prints one JSON line in wsload's format
 * (the fields the harness reads). A JavaScript generator on 2 cores
 * saturates before a fast server does, so its figures understate the
 * server; compare servers only within one run.
 *
 * `deno run -A bench/e2e/loadgen.ts --port P --conns N --outstanding K
 *   --size B [--text] [--seconds S] [--warmup W] [--deflate] [--workers 2]`
 *
 * @module
 */

import { connect } from "../../mod.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

const port = Number(flag("port", "9000"));
const conns = Number(flag("conns", "10"));
const outstanding = Number(flag("outstanding", "1"));
const size = Number(flag("size", "32"));
const seconds = Number(flag("seconds", "3"));
const warmup = Number(flag("warmup", "1"));
const text = Deno.args.includes("--text");
const deflate = Deno.args.includes("--deflate");
const workers = Number(flag("workers", "2"));

/** A JSON-like payload of `size` bytes, so that deflate has work to do. */
function payloadOf(): string | Uint8Array {
  let json = "";
  for (let i = 0; json.length < size; i++) {
    json += JSON.stringify({ id: i, user: `user-${i % 97}`, ok: i % 3 === 0 });
  }
  json = json.slice(0, size);
  return text ? json : new TextEncoder().encode(json);
}

async function worker(count: number): Promise<void> {
  const payload = payloadOf();
  let measuring = false;
  let messages = 0;
  let stop = false;
  const latencies: number[] = [];
  const tasks = [];
  for (let c = 0; c < count; c++) {
    const client = await connect(`ws://127.0.0.1:${port}/`, {
      perMessageDeflate: deflate ? { threshold: 0 } : false,
    });
    tasks.push((async () => {
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      const sent: number[] = [];
      for (let k = 0; k < outstanding; k++) {
        sent.push(performance.now());
        writer.write(payload).catch(() => {});
      }
      while (!stop) {
        const { value, done } = await reader.read();
        if (done) break;
        const length = typeof value === "string"
          ? value.length
          : value!.byteLength;
        if (length !== size) throw new Error("echo of the wrong size");
        const start = sent.shift()!;
        if (measuring) {
          messages++;
          if (latencies.length < 100_000) {
            latencies.push(performance.now() - start);
          }
        }
        sent.push(performance.now());
        writer.write(payload).catch(() => {});
      }
      reader.releaseLock();
      writer.releaseLock();
      client.close();
      await client.closed.catch(() => {});
    })());
  }
  await new Promise((resolve) => setTimeout(resolve, warmup * 1000));
  measuring = true;
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.race([
    Promise.all(tasks),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    msgs: messages,
    seconds: elapsed,
    p50_us: (latencies[latencies.length >> 1] ?? 0) * 1000,
  }));
  Deno.exit(0);
}

if (Deno.args.includes("--worker")) {
  await worker(Number(flag("worker-conns", "1")));
} else {
  const per = Math.ceil(conns / workers);
  const children = [];
  for (let w = 0, left = conns; w < workers && left > 0; w++, left -= per) {
    children.push(
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          ...Deno.args,
          "--worker",
          "--worker-conns",
          String(Math.min(per, left)),
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output(),
    );
  }
  const results = (await Promise.all(children)).map((out) =>
    JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!)
  );
  const msgs = results.reduce((n, r) => n + r.msgs, 0);
  const elapsed = Math.max(...results.map((r) => r.seconds));
  console.log(JSON.stringify({
    generator: "deno",
    conns,
    outstanding,
    size,
    msgs,
    msgs_per_s: msgs / elapsed,
    mb_per_s: (msgs * size) / elapsed / 1e6,
    p50_us: results[0]?.p50_us ?? 0,
    errors: 0,
  }));
}
