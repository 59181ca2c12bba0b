// permessage-deflate against real peers: npm:ws (both directions, context
// takeover on and off, window bits 9 and 15), Python `websockets` (Debian's
// python3-websockets, both directions) and headless Chromium (Debian's
// chromium, driven by playwright-core). On CI all must be present (.ci/run
// installs them); elsewhere a missing peer skips its test.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { TextLineStream } from "@std/streams";
import { chromium } from "playwright-core";
import WebSocket, { WebSocketServer } from "ws";
import {
  connect,
  type PerMessageDeflateOptions,
  serve,
  type WebSocketConnection,
} from "../mod.ts";
import type { TransportWebSocket } from "../lib/net/connection.ts";
import { prng, randomBytes } from "./_helpers.ts";

const CI = Deno.env.get("CI") === "true";
const PYTHON = "/usr/bin/python3";
const CHROMIUM = "/usr/bin/chromium";

function hasPythonWebsockets(): boolean {
  try {
    return new Deno.Command(PYTHON, { args: ["-c", "import websockets"] })
      .outputSync().success;
  } catch {
    return false;
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

const JSON_LIKE = JSON.stringify(
  Array.from({ length: 200 }, (_, i) => ({
    id: i,
    user: `user-${i}`,
    tags: ["alpha", "beta"],
    score: i * 3.25,
  })),
);

function echoServer(perMessageDeflate: boolean | PerMessageDeflateOptions) {
  const connections: WebSocketConnection[] = [];
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, perMessageDeflate },
    (connection) => {
      connections.push(connection);
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
  return { server, connections };
}

// --- npm:ws ----------------------------------------------------------------

const WS_CASES = [
  { bits: 15, takeover: true },
  { bits: 15, takeover: false },
  { bits: 9, takeover: true },
  { bits: 9, takeover: false },
];

function wsDeflate(bits: number, takeover: boolean) {
  return {
    threshold: 0,
    serverNoContextTakeover: !takeover,
    clientNoContextTakeover: !takeover,
    serverMaxWindowBits: bits,
    clientMaxWindowBits: bits,
  };
}

async function exchange(
  send: (data: string | Uint8Array) => void,
  next: () => Promise<string | Uint8Array>,
) {
  const random = prng(41);
  for (const size of [0, 10, 1000, 70_000, 1 << 20]) {
    const text = JSON_LIKE.repeat(Math.ceil(size / JSON_LIKE.length) || 1)
      .slice(0, size);
    send(text);
    assertEquals(await next(), text, `text ${size}`);
    const bytes = randomBytes(random, size);
    send(bytes);
    assertEquals(await next(), bytes, `binary ${size}`);
  }
}

Deno.test("npm:ws client with perMessageDeflate against our serve()", async (t) => {
  for (const { bits, takeover } of WS_CASES) {
    await t.step(`window ${bits}, context takeover ${takeover}`, async () => {
      const { server, connections } = echoServer({ threshold: 0 });
      const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`, {
        perMessageDeflate: wsDeflate(bits, takeover),
      });
      await new Promise((resolve, reject) => {
        socket.once("open", resolve);
        socket.once("error", reject);
      });
      const extensions = connections[0]!.extensions;
      assertStringIncludes(extensions, "permessage-deflate");
      assertStringIncludes(extensions, `server_max_window_bits=${bits}`);
      assertEquals(extensions.includes("no_context_takeover"), !takeover);
      const inbox: (string | Uint8Array)[] = [];
      const waiting: ((m: string | Uint8Array) => void)[] = [];
      socket.on("message", (data: Buffer, isBinary: boolean) => {
        const message = isBinary ? new Uint8Array(data) : data.toString();
        const waiter = waiting.shift();
        if (waiter) waiter(message);
        else inbox.push(message);
      });
      await exchange(
        (data) => socket.send(data),
        () =>
          inbox.length
            ? Promise.resolve(inbox.shift()!)
            : new Promise((resolve) => waiting.push(resolve)),
      );
      // Compressed on the wire: the JSON text came in far smaller.
      assert(
        (connections[0] as TransportWebSocket).bytesReceived < 2.5 * (1 << 20),
      );
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.close(1000);
      await closed;
      await server.shutdown();
    });
  }
});

Deno.test("our connect() against an npm:ws server with perMessageDeflate", async (t) => {
  for (const { bits, takeover } of WS_CASES) {
    await t.step(`window ${bits}, context takeover ${takeover}`, async () => {
      const wss = new WebSocketServer({
        port: 0,
        host: "127.0.0.1",
        perMessageDeflate: wsDeflate(bits, takeover),
      });
      await new Promise((resolve) => wss.once("listening", resolve));
      wss.on("connection", (socket: WebSocket) => {
        socket.on("message", (data: Buffer, isBinary: boolean) => {
          socket.send(data, { binary: isBinary });
        });
      });
      const port = (wss.address() as { port: number }).port;
      const client = await connect(`ws://127.0.0.1:${port}/`, {
        perMessageDeflate: {
          threshold: 0,
          clientMaxWindowBits: true,
          serverMaxWindowBits: bits,
          serverNoContextTakeover: !takeover,
          clientNoContextTakeover: !takeover,
        },
      });
      assertStringIncludes(client.extensions, `client_max_window_bits=${bits}`);
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      await exchange(
        (data) => void writer.write(data),
        async () => (await reader.read()).value!,
      );
      reader.releaseLock();
      writer.releaseLock();
      client.close({ closeCode: 1000 });
      await client.closed;
      await new Promise((resolve) => wss.close(resolve));
    });
  }
});

