// Soak: N clients at once, each sending M messages of mixed sizes (1 B to
// 64 KiB, seeded) through our serve()'s echo, half of them with
// permessage-deflate. Each message carries its sequence number and a
// checksum: every one must come back exactly once, intact and in order on
// its connection (tests/soak/_clients.ts). Afterwards the sanitizers see no
// resource or op left open in the server's process, and its heap is back
// within a bound of where it started.
//
// SOAK_CLIENTS × SOAK_MESSAGES: 50 × 100 in CI; `deno task soak` runs
// 1,000 × 1,000 and prints the messages, the duration and the peak RSS.
// SOAK_PROCESSES (default 2) child processes run the clients, as a server
// meets them; 0 runs them in this process, beside the server, where both
// ends of every connection share one event loop: 1,000 connections flush in
// one turn, which Deno 2.9 starved past its op budget until the writers
// started at most 100 socket writes a turn (lib/net/_turns.ts).

import { assert, assertEquals } from "@std/assert";
import { fileURLToPath as fromFileUrl } from "node:url";
import { serve } from "../mod.ts";
import { QUEUES, runClients } from "./soak/_clients.ts";

const CLIENTS = Number(Deno.env.get("SOAK_CLIENTS") ?? 50);
const MESSAGES = Number(Deno.env.get("SOAK_MESSAGES") ?? 100);
const PROCESSES = Number(Deno.env.get("SOAK_PROCESSES") ?? 2);
// SOAK_DEFLATE=0 turns compression off on every client.
const DEFLATE = Deno.env.get("SOAK_DEFLATE") !== "0";
const MiB = 1 << 20;

function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  } catch {
    return Deno.memoryUsage().rss;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Deno.memoryUsage().heapUsed;
}

// A child's own deadline (it then names the clients still waiting), and
// the parent's, a little later, should the child not even manage that:
// generous, since a loaded machine is slow, but a lost message fails the
// test instead of hanging it.
const DEADLINE = 60_000 + CLIENTS * MESSAGES / 5;

/** Runs clients [from, from + count) in a child process; their bytes. */
async function childClients(
  url: string,
  from: number,
  count: number,
): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      fromFileUrl(new URL("../deno.json", import.meta.url)),
      "--lock",
      fromFileUrl(new URL("../deno.lock", import.meta.url)),
      fromFileUrl(new URL("./soak/client.ts", import.meta.url)),
      url,
      String(from),
      String(count),
      String(MESSAGES),
      DEFLATE ? "1" : "0",
      String(DEADLINE),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, DEADLINE + 10_000);
  const output = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `clients ${from}–${from + count - 1} failed${
        killed ? " (killed past the deadline)" : ""
      }:\n${new TextDecoder().decode(output.stderr)}${text}`,
    );
  }
  try {
    return (JSON.parse(text) as { bytes: number }).bytes;
  } catch {
    throw new Error(
      `clients ${from}–${from + count - 1} printed no result: ${text}`,
    );
  }
}

Deno.test(`soak: ${CLIENTS} clients × ${MESSAGES} messages echo exactly once, in order, intact`, async () => {
  const heapBefore = await settledHeap();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...QUEUES },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const started = performance.now();
  let bytes = 0;
  try {
    if (PROCESSES <= 0) {
      bytes = await runClients({
        url,
        from: 0,
        count: CLIENTS,
        messages: MESSAGES,
        deflate: DEFLATE,
      });
    } else {
      const slice = Math.ceil(CLIENTS / PROCESSES);
      const counts = await Promise.all(
        Array.from({ length: PROCESSES }, (_, p) => {
          const from = p * slice;
          const count = Math.min(slice, CLIENTS - from);
          return count > 0 ? childClients(url, from, count) : 0;
        }),
      );
      bytes = counts.reduce((a, b) => a + b, 0);
    }
    // Every client closed its connection, and the server saw each go.
    assertEquals(server.connections, 0);
  } finally {
    // On a failure too: nothing may be left open.
    await server.shutdown();
  }
  const seconds = (performance.now() - started) / 1000;

  const heapAfter = await settledHeap();
  console.log(
    `soak: ${CLIENTS * MESSAGES} messages (${
      (bytes / MiB).toFixed(1)
    } MiB each way) over ${CLIENTS} connections ${
      PROCESSES > 0 ? `from ${PROCESSES} client processes` : "in one process"
    } in ${seconds.toFixed(1)} s; server's peak RSS ${
      (peakRss() / MiB).toFixed(0)
    } MiB; heap ${(heapBefore / MiB).toFixed(1)} → ${
      (heapAfter / MiB).toFixed(1)
    } MiB${gc ? "" : " (no --expose-gc)"}`,
  );
  // Pools and caches that live for the process (read buffers, outbox
  // blocks, zlib streams) stay; connections do not. Without gc() the heap
  // may hold garbage too: a wider bound.
  const bound = (gc ? 16 : 64) * MiB;
  assert(
    heapAfter - heapBefore < bound,
    `the heap grew ${heapAfter - heapBefore} bytes`,
  );
});
