// Hostile and broken clients of serve()'s plain HTTP (the fetch option, run
// by node:http): requests that must not crash the process, waits that must
// end, bytes that must stay in order. Seen from raw sockets on loopback.

import { assert, assertEquals, assertMatch } from "@std/assert";
import { serve, type WebSocketServer } from "../mod.ts";
import { encodeFrame, Opcode } from "../lib/codec/mod.ts";

const encoder = new TextEncoder();
const latin1 = (bytes: Uint8Array) => new TextDecoder("latin1").decode(bytes);

// A deadlock guard, not a timing assertion: far longer than the timeouts
// under test (1 s), for a loaded machine.
const WINDOW = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(
  fetch: (request: Request) => Response | Promise<Response>,
  extra: Parameters<typeof serve>[0] = {},
): WebSocketServer {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onError() {},
    fetch,
    ...extra,
  }, (connection) => {
    connection.readable.pipeTo(connection.writable).catch(() => {});
  });
}

/**
 * Reads until the peer closes, `until` holds, or `ms` pass; returns what
 * was read and whether the peer closed.
 */
async function readUntil(
  conn: Deno.Conn,
  ms: number,
  until: (text: string) => boolean = () => false,
): Promise<{ closed: boolean; text: string }> {
  let text = "";
  const buffer = new Uint8Array(65536);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) =>
    timer = setTimeout(() => r("timeout"), ms)
  );
  try {
    while (!until(text)) {
      const n = await Promise.race([
        conn.read(buffer).catch(() => null),
        timeout,
      ]);
      if (n === "timeout") return { closed: false, text };
      if (n === null) return { closed: true, text };
      text += latin1(buffer.subarray(0, n));
    }
    return { closed: false, text };
  } finally {
    clearTimeout(timer);
  }
}

const UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

// 1. One request must not end the process: node:http's "upgrade" event
// runs in a socket's data handler, where a throw is an unhandled rejection.

async function startChild(...extra: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fixtures/plain_http_child.ts", import.meta.url).pathname,
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  await child.stdout.cancel();
  return { child, port: Number(text.trim()) };
}

