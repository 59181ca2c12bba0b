/**
 * The end-to-end benchmark: echo servers side by side on this machine, in
 * one run, driven by `wsload` (built from `../shared/wsbench` when a C
 * compiler is there) or by our Deno generator otherwise.
 *
 * `deno task bench:e2e [--repeats 3] [--seconds 2] [--quick]
 *   [--generator wsload|deno] [--only servers|deflate|client|memory]`
 *
 * - Servers: ours (`examples/echo_server.ts`), Deno native
 *   (`Deno.serve` + `Deno.upgradeWebSocket`), our `upgradeWebSocket` adapter,
 *   `ws` 8 on Node with and without `bufferutil`, and two raw TCP byte echoes
 *   on Deno (manual `conn.read`/`conn.write`; `pipeTo`).
 * - Scenarios: 100 × 1 × 32 B, 100 × 16 × 32 B, 50 × 1 × 16 KiB,
 *   4 × 1 × 1 MiB, binary and text; deflate on JSON for ours against ws.
 * - Method: servers interleaved inside each repeat (a fresh process per
 *   measurement), medians of the repeats; peak RSS (VmHWM) and server CPU
 *   µs per message from /proc.
 * - Client side: our `connect()`, Deno's `WebSocket` and ws against
 *   `wsload --serve`.
 * - Memory: RSS and JS heap per idle connection at 1,000 and 10,000; peak
 *   RSS while a peer tries to send 1 GiB to a server that does not read.
 *
 * Prints Markdown tables; writes the raw JSON to `bench/results/`.
 *
 * @module
 */

const root = new URL("../../", import.meta.url).pathname;
const cache = `${root}bench/.cache/`;
const deno = Deno.execPath();

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

const quick = Deno.args.includes("--quick");
const repeats = Number(flag("repeats", quick ? "1" : "3"));
const seconds = Number(flag("seconds", quick ? "1" : "2"));
const only = flag("only", "all");
const log = (line: string) => console.error(line);

// --- tools ---------------------------------------------------------------

