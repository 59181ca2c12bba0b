// The techniques demo and connectRealtime() in headless Chromium (Debian's
// chromium, driven by playwright-core): the page connects with each of the
// five transports and exchanges messages; a refused WebSocket falls back to
// SSE; the iframe stream's escaping holds in a real HTML parser; and the
// page's charts are saved as tests/artifacts/techniques.png.

import { assert, assertEquals } from "@std/assert";
import { chromium } from "playwright-core";
import { bundleClient, startTechniques } from "../examples/techniques/main.ts";
import { realtime } from "../lib/realtime/mod.ts";

const CI = Deno.env.get("CI") === "true";
const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    Deno.statSync(CHROMIUM);
    return true;
  } catch {
    return false;
  }
})();

// deps/playwright_core.ts exports chromium alone: the page type from it.
type Page = Awaited<
  ReturnType<
    Awaited<ReturnType<typeof chromium.launchPersistentContext>>["newPage"]
  >
>;

async function withBrowser<T>(
  fn: (page: Page) => Promise<T>,
): Promise<T> {
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  // A fresh profile per run: no cache, no service worker, no saved state.
  const context = await chromium.launchPersistentContext(profile, {
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
    viewport: { width: 1400, height: 640 },
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    return await fn(page);
  } finally {
    await context.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

type Technique = {
  status: string;
  transport: string | null;
  sent: number;
  received: number;
  broadcasts: number;
  error: string | null;
};

Deno.test({
  name:
    "Chromium: the techniques page exchanges messages over all five transports, with charts",
  ignore: !hasChromium && !CI,
  sanitizeOps: false, // playwright-core keeps its pipe to Chromium busy
  sanitizeResources: false,
  async fn() {
    const server = await startTechniques({ port: 0 });
    try {
      await withBrowser(async (page) => {
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        await page.waitForFunction(
          () => {
            const state = (globalThis as unknown as {
              techniques?: Record<
                string,
                { received: number; broadcasts: number } | undefined
              >;
            }).techniques ?? {};
            // Until page.js has run, there is no state yet: keep waiting.
            return ["websocket", "sse", "long-polling", "polling", "iframe"]
              .every((t) =>
                (state[t]?.received ?? 0) >= 8 &&
                (state[t]?.broadcasts ?? 0) >= 1
              );
          },
          undefined,
          { timeout: 60_000 },
        );
        // Let the server's figures reach the page, then draw.
        await page.waitForTimeout(2000);
        const state = await page.evaluate(() =>
          (globalThis as unknown as { techniques: Record<string, unknown> })
            .techniques
        ) as Record<string, Technique> & {
          server: Record<string, { bytesPerMessage: number }>;
          auto: string;
        };
        for (
          const transport of [
            "websocket",
            "sse",
            "long-polling",
            "polling",
            "iframe",
          ]
        ) {
          const technique = state[transport]!;
          assertEquals(technique.status, "open", transport);
          assertEquals(technique.transport, transport);
          assertEquals(technique.error, null);
          assert(technique.received >= 8, transport);
          // The broadcast from the long-polling page reached every transport.
          assert(technique.broadcasts >= 1, transport);
          assert(state.server[transport]!.bytesPerMessage > 0, transport);
        }
        // With the WebSocket available, the default order lands on it.
        assertEquals(state.auto, "websocket");
        // The figures the seed predicts: framing is smallest on WebSocket.
        const perMessage = (t: string) => state.server[t]!.bytesPerMessage;
        for (const t of ["sse", "long-polling", "polling", "iframe"]) {
          assert(perMessage("websocket") < perMessage(t), t);
        }
        // The charts are drawn: one bar per transport in each chart.
        assertEquals(await page.locator("#latency rect").count() >= 5, true);
        assertEquals(await page.locator("#bytes rect").count(), 5);
        assertEquals(await page.locator("#requests rect").count(), 5);
        await Deno.mkdir("tests/artifacts", { recursive: true });
        await page.screenshot({
          path: "tests/artifacts/techniques.png",
          fullPage: true,
        });
      });
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "Chromium: with the WebSocket upgrade refused, connectRealtime() lands on SSE",
  ignore: !hasChromium && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTechniques({ port: 0, refuseWebSocket: true });
    try {
      await withBrowser(async (page) => {
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        await page.waitForFunction(
          () =>
            (globalThis as unknown as { techniques?: { auto: unknown } })
              .techniques?.auto != null,
          undefined,
          { timeout: 60_000 },
        );
        const auto = await page.evaluate(() =>
          (globalThis as unknown as { techniques: { auto: string } })
            .techniques.auto
        );
        assertEquals(auto, "sse");
      });
    } finally {
      await server.shutdown();
    }
  },
});

// Strings a forever frame must carry without leaving its <script>.
const NASTY = [
  "</script><script>parent.evil('script')</script>",
  "<!--<script>parent.evil('comment')//",
  "</SCRIPT >",
  "\u2028\u2029",
  "-->",
  "line\r\nbreak",
];

Deno.test({
  name:
    "Chromium: the iframe stream delivers </script>, <!-- and U+2028 intact, with no padding",
  ignore: !hasChromium && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const client = await bundleClient();
    const handler = realtime({ transports: ["iframe"] }, (connection) => {
      const writer = connection.writable.getWriter();
      for (const message of NASTY) writer.write(message).catch(() => {});
      // The document stays open: each value runs as it arrives, which is
      // what shows Chromium needs no padding to parse incrementally.
    });
    const PAGE = `<!doctype html><meta charset=utf-8><body><script type=module>
      import { connectRealtime } from "/client.js";
      window.evil = (where) => (window.broken ??= []).push(where);
      const connection = await connectRealtime("/rt", { transports: ["iframe"] });
      const reader = connection.readable.getReader();
      const got = [];
      for (let i = 0; i < ${NASTY.length}; i++) got.push((await reader.read()).value);
      window.result = { got, transport: connection.transport, broken: window.broken ?? [] };
    </script>`;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => {
        const { pathname } = new URL(request.url);
        if (pathname === "/client.js") {
          return new Response(client, {
            headers: { "content-type": "text/javascript" },
          });
        }
        if (pathname === "/") {
          return new Response(PAGE, {
            headers: { "content-type": "text/html" },
          });
        }
        return handler(request);
      },
    );
    try {
      await withBrowser(async (page) => {
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        await page.waitForFunction(() => "result" in globalThis, undefined, {
          timeout: 60_000,
        });
        const result = await page.evaluate(() =>
          (globalThis as unknown as { result: unknown }).result
        ) as { got: string[]; transport: string; broken: string[] };
        assertEquals(result.transport, "iframe");
        assertEquals(result.got, NASTY);
        assertEquals(result.broken, []);
      });
    } finally {
      handler.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "Chromium: iframe documents that end are loaded again from the last id, each message once",
  ignore: !hasChromium && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const client = await bundleClient();
    // A document ends after about two messages: many reloads in one run.
    const handler = realtime(
      { transports: ["iframe"], iframeStreamBytes: 20 },
      (connection) => {
        connection.readable.pipeTo(connection.writable).catch(() => {});
      },
    );
    const PAGE = `<!doctype html><meta charset=utf-8><body><script type=module>
      import { connectRealtime } from "/client.js";
      const connection = await connectRealtime("/rt", { transports: ["iframe"] });
      const writer = connection.writable.getWriter();
      const reader = connection.readable.getReader();
      const got = [];
      for (let i = 0; i < 40; i++) {
        writer.write("m" + i);
        got.push((await reader.read()).value);
      }
      connection.close({ closeCode: 1000, reason: "done" });
      window.result = { got, closed: await connection.closed };
    </script>`;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => {
        const { pathname } = new URL(request.url);
        if (pathname === "/client.js") {
          return new Response(client, {
            headers: { "content-type": "text/javascript" },
          });
        }
        if (pathname === "/") {
          return new Response(PAGE, {
            headers: { "content-type": "text/html" },
          });
        }
        return handler(request);
      },
    );
    try {
      await withBrowser(async (page) => {
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        await page.waitForFunction(() => "result" in globalThis, undefined, {
          timeout: 60_000,
        });
        const result = await page.evaluate(() =>
          (globalThis as unknown as { result: unknown }).result
        ) as { got: string[]; closed: unknown };
        assertEquals(result.got, Array.from({ length: 40 }, (_, i) => `m${i}`));
        assertEquals(result.closed, { closeCode: 1000, reason: "done" });
      });
    } finally {
      handler.close();
      await server.shutdown();
    }
  },
});
