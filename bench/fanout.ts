/**
 * Fan-out: one publisher to many subscribers, in deliveries per second and
 * the server's CPU per delivery; `Topics` (encode once) against the usual
 * loop over Deno's native sockets (`Deno.upgradeWebSocket`, one `send` per
 * socket) and the same loop over npm:ws 8 on Node (`wss.clients`; ws is
 * installed with npm into bench/.cache/node, as bench/e2e does, and its row
 * is skipped if that fails). The server runs in its own process; the
 * subscribers are raw TCP sockets here that count bytes and parse nothing.
 *
 * `deno run -A bench/fanout.ts [--subscribers 1000] [--messages 200] [--size 64] [--ours-only | --native-only | --ws-only]`
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

const subscribers = flag("subscribers", 1000);
const messages = flag("messages", 200);
const size = flag("size", 64);
// Unmasked server text frames: a 2-byte header up to 125 bytes, else 4.
const frameBytes = size + (size < 126 ? 2 : 4);

async function subscriber(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  ));
  const buffer = new Uint8Array(64 * 1024);
  let head = "";
  let extra = 0;
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("no 101");
    head += decoder.decode(buffer.subarray(0, n));
    const end = head.indexOf("\r\n\r\n");
    if (end >= 0) extra = encoder.encode(head).length - (end + 4);
  }
  let received = extra;
  return {
    conn,
    /** Resolves once `bytes` have come. */
    async take(bytes: number) {
      while (received < bytes) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error("ended early");
        received += n;
      }
      received -= bytes;
    },
  };
}

type Mode = "ours" | "native" | "ws";

/** Installs ws for Node into bench/.cache/node; its server script's path. */
async function wsServer(): Promise<string | undefined> {
  const dir = new URL("./.cache/node/", import.meta.url).pathname;
  try {
    Deno.statSync(`${dir}node_modules/ws/package.json`);
  } catch {
    Deno.mkdirSync(dir, { recursive: true });
    const { success } = await new Deno.Command("npm", {
      args: [
        "install",
        "--prefix",
        dir,
        "--no-audit",
        "--no-fund",
        "ws@8.23.0",
      ],
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (!success) return undefined;
  }
  Deno.copyFileSync(
    new URL("./fanout/ws_server.mjs", import.meta.url).pathname,
    `${dir}fanout_ws_server.mjs`,
  );
  return `${dir}fanout_ws_server.mjs`;
}

async function run(mode: Mode) {
  const script = mode === "ws" ? await wsServer() : undefined;
  if (mode === "ws" && script === undefined) return undefined;
  const child = new Deno.Command(
    mode === "ws" ? "node" : Deno.execPath(),
    {
      args: mode === "ws" ? [script!] : [
        "run",
        "-A",
        new URL("./fanout/server.ts", import.meta.url).pathname,
        mode,
      ],
      stdout: "piped",
      stderr: "inherit",
    },
  ).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) text += (await lines.read()).value ?? "";
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n")));
  const subs = [];
  for (let i = 0; i < subscribers; i++) subs.push(await subscriber(port));
  // Let the last upgrades settle (the native server adds a socket on open).
  await new Promise((resolve) => setTimeout(resolve, 500));
  const base = `http://127.0.0.1:${port}`;
  const before = (await (await fetch(`${base}/cpu`)).json()).cpuMicros;
  const start = performance.now();
  const go = fetch(`${base}/go?m=${messages}&size=${size}`);
  await Promise.all(subs.map((sub) => sub.take(messages * frameBytes)));
  const seconds = (performance.now() - start) / 1000;
  await (await go).body?.cancel();
  const after = (await (await fetch(`${base}/cpu`)).json()).cpuMicros;
  for (const sub of subs) sub.conn.close();
  child.kill("SIGTERM");
  await child.status;
  await lines.cancel().catch(() => {});
  const deliveries = subscribers * messages;
  return {
    mode,
    deliveriesPerSecond: Math.round(deliveries / seconds),
    cpuMicrosPerDelivery: (after - before) / deliveries,
  };
}

if (import.meta.main) {
  console.log(
    `fan-out: ${subscribers} subscribers, ${messages} messages of ${size} bytes`,
  );
  console.log("| server | deliveries/s | server CPU per delivery |");
  console.log("| --- | ---: | ---: |");
  const only: Mode[] = Deno.args.includes("--native-only")
    ? ["native"]
    : Deno.args.includes("--ours-only")
    ? ["ours"]
    : Deno.args.includes("--ws-only")
    ? ["ws"]
    : ["ours", "native", "ws"];
  const names = {
    ours: "Topics.publish",
    native: "native loop (Deno)",
    ws: "ws loop (Node)",
  };
  for (const mode of only) {
    const r = await run(mode);
    if (r === undefined) {
      console.log(`| ${names[mode]} | skipped: npm install ws failed | |`);
      continue;
    }
    console.log(
      `| ${names[mode]} | ${r.deliveriesPerSecond.toLocaleString("en")} | ${
        r.cpuMicrosPerDelivery.toFixed(2)
      } µs |`,
    );
  }
}