async function alive(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`);
    await response.text();
    return response.ok;
  } catch {
    return false;
  }
}

for (
  const [name, head, status] of [
    [
      "a first request with Upgrade: h2c and a Host that makes no URL",
      "GET / HTTP/1.1\r\nHost: a b\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
      "400",
    ],
    [
      "a WebSocket upgrade with a Host that makes no URL after a plain request",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a b\r\n" +
      UPGRADE + "\r\n",
      "400",
    ],
    [
      "TRACE with Connection: Upgrade (a method Request refuses)",
      "TRACE / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
      "400",
    ],
  ] as const
) {
  Deno.test(`serve() answers and survives ${name}`, async () => {
    const { child, port } = await startChild();
    try {
      assert(await alive(port), "the child serves before the request");
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(encoder.encode(head));
      const { text, closed } = await readUntil(conn, WINDOW);
      conn.close();
      assert(closed, "the connection stays open");
      assertMatch(text, new RegExp(`HTTP/1\\.1 ${status} `));
      const stillAlive = await alive(port);
      let stderr = "";
      if (!stillAlive) {
        child.kill();
        await child.status;
        stderr = new TextDecoder().decode(
          new Uint8Array(await new Response(child.stderr).arrayBuffer()),
        );
      }
      assert(stillAlive, `the server process died:\n${stderr.slice(0, 1500)}`);
    } finally {
      try {
        child.kill();
      } catch {
        // Gone.
      }
      await child.status;
      await child.stderr.cancel().catch(() => {});
    }
  });
}

// 2. Every wait of a plain exchange has a bound.

Deno.test("a request body that stops arriving is cut off", async () => {
  let settled: Promise<string> = Promise.resolve("no request");
  const server = start((request) => {
    settled = request.text().then(() => "read", (e) => e.code ?? String(e));
    return settled.then(() => new Response("done"));
  }, { handshakeTimeout: 1000 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    await conn.write(encoder.encode(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789",
    ));
    const { closed, text } = await readUntil(conn, WINDOW);
    assert(closed, "the server still waits for the body");
    assertMatch(text, /^HTTP\/1\.1 408 /);
    assertEquals(await settled, "ERR_BODY_TIMEOUT");
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a second request head that trickles in is cut off", async () => {
  const server = start(() => new Response("one"), { handshakeTimeout: 1000 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    // The first response, then the start of a second head, a byte a second.
    await sleep(200);
    await conn.write(
      encoder.encode("GET /two HTTP/1.1\r\nHost: a\r\nX-Slow: "),
    );
    const deadline = Date.now() + WINDOW;
    let closed = false;
    while (!closed && Date.now() < deadline) {
      closed = (await readUntil(conn, 1000)).closed;
      await conn.write(encoder.encode("x")).catch(() => {});
    }
    assert(closed, "a head that never ends still holds the connection");
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a client that never reads a streamed response is cut off", async () => {
  const cancelled = Promise.withResolvers<void>();
  const server = start(() => {
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(chunk);
        },
        cancel() {
          cancelled.resolve();
        },
      }, { highWaterMark: 0 }),
    );
  }, { sendTimeout: 1000 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await conn.write(encoder.encode("GET /big HTTP/1.1\r\nHost: a\r\n\r\n"));
    // Never read: the kernel's buffers fill, and the server's write waits.
    const result = await Promise.race([
      cancelled.promise.then(() => "cancelled"),
      new Promise((r) => timer = setTimeout(() => r("still waiting"), WINDOW)),
    ]);
    assertEquals(result, "cancelled");
  } finally {
    clearTimeout(timer);
    conn.close();
    await server.shutdown();
  }
});

// 3. Bytes in order: a pipelined upgrade waits for the responses before it.

Deno.test("a plain request then a pipelined upgrade: the response comes before the 101", async () => {
  const server = start(async () => {
    await sleep(200); // a handler that takes a moment
    return new Response("plain body");
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    await conn.write(encoder.encode(
      "GET /page HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\n" +
        UPGRADE + "\r\n",
    ));
    const { text } = await readUntil(
      conn,
      WINDOW,
      (t) => t.includes("plain body") && t.includes(" 101 "),
    );
    const plainAt = text.indexOf("HTTP/1.1 200");
    const upgradeAt = text.indexOf("HTTP/1.1 101");
    assert(plainAt >= 0 && upgradeAt >= 0, JSON.stringify(text));
    assert(plainAt < upgradeAt, `the 101 came first: ${JSON.stringify(text)}`);
    // And the WebSocket works after it.
    await conn.write(encodeFrame({
      fin: true,
      rsv1: false,
      rsv2: false,
      rsv3: false,
      opcode: Opcode.Text,
      payload: encoder.encode("echo me"),
      mask: new Uint8Array([1, 2, 3, 4]),
    }));
    const echo = await readUntil(conn, WINDOW, (t) => t.includes("echo me"));
    assert(echo.text.includes("echo me"), JSON.stringify(echo.text));
  } finally {
    conn.close();
    await server.shutdown();
  }
});

// 4. A body the handler never reads does not stall the connection.

Deno.test("a handler that ignores the body: the next request is answered", async () => {
  const server = start((request) =>
    new Response(new URL(request.url).pathname)
  );
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    const all = new Uint8Array([
      ...encoder.encode(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n",
      ),
      ...new Uint8Array(1 << 20),
      ...encoder.encode("GET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
    ]);
    const writing = conn.write(all).catch(() => 0);
    const last = "/next\r\n0\r\n\r\n"; // the second body, chunked
    const { text } = await readUntil(conn, WINDOW, (t) => t.endsWith(last));
    await writing;
    assertEquals(text.match(/HTTP\/1\.1 \d+/g), [
      "HTTP/1.1 200",
      "HTTP/1.1 200",
    ]);
    assert(text.endsWith(last), JSON.stringify(text));
  } finally {
    conn.close();
    await server.shutdown();
  }
});

// 5. Cheaper ones.

Deno.test("a request target that is not origin-form gets 400, not a spoofed URL", async (t) => {
  const seen: string[] = [];
  const server = start((request) => {
    seen.push(request.url);
    return new Response("ok");
  });
  const send = async (head: string) => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    try {
      await conn.write(encoder.encode(head));
      return (await readUntil(conn, WINDOW, (t) => /\r\n\r\n/.test(t))).text;
    } finally {
      conn.close();
    }
  };
  try {
    for (const target of ["@evil.example/x", ".evil.example/x", ":99/x"]) {
      await t.step(`plain GET ${target}`, async () => {
        assertMatch(
          await send(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`),
          /^HTTP\/1\.1 400 /,
        );
      });
      await t.step(`WebSocket upgrade GET ${target}`, async () => {
        assertMatch(
          await send(`GET ${target} HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`),
          /^HTTP\/1\.1 400 /,
        );
      });
    }
    await t.step("absolute-form: the target's authority", async () => {
      assertMatch(
        await send("GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        /^HTTP\/1\.1 200 /,
      );
    });
    assertEquals(seen, ["http://b.example/x"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a request node:http cannot parse gets 400 or 431, then the connection closes", async (t) => {
  const server = start(() => new Response("one"), { maxHeaderSize: 4096 });
  const send = async (second: string) => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    try {
      // The first head is serve()'s own; the second is node:http's.
      await conn.write(
        encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n" + second),
      );
      return await readUntil(conn, WINDOW);
    } finally {
      conn.close();
    }
  };
  try {
    await t.step("a malformed request line", async () => {
      const { text, closed } = await send("NOT HTTP AT ALL\r\n\r\n");
      assert(closed);
      assertEquals(text.match(/HTTP\/1\.1 \d+/g), [
        "HTTP/1.1 200",
        "HTTP/1.1 400",
      ]);
    });
    await t.step("a head over maxHeaderSize", async () => {
      const { text, closed } = await send(
        `GET /2 HTTP/1.1\r\nHost: a\r\nX-Big: ${"b".repeat(8192)}\r\n\r\n`,
      );
      assert(closed);
      assertEquals(text.match(/HTTP\/1\.1 \d+/g), [
        "HTTP/1.1 200",
        "HTTP/1.1 431",
      ]);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("by default, clients that fail or go away log nothing", async () => {
  const { child, port } = await startChild("default-on-error");
  try {
    const attempts = [
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nNOT HTTP\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a b\r\n" +
      UPGRADE + "\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc",
    ];
    for (const head of attempts) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(encoder.encode(head));
      await readUntil(conn, 300);
      conn.close(); // unread bytes, or a body cut short
    }
    assert(await alive(port));
  } finally {
    child.kill();
    await child.status;
  }
  const stderr = new TextDecoder().decode(
    new Uint8Array(await new Response(child.stderr).arrayBuffer()),
  );
  assertEquals(stderr, "");
});
