// allowedOrigins, the defence against cross-site WebSocket hijacking, at
// the three server entry points: serve(), acceptWebSocket() on a raw
// socket, and upgradeWebSocket() under Deno.serve. What the client sees:
// 101, or 403 before any WebSocket state.

import { assertEquals, assertThrows } from "@std/assert";
import {
  acceptWebSocket,
  serve,
  upgradeWebSocket,
  WebSocketHandshakeError,
} from "../mod.ts";
import { checkOrigin, HandshakeRejection } from "../lib/handshake/mod.ts";
import { upgradeRequest } from "./_helpers.ts";

const decoder = new TextDecoder();

/** Sends one upgrade request; returns the status of the answer. */
async function status(
  port: number,
  headers: Record<string, string | undefined>,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(upgradeRequest(headers));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
    return Number(text.split(" ")[1]);
  } finally {
    conn.close();
  }
}

interface Entry {
  name: string;
  start(allowedOrigins?: string[]): {
    port: number;
    stop(): Promise<void>;
  };
}

const ENTRIES: Entry[] = [
  {
    name: "serve",
    start(allowedOrigins) {
      const server = serve({
        port: 0,
        hostname: "127.0.0.1",
        onListen() {},
        allowedOrigins,
      }, (connection) => connection.close());
      return { port: server.addr.port, stop: () => server.shutdown() };
    },
  },
  {
    name: "acceptWebSocket",
    start(allowedOrigins) {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const tasks: Promise<void>[] = [];
      const loop = (async () => {
        for await (const conn of listener) {
          tasks.push((async () => {
            // The head is small and comes in one read on loopback.
            const buffer = new Uint8Array(4096);
            const n = (await conn.read(buffer)) ?? 0;
            const lines = decoder.decode(buffer.subarray(0, n)).split("\r\n");
            const headers = new Headers();
            for (const line of lines.slice(1)) {
              const colon = line.indexOf(":");
              if (colon > 0) {
                headers.append(line.slice(0, colon), line.slice(colon + 1));
              }
            }
            const request = new Request("http://127.0.0.1/", { headers });
            try {
              const connection = await acceptWebSocket(conn, request, {
                allowedOrigins,
              });
              connection.close();
              await connection.closed.catch(() => {});
            } catch (error) {
              if (!(error instanceof HandshakeRejection)) throw error;
            }
          })());
        }
      })();
      return {
        port: (listener.addr as Deno.NetAddr).port,
        async stop() {
          listener.close();
          await loop;
          await Promise.all(tasks);
        },
      };
    },
  },
  {
    name: "upgradeWebSocket",
    start(allowedOrigins) {
      const server = Deno.serve(
        { port: 0, hostname: "127.0.0.1", onListen() {} },
        (request) => {
          try {
            const { response, connection } = upgradeWebSocket(request, {
              allowedOrigins,
            });
            connection.opened.then(() => connection.close(), () => {});
            return response;
          } catch (error) {
            if (!(error instanceof WebSocketHandshakeError)) throw error;
            return error.toResponse();
          }
        },
      );
      return { port: server.addr.port, stop: () => server.shutdown() };
    },
  },
];

for (const entry of ENTRIES) {
  Deno.test(`${entry.name}: allowedOrigins`, async (t) => {
    await t.step("by default: same host, or no Origin", async () => {
      const server = entry.start();
      try {
        const host = `127.0.0.1:${server.port}`;
        const cases: [string | undefined, number][] = [
          [undefined, 101], // not a browser
          [`http://${host}`, 101], // the page's own server
          [`HTTP://127.0.0.1:${server.port}`, 101], // case does not matter
          [`http://evil.example`, 403], // another site
          [`http://127.0.0.1:${server.port + 1}`, 403], // another port
          [`http://localhost:${server.port}`, 403], // another host name
          ["null", 403], // a sandboxed frame or a file: page
          ["not a url", 403],
        ];
        for (const [origin, expected] of cases) {
          assertEquals(
            await status(server.port, { Host: host, Origin: origin }),
            expected,
            `Origin: ${origin}`,
          );
        }
      } finally {
        await server.stop();
      }
    });
    await t.step("a listed origin is accepted, others refused", async () => {
      const server = entry.start(["https://app.example:443", "null"]);
      try {
        const host = `127.0.0.1:${server.port}`;
        const cases: [string, number][] = [
          ["https://app.example", 101], // the default port is no port
          ["null", 101],
          ["https://other.example", 403],
          ["http://app.example", 403], // another scheme is another origin
          [`http://${host}`, 101], // the same host still is
        ];
        for (const [origin, expected] of cases) {
          assertEquals(
            await status(server.port, { Host: host, Origin: origin }),
            expected,
            `Origin: ${origin}`,
          );
        }
      } finally {
        await server.stop();
      }
    });
    await t.step('"*" accepts every origin', async () => {
      const server = entry.start(["*"]);
      try {
        for (const origin of ["http://evil.example", "null", undefined]) {
          assertEquals(
            await status(server.port, {
              Host: `127.0.0.1:${server.port}`,
              Origin: origin,
            }),
            101,
            `Origin: ${origin}`,
          );
        }
      } finally {
        await server.stop();
      }
    });
  });
}

Deno.test("serve refuses a cross-origin upgrade before onUpgrade", async () => {
  let asked = 0;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onUpgrade() {
      asked++;
    },
  }, (connection) => connection.close());
  try {
    assertEquals(
      await status(server.addr.port, { Origin: "https://evil.example" }),
      403,
    );
    assertEquals(asked, 0);
    assertEquals(server.connections, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("checkOrigin compares with the Host's default port", () => {
  const request = (host: string, origin: string) =>
    new Request("http://x/", { headers: { host, origin } });
  checkOrigin(request("chat.example", "https://chat.example"));
  checkOrigin(request("chat.example:443", "https://chat.example"));
  checkOrigin(request("chat.example", "http://chat.example:80"));
  checkOrigin(request("[::1]:8080", "http://[::1]:8080"));
  for (
    const [host, origin] of [
      ["chat.example:8443", "https://chat.example"],
      ["chat.example", "https://chat.example.evil"],
      ["chat.example.evil", "https://chat.example"],
    ]
  ) {
    assertThrows(
      () => checkOrigin(request(host!, origin!)),
      HandshakeRejection,
      "is not allowed",
    );
  }
});

Deno.test("allowedOrigins is checked where it is passed", () => {
  for (const value of [["example.com"], ["https://"], "https://a.example"]) {
    assertThrows(
      () =>
        serve({
          port: 0,
          onListen() {},
          allowedOrigins: value as string[],
        }, () => {}),
      TypeError,
      "allowedOrigins",
    );
    assertThrows(
      () =>
        upgradeWebSocket(
          new Request("http://x/", { headers: { upgrade: "websocket" } }),
          { allowedOrigins: value as string[] },
        ),
      TypeError,
      "allowedOrigins",
    );
  }
});
