/**
 * Interleaved A/B pairs of two echo servers on one wsload scenario, for a
 * change whose effect is smaller than the run-to-run noise of the full
 * harness (run.ts): A, B, A, B… with a fresh process per measurement, and
 * the medians.
 *
 * `deno run -A bench/e2e/ab.ts --a servers/ours.ts --b other.ts [--pairs 3]
 *   [--conns 100] [--outstanding 1] [--size 32] [--seconds 3]`
 *
 * Paths are relative to bench/e2e/ (or absolute). Needs bench/.cache/wsload
 * (see run.ts).
 *
 * @module
 */

const here = new URL(".", import.meta.url).pathname;
const wsload = new URL("../.cache/wsload", import.meta.url).pathname;
const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
};
const resolve = (p: string) => p.startsWith("/") ? p : here + p;
const scripts = { A: resolve(flag("a", "")), B: resolve(flag("b", "")) };
const pairs = Number(flag("pairs", "3"));
const load = [
  "--conns",
  flag("conns", "100"),
  "--outstanding",
  flag("outstanding", "1"),
  "--size",
  flag("size", "32"),
  "--seconds",
  flag("seconds", "3"),
  "--warmup",
  "1",
  "--quiet",
];

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function one(script: string): Promise<{ rate: number; cpu: number }> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "--port", `${port}`],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    await new Deno.Command(wsload, {
      args: ["--wait-port", `${port}`, "--timeout", "20"],
    }).output();
    const out = await new Deno.Command(wsload, {
      args: ["--port", `${port}`, ...load, "--server-pid", `${child.pid}`],
      stdout: "piped",
    }).output();
    const line = JSON.parse(
      new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!,
    );
    return { rate: line.msgs_per_s, cpu: line.server_cpu_us_per_msg };
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const results = {
  A: [] as { rate: number; cpu: number }[],
  B: [] as { rate: number; cpu: number }[],
};
for (let p = 0; p < pairs; p++) {
  for (const side of ["A", "B"] as const) {
    const r = await one(scripts[side]);
    results[side].push(r);
    console.error(
      `pair ${p + 1} ${side}: ${r.rate.toFixed(0)} msg/s, ${
        r.cpu.toFixed(1)
      } µs/msg`,
    );
  }
}
for (const side of ["A", "B"] as const) {
  console.log(
    `${side} ${scripts[side]}: median ${
      median(results[side].map((r) => r.rate)).toFixed(0)
    } msg/s, ${
      median(results[side].map((r) => r.cpu)).toFixed(1)
    } µs/msg (runs: ${results[side].map((r) => r.rate.toFixed(0)).join(", ")})`,
  );
}
const ratio = median(results.B.map((r) => r.rate)) /
  median(results.A.map((r) => r.rate));
console.log(`B/A: ${ratio.toFixed(3)}`);
