// Plain HTTP beside WebSocket on serve()'s port: the fetch option, run by
// node:http on the connections serve() hands it. Seen from real clients:
// Deno's fetch, raw sockets that write exact bytes, and our connect().

import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect, serve, type WebSocketServer } from "../mod.ts";
import { encodeFrame, Opcode } from "../lib/codec/mod.ts";
import { prng, randomBytes } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A deadlock guard, not a timing assertion: the machine is loaded, so it
// is far longer than any of these tests needs.
const GUARD = 60_000;

function guard<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`stuck: ${what}`)),
        GUARD,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function start(
  fetch: (request: Request) => Response | Promise<Response>,
  extra: Parameters<typeof serve>[0] = {},
): WebSocketServer {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    fetch,
    ...extra,
  }, (connection) => {
    connection.readable.pipeTo(connection.writable).catch(() => {});
  });
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return [...new Uint8Array(digest)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads HTTP/1.1 responses off a raw connection, bytes kept between them. */
class RawHttp {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.#conn.read(chunk).catch(() => null);
    if (n === null) return false;
    const grown = new Uint8Array(this.#buffer.length + n);
    grown.set(this.#buffer);
    grown.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = grown;
    return true;
  }

  async #line(): Promise<string> {
    while (true) {
      const at = this.#buffer.findIndex((b, i) =>
        b === 13 && this.#buffer[i + 1] === 10
      );
      if (at >= 0) {
        const line = decoder.decode(this.#buffer.subarray(0, at));
        this.#buffer = this.#buffer.subarray(at + 2);
        return line;
      }
      if (!(await this.#more())) throw new Error("EOF inside a line");
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) {
      if (!(await this.#more())) throw new Error("EOF inside a body");
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** The next response: status, headers (lower-case), body (de-chunked). */
  async response(): Promise<
    { status: number; headers: Map<string, string>; body: string }
  > {
    const status = Number((await this.#line()).split(" ")[1]);
    const headers = new Map<string, string>();
    for (
      let line = await this.#line();
      line !== "";
      line = await this.#line()
    ) {
      const colon = line.indexOf(":");
      headers.set(
        line.slice(0, colon).toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
    let body = "";
    if (headers.get("transfer-encoding") === "chunked") {
      while (true) {
        const size = parseInt(await this.#line(), 16);
        body += decoder.decode(await this.#bytes(size));
        await this.#line();
        if (size === 0) break;
      }
    } else if (status !== 101) {
      body = decoder.decode(
        await this.#bytes(Number(headers.get("content-length") ?? 0)),
      );
    }
    return { status, headers, body };
  }

  /** What is left unread, then EOF or a reset: whether the peer closed. */
  async closed(): Promise<boolean> {
    while (await this.#more()) { /* drain */ }
    return true;
  }

  take(): Uint8Array {
    const out = this.#buffer;
    this.#buffer = new Uint8Array(0);
    return out;
  }
}

Deno.test("a streamed response arrives chunk by chunk", async () => {
  // The server makes chunk k + 1 only once the client has read chunk k:
  // a server that buffered the response would deadlock here (the guard).
  const COUNT = 100;
  const read = Array.from({ length: COUNT }, () => deferred());
  let cancelled = false;
  const server = start(() => {
    let k = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (k > 0) await read[k - 1]!.promise;
          if (k === COUNT) {
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(`chunk ${k}\n`));
          k++;
        },
        cancel() {
          cancelled = true;
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "text/plain" } },
    );
  });
  try {
    // The head comes before the body is done: before chunk 1 is made.
    const response = await guard(
      fetch(`http://127.0.0.1:${server.addr.port}/sse`),
      "the response head",
    );
    assertEquals(response.headers.get("content-type"), "text/plain");
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    for (let k = 0; k < COUNT; k++) {
      while (!text.includes(`chunk ${k}\n`)) {
        const { value, done } = await guard(reader.read(), `chunk ${k}`);
        assert(!done, `the body ended before chunk ${k}`);
        text += value;
      }
      // Nothing past chunk k can have come: it is not made yet.
      assert(text.endsWith(`chunk ${k}\n`), text.slice(-40));
      read[k]!.resolve();
    }
    assert((await guard(reader.read(), "the end")).done);
    assertEquals(text.split("\n").length, COUNT + 1);
    assert(!cancelled);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a 10 MiB POST body arrives whole, streamed or sized", async (t) => {
  const server = start(async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    return new Response(`${body.length} ${await sha256(body)}`);
  }, { maxBodySize: 16 << 20 });
  const url = `http://127.0.0.1:${server.addr.port}/upload`;
  const payload = randomBytes(prng(15), 10 << 20) as Uint8Array<ArrayBuffer>;
  const expected = `${payload.length} ${await sha256(payload)}`;
  try {
    await t.step("with Content-Length", async () => {
      const response = await fetch(url, { method: "POST", body: payload });
      assertEquals(await response.text(), expected);
    });
    await t.step("chunked, in 100 KiB pieces", async () => {
      let at = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= payload.length) return controller.close();
          controller.enqueue(payload.slice(at, at += 100 * 1024));
        },
      });
      const response = await fetch(url, { method: "POST", body });
      assertEquals(await response.text(), expected);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("keep-alive: two requests on one connection", async () => {
  let served = 0;
  const server = start((request) =>
    new Response(`${++served} ${new URL(request.url).pathname}`)
  );
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    const http = new RawHttp(conn);
    await conn.write(encoder.encode("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));
    const first = await http.response();
    assertEquals([first.status, first.body], [200, "1 /one"]);
    assert(first.headers.get("connection") !== "close");
    await conn.write(encoder.encode("GET /two HTTP/1.1\r\nHost: a\r\n\r\n"));
    const second = await http.response();
    assertEquals([second.status, second.body], [200, "2 /two"]);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("an idle kept-alive connection is closed (keepAliveTimeout)", async () => {
  const server = start(() => new Response("once"));
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    const http = new RawHttp(conn);
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assertEquals((await http.response()).body, "once");
    // node:http's 5 s (+ 1 s) between requests: the server closes.
    assert(await guard(http.closed(), "the idle connection's close"));
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("pipelining: two requests in one write, answered in order", async () => {
  const server = start(async (request) => {
    // The first answer is the slower one: order must still hold.
    const path = new URL(request.url).pathname;
    if (path === "/slow") await new Promise((r) => setTimeout(r, 20));
    return new Response(`${request.method} ${path} ${await request.text()}`);
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    const http = new RawHttp(conn);
    await conn.write(encoder.encode(
      "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
        "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    assertEquals((await http.response()).body, "POST /slow hello");
    assertEquals((await http.response()).body, "GET /fast ");
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a body over maxBodySize gets 413", async (t) => {
  let called = 0;
  const errors: unknown[] = [];
  const server = start(async (request) => {
    called++;
    try {
      await request.arrayBuffer();
    } catch (error) {
      errors.push(error);
      throw error;
    }
    return new Response("read it all");
  }, { maxBodySize: 1000, onError() {} });
  const port = server.addr.port;
  try {
    await t.step(
      "a Content-Length over it: before fetch is called",
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/`, {
          method: "POST",
          body: new Uint8Array(1001),
        });
        assertEquals(response.status, 413);
        await response.body?.cancel();
        assertEquals(called, 0);
      },
    );
    await t.step("exactly the limit is accepted", async () => {
      const response = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        body: new Uint8Array(1000),
      });
      assertEquals(await response.text(), "read it all");
    });
    await t.step("a chunked body that grows past it", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const http = new RawHttp(conn);
        const piece = "x".repeat(600);
        await conn.write(encoder.encode(
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
            `258\r\n${piece}\r\n258\r\n${piece}\r\n`,
        ));
        const response = await http.response();
        assertEquals(response.status, 413);
        assertEquals(response.headers.get("connection"), "close");
        assert(await guard(http.closed(), "the close after 413"));
      } finally {
        conn.close();
      }
      assertEquals(
        (errors.at(-1) as { code?: string }).code,
        "ERR_BODY_TOO_LARGE",
      );
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("a WebSocket and plain HTTP on one port at once", async () => {
  const release = deferred();
  const server = start((request) => {
    if (new URL(request.url).pathname === "/stream") {
      let sent = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (sent === 1) await release.promise;
            if (sent === 2) return controller.close();
            controller.enqueue(encoder.encode(`part ${sent++};`));
          },
        }, { highWaterMark: 0 }),
      );
    }
    return new Response("page");
  });
  const port = server.addr.port;
  try {
    // A streamed response stays open while the WebSocket and another
    // request come and go on the same port.
    const streaming = await fetch(`http://127.0.0.1:${port}/stream`);
    const reader = streaming.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    assertEquals((await reader.read()).value, "part 0;");
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const writer = client.writable.getWriter();
    const messages = client.readable.getReader();
    await writer.write("over WebSocket");
    assertEquals(
      await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()),
      "page",
    );
    assertEquals((await messages.read()).value, "over WebSocket");
    assertEquals(server.connections, 1);
    release.resolve();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      rest += r.value;
    }
    assertEquals(rest, "part 1;");
    messages.releaseLock();
    writer.releaseLock();
    client.close({ closeCode: 1000 });
    await client.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("an upgrade after a plain request on the same connection", async () => {
  const server = start(() => new Response("first"));
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    const http = new RawHttp(conn);
    await conn.write(encoder.encode("GET /page HTTP/1.1\r\nHost: a\r\n\r\n"));
    assertEquals((await http.response()).body, "first");
    await conn.write(encoder.encode(
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n\r\n",
    ));
    const upgraded = await http.response();
    assertEquals(upgraded.status, 101);
    assertEquals(
      upgraded.headers.get("sec-websocket-accept"),
      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    );
    // A masked text frame, echoed back unmasked by the server.
    await conn.write(encodeFrame({
      fin: true,
      rsv1: false,
      rsv2: false,
      rsv3: false,
      opcode: Opcode.Text,
      payload: encoder.encode("after keep-alive"),
      mask: new Uint8Array([1, 2, 3, 4]),
    }));
    let bytes = http.take();
    const buffer = new Uint8Array(256);
    while (bytes.length < 2 + 16) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("EOF before the echo");
      const grown = new Uint8Array(bytes.length + n);
      grown.set(bytes);
      grown.set(buffer.subarray(0, n), bytes.length);
      bytes = grown;
    }
    assertEquals(bytes[0], 0x81);
    assertEquals(decoder.decode(bytes.subarray(2, 18)), "after keep-alive");
    assertEquals(server.connections, 1);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("shutdown() ends streamed responses under way and resolves", async () => {
  const cancelled = deferred<unknown>();
  const aborted = deferred();
  const server = start((request) => {
    if (new URL(request.url).pathname === "/idle") return new Response("ok");
    request.signal.addEventListener("abort", () => aborted.resolve());
    let n = 0;
    // An endless stream of events, one per read.
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(encoder.encode(`data: ${n++}\n\n`));
        },
        cancel(reason) {
          cancelled.resolve(reason);
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  const port = server.addr.port;
  const response = await fetch(`http://127.0.0.1:${port}/events`);
  const reader = response.body!.getReader();
  assert(!(await reader.read()).done);
  // An idle kept-alive connection too.
  const idle = await Deno.connect({ hostname: "127.0.0.1", port });
  const http = new RawHttp(idle);
  await idle.write(encoder.encode("GET /idle HTTP/1.1\r\nHost: a\r\n\r\n"));
  assertEquals((await http.response()).body, "ok");

  await guard(server.shutdown(), "shutdown");
  await guard(cancelled.promise, "the stream's cancel");
  await guard(aborted.promise, "the request's signal");
  // The client sees its stream end (or fail): it does not hang.
  await guard(
    (async () => {
      try {
        while (!(await reader.read()).done) { /* events still in flight */ }
      } catch {
        // Cut off: also an end.
      }
    })(),
    "the client's end",
  );
  assert(await guard(http.closed(), "the idle connection's close"));
  idle.close();
});

Deno.test("plain HTTP over TLS", async () => {
  const fixtures = new URL("./fixtures/", import.meta.url);
  const cert = Deno.readTextFileSync(new URL("cert.pem", fixtures));
  const key = Deno.readTextFileSync(new URL("key.pem", fixtures));
  const ca = Deno.readTextFileSync(new URL("ca.pem", fixtures));
  const server = start(async (request) => {
    const body = await request.text();
    return new Response(
      new ReadableStream({
        start(controller) {
          controller.enqueue(encoder.encode(`${request.url} `));
          controller.enqueue(encoder.encode(body));
          controller.close();
        },
      }),
    );
  }, { tls: { cert, key } });
  const client = Deno.createHttpClient({ caCerts: [ca] });
  try {
    const url = `https://localhost:${server.addr.port}/secure`;
    const response = await fetch(url, {
      method: "POST",
      body: "over TLS",
      client,
    });
    assertEquals(await response.text(), `${url} over TLS`);
    const ws = await connect(`wss://localhost:${server.addr.port}/`, {
      caCerts: [ca],
    });
    ws.close();
    await ws.closed;
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("without fetch, a plain request gets 426 and no HTTP server", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => {},
  );
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assertEquals(response.status, 426);
    assertEquals(response.headers.get("upgrade"), "websocket");
    assertMatch(await response.text(), /WebSocket endpoint/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a handler that throws gets 500, reported to onError", async () => {
  const errors: unknown[] = [];
  const server = start(() => {
    throw new Error("boom");
  }, { onError: (error) => errors.push(error) });
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assertEquals(response.status, 500);
    await response.body?.cancel();
    assertEquals((errors[0] as Error).message, "boom");
  } finally {
    await server.shutdown();
  }
});