async function run(
  command: string,
  args: string[],
  options: Deno.CommandOptions = {},
): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdout: "piped",
      stderr: "piped",
      ...options,
    }).output();
    return {
      ok: output.success,
      out: new TextDecoder().decode(output.stdout),
      err: new TextDecoder().decode(output.stderr),
    };
  } catch (error) {
    return { ok: false, out: "", err: String(error) };
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Builds wsload into bench/.cache, or returns undefined to use Deno's. */
async function buildWsload(): Promise<string | undefined> {
  if (flag("generator", "wsload") === "deno") return undefined;
  const binary = `${cache}wsload`;
  const source = Deno.env.get("WSLOAD_SRC") ??
    `${root}../shared/wsbench/wsload.c`;
  if (!exists(binary)) {
    if (!exists(source)) {
      log(`wsload: no ${source}; using the Deno generator`);
      return undefined;
    }
    Deno.mkdirSync(cache, { recursive: true });
    const built = await run("cc", [
      "-O2",
      "-std=gnu11",
      "-o",
      binary,
      source,
    ]);
    if (!built.ok) {
      log(`wsload: cc failed (${built.err.trim()}); using the Deno generator`);
      return undefined;
    }
  }
  return (await run(binary, ["--selftest"])).ok ? binary : undefined;
}

/** Installs ws (and bufferutil) for Node into bench/.cache/node. */
async function installWs(): Promise<string | undefined> {
  const dir = `${cache}node/`;
  if (!exists(`${dir}node_modules/ws/package.json`)) {
    Deno.mkdirSync(dir, { recursive: true });
    log("installing ws@8.23.0 and bufferutil@4.1.0 for Node with npm");
    const installed = await run("npm", [
      "install",
      "--prefix",
      dir,
      "--no-audit",
      "--no-fund",
      "ws@8.23.0",
      "bufferutil@4.1.0",
    ]);
    if (!installed.ok) {
      log(`npm install failed; ws rows skipped:\n${installed.err}`);
      return undefined;
    }
  }
  for (const file of ["ws_server.mjs", "ws_client.mjs"]) {
    Deno.copyFileSync(`${root}bench/e2e/servers/${file}`, `${dir}${file}`);
  }
  return dir;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function waitPort(port: number, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

function procStatus(pid: number, field: string): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) *
    1024;
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

const TICKS_PER_SECOND = 100;

// --- servers -------------------------------------------------------------

interface Server {
  name: string;
  raw?: boolean;
  deflate?: boolean;
  start(port: number): Deno.ChildProcess;
}

function denoServer(name: string, script: string, extra: string[] = []) {
  return {
    name,
    start: (port: number) =>
      new Deno.Command(deno, {
        args: ["run", "-A", ...extra, `${root}${script}`, "--port", `${port}`],
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
  };
}

function nodeServer(name: string, dir: string, env: Record<string, string>) {
  return {
    name,
    start: (port: number) =>
      new Deno.Command("node", {
        args: [`${dir}ws_server.mjs`, "--port", `${port}`],
        env,
        cwd: dir,
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
  };
}

// --- measuring -----------------------------------------------------------

interface Scenario {
  name: string;
  conns: number;
  outstanding: number;
  size: number;
  text?: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: "100 × 1 × 32 B", conns: 100, outstanding: 1, size: 32 },
  { name: "100 × 16 × 32 B", conns: 100, outstanding: 16, size: 32 },
  { name: "50 × 1 × 16 KiB", conns: 50, outstanding: 1, size: 16384 },
  { name: "4 × 1 × 1 MiB", conns: 4, outstanding: 1, size: 1 << 20 },
];

interface Result {
  server: string;
  scenario: string;
  text: boolean;
  msgsPerS: number;
  cpuUsPerMsg: number;
  peakRss: number;
  errors: number;
}

async function measure(
  wsload: string | undefined,
  server: Server,
  scenario: Scenario,
  deflate = false,
): Promise<Result | undefined> {
  const port = freePort();
  const child = server.start(port);
  try {
    await waitPort(port);
    const args = [
      "--port",
      `${port}`,
      "--conns",
      `${scenario.conns}`,
      "--outstanding",
      `${scenario.outstanding}`,
      "--size",
      `${scenario.size}`,
      "--seconds",
      `${seconds}`,
      "--warmup",
      `${Math.min(1, seconds / 2)}`,
    ];
    if (scenario.text) args.push("--text");
    const ticks0 = cpuTicks(child.pid);
    let out;
    if (wsload && !deflate) {
      if (server.raw) args.push("--raw");
      out = await run(wsload, [
        ...args,
        "--quiet",
        "--server-pid",
        `${child.pid}`,
      ]);
    } else {
      if (deflate) args.push("--deflate");
      out = await run(deno, [
        "run",
        "-A",
        `${root}bench/e2e/loadgen.ts`,
        ...args,
      ]);
    }
    const ticks = cpuTicks(child.pid) - ticks0;
    if (!out.ok && !out.out.trim()) {
      log(`${server.name} / ${scenario.name}: ${out.err.trim()}`);
      return undefined;
    }
    const line = JSON.parse(out.out.trim().split("\n").at(-1)!);
    const msgs = line.msgs_per_s * seconds;
    return {
      server: server.name,
      scenario: scenario.name,
      text: scenario.text ?? false,
      msgsPerS: line.msgs_per_s,
      cpuUsPerMsg: line.server_cpu_us_per_msg ??
        (ticks / TICKS_PER_SECOND) * 1e6 / Math.max(1, msgs),
      peakRss: procStatus(child.pid, "VmHWM"),
      errors: line.errors ?? 0,
    };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmtRate = (n: number) =>
  n >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : n >= 1e4
    ? `${(n / 1e3).toFixed(0)}k`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(2)}k`
    : n.toFixed(0);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function table(
  results: Result[],
  servers: string[],
  scenarios: Scenario[],
  text: boolean,
  withRss = true,
): string {
  const pick = (server: string, scenario: string) =>
    results.filter((r) =>
      r.server === server && r.scenario === scenario && r.text === text
    );
  const med = (server: string, scenario: string) => {
    const rs = pick(server, scenario);
    return rs.length
      ? {
        rate: median(rs.map((r) => r.msgsPerS)),
        cpu: median(rs.map((r) => r.cpuUsPerMsg)),
        rss: median(rs.map((r) => r.peakRss)),
      }
      : undefined;
  };
  const lines = [
    `| server (${text ? "text" : "binary"}) | ${
      scenarios.map((s) => s.name).join(" | ")
    } |${withRss ? " peak RSS at 1 MiB |" : ""}`,
    `|---|${scenarios.map(() => "---:").join("|")}|${withRss ? "---:|" : ""}`,
  ];
  for (const server of servers) {
    const cells = scenarios.map((s) => {
      const m = med(server, s.name);
      const native = med("Deno native", s.name);
      if (!m) return "–";
      const ratio = native ? ` (${(m.rate / native.rate).toFixed(2)}×)` : "";
      return `${fmtRate(m.rate)}${ratio} [${m.cpu.toFixed(1)} µs]`;
    });
    const big = med(server, "4 × 1 × 1 MiB");
    const rss = withRss ? ` ${big ? mib(big.rss) : "–"} |` : "";
    lines.push(`| ${server} | ${cells.join(" | ")} |${rss}`);
  }
  return lines.join("\n");
}

// --- client side ----------------------------------------------------------

async function clientBench(
  wsload: string | undefined,
  wsDir: string | undefined,
): Promise<string> {
  if (!wsload) return "(client bench needs wsload --serve)";
  const impls: [string, (port: number, s: Scenario) => Promise<number>][] = [
    ["ours: connect()", (port, s) => denoClient("ours", port, s)],
    ["Deno native WebSocket", (port, s) => denoClient("native", port, s)],
  ];
  if (wsDir) {
    impls.push(["ws 8 (Node, bufferutil)", async (port, s) => {
      const out = await run("node", [
        `${wsDir}ws_client.mjs`,
        `${port}`,
        `${s.conns}`,
        `${s.size}`,
        `${seconds}`,
      ], { cwd: wsDir });
      return JSON.parse(out.out.trim()).msgs_per_s;
    }]);
  }
  const scenarios = [SCENARIOS[0]!, SCENARIOS[3]!];
  const rates = new Map<string, number[]>();
  for (let r = 0; r < repeats; r++) {
    for (const scenario of scenarios) {
      for (const [name, fn] of impls) {
        const port = freePort();
        const server = new Deno.Command(wsload, {
          args: ["--serve", "--port", `${port}`],
          stdout: "null",
          stderr: "null",
        }).spawn();
        try {
          await waitPort(port);
          const rate = await fn(port, scenario);
          const key = `${name}|${scenario.name}`;
          rates.set(key, [...(rates.get(key) ?? []), rate]);
        } finally {
          server.kill("SIGKILL");
          await server.status;
        }
      }
    }
  }
  const lines = [
    `| client → wsload --serve | ${scenarios.map((s) => s.name).join(" | ")} |`,
    `|---|${scenarios.map(() => "---:").join("|")}|`,
  ];
  for (const [name] of impls) {
    lines.push(
      `| ${name} | ${
        scenarios.map((s) => {
          const m = median(rates.get(`${name}|${s.name}`) ?? [0]);
          const native = median(
            rates.get(`Deno native WebSocket|${s.name}`) ?? [m],
          );
          return `${fmtRate(m)} (${(m / native).toFixed(2)}×)`;
        }).join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

async function denoClient(
  impl: string,
  port: number,
  s: Scenario,
): Promise<number> {
  const out = await run(deno, [
    "run",
    "-A",
    `${root}bench/e2e/client.ts`,
    impl,
    `${port}`,
    `${s.conns}`,
    `${s.size}`,
    `${seconds}`,
  ]);
  if (!out.ok) throw new Error(out.err);
  return JSON.parse(out.out.trim()).msgs_per_s;
}

// --- memory ----------------------------------------------------------------

async function memoryBench(): Promise<string> {
  const lines = [
    "| server | idle connections | RSS KiB/conn | JS heap KiB/conn |",
    "|---|---:|---:|---:|",
  ];
  const counts = quick ? [1000] : [1000, 10_000];
  for (const count of counts) {
    for (
      const [name, script] of [
        ["ours (echo, pipeTo)", "bench/e2e/servers/ours.ts"],
        ["ours, no consumer", "bench/e2e/servers/hold.ts"],
        ["Deno native", "bench/e2e/servers/native.ts"],
        ["raw TCP, a pending read", "bench/e2e/servers/raw_manual.ts"],
      ] as const
    ) {
      const out = await run(deno, [
        "run",
        "-A",
        `${root}bench/e2e/idle.ts`,
        script,
        `${count}`,
      ]);
      if (!out.ok) {
        lines.push(`| ${name} | ${count} | failed: ${out.err.trim()} | |`);
        continue;
      }
      const r = JSON.parse(out.out.trim());
      lines.push(
        `| ${name} | ${count} | ${(r.rssPerConn / 1024).toFixed(1)} | ${
          (r.heapPerConn / 1024).toFixed(1)
        } |`,
      );
    }
  }
  const slow = await run(deno, ["run", "-A", `${root}bench/e2e/slow.ts`]);
  lines.push("");
  lines.push(slow.ok ? slow.out.trim() : `slow consumer failed: ${slow.err}`);
  return lines.join("\n");
}

// --- main ------------------------------------------------------------------

const wsload = await buildWsload();
const wsDir = await installWs();
const probe = wsload ? (await run(wsload, ["--cpu-probe"])).out.trim() : "";
const header = [
  `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ` +
  `${new Date().toISOString().slice(0, 10)}; generator: ${
    wsload ? "wsload" : "Deno (bench/e2e/loadgen.ts)"
  }; ${repeats} repeat(s) of ${seconds} s, medians; cpu probe ${probe}`,
  "Cells: msgs/s (ratio to Deno native) [server CPU µs per message].",
];
console.log(header.join("\n\n"));

const report: Record<string, unknown> = { header, results: [] };
const servers: Server[] = [
  denoServer("ours", "examples/echo_server.ts"),
  denoServer("Deno native", "bench/e2e/servers/native.ts"),
  denoServer("ours: upgradeWebSocket", "bench/e2e/servers/upgrade.ts"),
];
if (wsDir) {
  servers.push(nodeServer("ws + bufferutil (Node)", wsDir, {}));
  servers.push(nodeServer("ws (Node)", wsDir, { WS_NO_BUFFER_UTIL: "1" }));
}
servers.push({
  ...denoServer(
    "raw TCP, manual read/write",
    "bench/e2e/servers/raw_manual.ts",
  ),
  raw: true,
});
servers.push({
  ...denoServer("raw TCP, pipeTo", "bench/e2e/servers/raw_pipe.ts"),
  raw: true,
});

const results: Result[] = [];
if (only === "all" || only === "servers") {
  for (let r = 0; r < repeats; r++) {
    for (const text of [false, true]) {
      for (const scenario of SCENARIOS) {
        for (const server of servers) {
          if (text && server.raw) continue;
          // The Deno generator cannot speak raw TCP.
          if (server.raw && !wsload) continue;
          log(
            `repeat ${r + 1}: ${server.name}, ${scenario.name}${
              text ? " text" : ""
            }`,
          );
          const result = await measure(wsload, server, { ...scenario, text });
          if (result) results.push(result);
        }
      }
    }
  }
  const names = servers.map((s) => s.name);
  console.log();
  console.log(table(results, names, SCENARIOS, false));
  console.log();
  console.log(
    table(results, names.filter((n) => !n.startsWith("raw")), SCENARIOS, true),
  );
}

if ((only === "all" || only === "deflate") && wsDir) {
  const deflateServers: Server[] = [
    denoServer("ours, deflate", "bench/e2e/servers/ours_deflate.ts"),
    {
      name: "ws + bufferutil, deflate",
      start: (port) =>
        new Deno.Command("node", {
          args: [`${wsDir}ws_server.mjs`, "--port", `${port}`, "--deflate"],
          cwd: wsDir,
          stdout: "null",
          stderr: "inherit",
        }).spawn(),
    },
  ];
  const scenarios: Scenario[] = [
    {
      name: "50 × 1 × 2 KiB JSON",
      conns: 50,
      outstanding: 1,
      size: 2048,
      text: true,
    },
    {
      name: "4 × 1 × 256 KiB JSON",
      conns: 4,
      outstanding: 1,
      size: 262144,
      text: true,
    },
  ];
  const deflateResults: Result[] = [];
  for (let r = 0; r < repeats; r++) {
    for (const scenario of scenarios) {
      for (const server of deflateServers) {
        log(`repeat ${r + 1}: ${server.name}, ${scenario.name}`);
        const result = await measure(wsload, server, scenario, true);
        if (result) deflateResults.push(result);
      }
    }
  }
  results.push(...deflateResults);
  console.log();
  console.log(
    "permessage-deflate, driven by the Deno generator (ours with deflate):",
  );
  console.log(
    table(
      deflateResults,
      deflateServers.map((s) => s.name),
      scenarios,
      true,
      false,
    ),
  );
}

if (only === "all" || only === "client") {
  console.log();
  console.log(await clientBench(wsload, wsDir));
}

if (only === "all" || only === "memory") {
  console.log();
  console.log(await memoryBench());
}

report.results = results;
Deno.mkdirSync(`${root}bench/results`, { recursive: true });
const file = `${root}bench/results/e2e-${
  new Date().toISOString().replace(/[:.]/g, "-")
}.json`;
Deno.writeTextFileSync(file, JSON.stringify(report, null, 2));
log(`raw results: ${file}`);