// --- Python websockets -------------------------------------------------------

const pythonReady = hasPythonWebsockets();

Deno.test({
  name: "Python websockets client (compression on) against our serve()",
  ignore: !pythonReady && !CI,
  async fn() {
    const { server, connections } = echoServer(true);
    const output = await new Deno.Command(PYTHON, {
      args: [
        new URL("./peers/python_peer.py", import.meta.url).pathname,
        "client",
        `ws://127.0.0.1:${server.addr.port}/`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert(output.success, stderr);
    const result = JSON.parse(new TextDecoder().decode(output.stdout));
    assertEquals(result.failures, []);
    assertEquals(result.checked, 14);
    assertStringIncludes(result.extensions, "permessage-deflate");
    assertEquals(result.close, [4000, "python done"]);
    assertStringIncludes(connections[0]!.extensions, "permessage-deflate");
    await server.shutdown();
  },
});

Deno.test({
  name: "our connect() against a Python websockets server (compression on)",
  ignore: !pythonReady && !CI,
  async fn() {
    const child = new Deno.Command(PYTHON, {
      args: [
        new URL("./peers/python_peer.py", import.meta.url).pathname,
        "server",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .pipeThrough(new TextLineStream());
    const reader = lines.getReader();
    const port = Number((await reader.read()).value);
    reader.releaseLock();
    const client = await connect(`ws://127.0.0.1:${port}/`, {
      perMessageDeflate: { threshold: 0 },
    });
    assertStringIncludes(client.extensions, "permessage-deflate");
    const writer = client.writable.getWriter();
    const messages = client.readable.getReader();
    await exchange(
      (data) => void writer.write(data),
      async () => (await messages.read()).value!,
    );
    messages.releaseLock();
    writer.releaseLock();
    client.close({ closeCode: 1000, reason: "bye" });
    assertEquals(await client.closed, { closeCode: 1000, reason: "bye" });
    await child.stdin.close();
    await child.status;
    await lines.cancel();
  },
});

// --- Chromium ----------------------------------------------------------------

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
const sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20];
const json = ${JSON.stringify(JSON_LIKE)};
const ws = new WebSocket(location.href.replace("http", "ws") + "ws");
ws.binaryType = "arraybuffer";
const inbox = [];
let waiter;
ws.onmessage = (e) => { if (waiter) { const w = waiter; waiter = undefined; w(e.data); } else inbox.push(e.data); };
const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiter = r);
await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
const failures = [];
let checked = 0;
for (const size of sizes) {
  const text = json.repeat(Math.ceil(size / json.length) || 1).slice(0, size);
  ws.send(text);
  if ((await next()) !== text) failures.push("text " + size);
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  ws.send(bytes);
  const back = new Uint8Array(await next());
  if (back.length !== size || back.some((b, i) => b !== bytes[i])) failures.push("binary " + size);
  checked += 2;
}
const closed = new Promise((r) => ws.onclose = (e) => r([e.code, e.reason, e.wasClean]));
ws.close(1000, "browser done");
window.result = { failures, checked, extensions: ws.extensions, close: await closed };
</script>`;

Deno.test({
  name: "headless Chromium negotiates permessage-deflate with our serve()",
  ignore: !exists(CHROMIUM) && !CI,
  async fn() {
    const connections: WebSocketConnection[] = [];
    const server = serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      fetch: () =>
        new Response(PAGE, { headers: { "content-type": "text/html" } }),
    }, (connection) => {
      connections.push(connection);
      connection.readable.pipeTo(connection.writable).catch(() => {});
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.waitForFunction(() => "result" in globalThis, undefined, {
        timeout: 30_000,
      });
      const result = await page.evaluate(() =>
        (globalThis as unknown as { result: unknown }).result
      ) as {
        failures: string[];
        checked: number;
        extensions: string;
        close: [number, string, boolean];
      };
      assertEquals(result.failures, []);
      assertEquals(result.checked, 14);
      assertStringIncludes(result.extensions, "permessage-deflate");
      assertEquals(result.close, [1000, "browser done", true]);
      assertStringIncludes(connections[0]!.extensions, "permessage-deflate");
      // The 1 MiB of JSON crossed the wire compressed.
      assert(
        (connections[0] as TransportWebSocket).bytesReceived <
          2 * (1 << 20) + (1 << 18),
      );
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
