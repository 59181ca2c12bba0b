// Deno's I/O ops past tokio's cooperative budget, with no library code: BUSY
// loopback pairs echo 8 KiB chunks as fast as they can while IDLE pairs each
// write 100 bytes, all in one turn of the event loop (a read pending on both
// ends, as a connection's read loop keeps one). Their sockets are empty, so
// each write should resolve at once. Measured on Deno 2.9.6 (2 loaded
// cores), 300 busy and 800 idle pairs, four runs: 128 or 256 writes went at
// once, the others after 0.4 to 19 s (as long as the busy load lasted),
// while a 0 ms timer came back within 0.3 s. With `--turn 100` (at most 100
// writes started per turn, the rest after a 0 ms timer) all 800 went within
// 13 ms. This is why the connections start at most 100 socket writes per
// turn (lib/net/_turns.ts, tests/write_turns_test.ts).
//
//   deno run -A bench/op_starvation.ts [busy] [idle] [seconds] [--turn N]

const args = Deno.args.filter((arg, i, all) =>
  arg !== "--turn" && all[i - 1] !== "--turn"
);
const turnAt = Deno.args.indexOf("--turn");
const PER_TURN = turnAt >= 0 ? Number(Deno.args[turnAt + 1]) : Infinity;
const BUSY = Number(args[0] ?? 300);
const IDLE = Number(args[1] ?? 800);
const SECONDS = Number(args[2] ?? 40);

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;

async function pair(): Promise<[Deno.Conn, Deno.Conn]> {
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port }),
    listener.accept(),
  ]);
  a.setNoDelay(true);
  b.setNoDelay(true);
  return [a, b];
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

const busy: [Deno.Conn, Deno.Conn][] = [];
for (let i = 0; i < BUSY; i++) busy.push(await pair());
const idle: [Deno.Conn, Deno.Conn][] = [];
for (let i = 0; i < IDLE; i++) idle.push(await pair());

let stop = false;
const busyDone = busy.map(async ([a, b]) => {
  const echo = (async () => {
    const buffer = new Uint8Array(65536);
    while (true) {
      const n = await b.read(buffer).catch(() => null);
      if (n === null) return;
      await writeAll(b, buffer.subarray(0, n));
    }
  })();
  const drain = (async () => {
    const buffer = new Uint8Array(65536);
    while ((await a.read(buffer).catch(() => null)) !== null);
  })();
  const chunk = new Uint8Array(8192);
  while (!stop) await writeAll(a, chunk);
  await a.closeWrite();
  await echo;
  b.close();
  await drain;
  a.close();
});

// The event loop's own lag, for comparison.
let lag = 0;
const lagDone = (async () => {
  while (!stop) {
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 0));
    lag = Math.max(lag, performance.now() - start);
  }
})();

// Writes past PER_TURN in one turn wait for a 0 ms timer.
const waiting: (() => void)[] = [];
let started = 0;
function turn(): Promise<void> {
  if (started++ < PER_TURN) return Promise.resolve();
  return new Promise((resolve) => {
    if (waiting.push(resolve) === 1) setTimeout(release, 0);
  });
}
function release(): void {
  started = 0;
  for (const resolve of waiting.splice(0, PER_TURN)) {
    started++;
    resolve();
  }
  if (waiting.length > 0) setTimeout(release, 0);
}

await new Promise((resolve) => setTimeout(resolve, 2000));
const latencies: number[] = [];
const idleDone = idle.map(async ([a, b]) => {
  const arrived = b.read(new Uint8Array(1000));
  const reading = a.read(new Uint8Array(1000)).catch(() => null);
  await turn();
  const start = performance.now();
  await a.write(new Uint8Array(100));
  latencies.push(performance.now() - start);
  await arrived;
  a.close();
  b.close();
  await reading;
});
const deadline = performance.now() + SECONDS * 1000;
while (performance.now() < deadline && latencies.length < IDLE) {
  await new Promise((resolve) => setTimeout(resolve, 200));
}
stop = true;
await Promise.all(idleDone);
await Promise.all(busyDone);
await lagDone;
listener.close();
latencies.sort((x, y) => x - y);
const at = (q: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
    .toFixed(0);
const fast = latencies.filter((ms) => ms < 100).length;
console.log(
  `${IDLE} idle writes beside ${BUSY} busy pairs${
    PER_TURN === Infinity ? "" : `, ${PER_TURN} per turn`
  }: ${fast} within 100 ms; p50 ${at(0.5)} ms, max ${
    at(1)
  } ms; event-loop lag max ${lag.toFixed(0)} ms`,
);
