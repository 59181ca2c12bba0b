// The browser-shaped WebSocket (lib/net/websocket.ts), against real servers
// on loopback: Deno.serve with Deno.upgradeWebSocket, our serve(), and a raw
// TCP server that drops the connection. One test runs the same script on
// Deno's native WebSocket and ours and compares what each saw.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "@std/assert";
import { serve, WebSocket, type WebSocketConnection } from "../mod.ts";
import { acceptKey } from "../lib/handshake/mod.ts";
import { concat } from "./_helpers.ts";

const NativeWebSocket = globalThis.WebSocket;
type AnyWebSocket = InstanceType<typeof NativeWebSocket> | WebSocket;
type Constructor = new (
  url: string,
  protocols?: string | string[],
) => AnyWebSocket;

// --- servers ---------------------------------------------------------

/**
 * Deno.serve + Deno.upgradeWebSocket. /refuse answers 403. Otherwise it
 * echoes, and a text "close:CODE:REASON" makes it close with that code.
 */
function nativeServer(): { url: string; server: Deno.HttpServer } {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/refuse") return new Response("no", { status: 403 });
      const offered = request.headers.get("sec-websocket-protocol");
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol: offered ? offered.split(",")[0]!.trim() : undefined,
      });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        const data = event.data;
        if (typeof data === "string" && data.startsWith("close:")) {
          const [, code, reason] = data.split(":");
          socket.close(Number(code), reason);
          return;
        }
        socket.send(data);
      };
      socket.onerror = () => {};
      return response;
    },
  );
  return { url: `ws://127.0.0.1:${server.addr.port}`, server };
}

/** The same behaviour as nativeServer, on our serve(). */
function servedEchoServer(): {
  url: string;
  server: { shutdown(): Promise<void> };
} {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onUpgrade(request, { protocols }) {
      if (new URL(request.url).pathname === "/refuse") return { reject: 403 };
      return { protocol: protocols[0] };
    },
  }, async (connection) => {
    const writer = connection.writable.getWriter();
    try {
      for await (const data of connection.readable) {
        if (typeof data === "string" && data.startsWith("close:")) {
          const [, code, reason] = data.split(":");
          connection.close({ closeCode: Number(code), reason });
          continue;
        }
        await writer.write(data);
      }
    } catch {
      // The client went away.
    }
  });
  return { url: `ws://127.0.0.1:${server.addr.port}`, server };
}

/**
 * A raw TCP server: it answers the handshake and sends `bytes` (by default
 * the text "bye"). With `drop` it then ends TCP with no close frame;
 * without, it reads what the client sends until the client ends TCP, and
 * `received` resolves with those bytes.
 */
function rawServer(
  bytes = new Uint8Array([0x81, 3, 0x62, 0x79, 0x65]),
  drop = true,
): {
  url: string;
  done: Promise<void>;
  received: Promise<Uint8Array>;
  close(): void;
} {
  const received = Promise.withResolvers<Uint8Array>();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const done = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        let head = "";
        const buffer = new Uint8Array(4096);
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) break;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
        await conn.write(
          new TextEncoder().encode(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
              `Connection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptKey(
                key,
              )}\r\n\r\n`,
          ),
        );
        await conn.write(bytes);
        if (!drop) {
          const chunks: Uint8Array[] = [];
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            chunks.push(buffer.slice(0, n));
          }
          received.resolve(concat(...chunks));
        }
        conn.close();
        conns.delete(conn);
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    done,
    received: received.promise,
    close() {
      listener.close();
      for (const conn of conns) conn.close();
    },
  };
}

// --- the script --------------------------------------------------------

function describe(event: Event, socket: AnyWebSocket): string {
  let line = `${event.type} rs=${socket.readyState}`;
  if (event instanceof MessageEvent) {
    const data = event.data;
    line += typeof data === "string"
      ? ` text:${data}`
      : data instanceof Blob
      ? ` blob:${data.size}`
      : data instanceof ArrayBuffer
      ? ` arraybuffer:${new Uint8Array(data).join()}`
      : ` other:${Object.prototype.toString.call(data)}`;
    line += ` origin=${event.origin}`;
  }
  if (event.type === "close") {
    const close = event as CloseEvent;
    line +=
      ` code=${close.code} reason=${close.reason} clean=${close.wasClean}`;
  }
  return line;
}

function threw(action: () => unknown): string {
  try {
    action();
    return "ok";
  } catch (error) {
    return error instanceof DOMException
      ? `DOMException ${error.name}`
      : `${(error as Error).name}`;
  }
}

/** Opens a socket that logs its events; resolves when `close` fires. */
function open(
  WS: Constructor,
  url: string,
  log: string[],
  protocols?: string | string[],
): { socket: AnyWebSocket; closed: Promise<void> } {
  const socket = new WS(url, protocols);
  const closed = new Promise<void>((resolve) => {
    for (const type of ["open", "message", "error", "close"]) {
      socket.addEventListener(type, (event: Event) => {
        log.push(describe(event, socket));
        if (type === "close") resolve();
      });
    }
  });
  return { socket, closed };
}

/** The same actions on either WebSocket; returns what it saw. */
async function script(
  WS: Constructor,
  base: string,
  dropUrl: string,
): Promise<string[]> {
  const log: string[] = [];

  // Validation: nothing connects.
  log.push(`bad scheme: ${threw(() => new WS("ftp://127.0.0.1/"))}`);
  log.push(`fragment: ${threw(() => new WS(`${base}/#x`))}`);
  log.push(`relative: ${threw(() => new WS("/path"))}`);
  log.push(`duplicate: ${threw(() => new WS(base, ["a", "a"]))}`);
  log.push(`not a token: ${threw(() => new WS(base, ["a b"]))}`);

  // 1. Open, send text, binary and a Blob; receive as Blob, then as
  // ArrayBuffer; the server closes.
  {
    log.push("-- echo");
    const { socket, closed } = open(WS, `${base}/echo`, log, ["chat", "x"]);
    log.push(
      `url=${socket.url} rs=${socket.readyState} type=${socket.binaryType}`,
    );
    log.push(`send while connecting: ${threw(() => socket.send("x"))}`);
    const blobs: Promise<string>[] = [];
    let received = 0;
    socket.addEventListener("open", () => {
      log.push(`protocol=${socket.protocol}`);
      socket.send("hello");
      log.push(`bufferedAmount=${socket.bufferedAmount}`);
      socket.send(new Uint8Array([1, 2, 3]));
      socket.send(new Blob([new Uint8Array([4, 5])]));
      socket.send("é");
    });
    socket.addEventListener("message", (event: Event) => {
      const { data } = event as MessageEvent;
      if (data instanceof Blob) {
        blobs.push(data.arrayBuffer().then((b) => new Uint8Array(b).join()));
      }
      received++;
      if (received === 4) {
        socket.binaryType = "invalid" as BinaryType;
        log.push(`binaryType after invalid=${socket.binaryType}`);
        socket.binaryType = "arraybuffer";
        socket.send(new Uint8Array([6, 7, 8]).subarray(1));
        socket.send(new Blob(["ab"]));
        socket.send(new Uint8Array([9]).buffer);
      }
      if (received === 7) socket.send("close:4001:server bye");
    });
    await closed;
    log.push(`blobs: ${(await Promise.all(blobs)).join(" | ")}`);
  }

  // 2. The client closes with a code and a reason.
  {
    log.push("-- client close");
    const { socket, closed } = open(WS, `${base}/echo`, log);
    // Event handler attributes keep the place of their first setting.
    socket.addEventListener("open", () => log.push("listener 1"));
    socket.onopen = () => log.push("onopen A");
    socket.addEventListener("open", () => log.push("listener 2"));
    socket.onopen = () => log.push("onopen B");
    socket.onclose = () => log.push("onclose X");
    socket.addEventListener("close", () => log.push("listener 3"));
    socket.onclose = null;
    socket.onclose = () => log.push("onclose Y");
    log.push(`onclose is set: ${typeof socket.onclose}`);
    socket.addEventListener("message", () => {
      // The messages after it are dropped (readyState is not OPEN).
      // 123 bytes of UTF-8: the most a reason may take.
      socket.close(4000, "é".repeat(61) + "a");
      log.push(`after close() rs=${socket.readyState}`);
      log.push(`send after close: ${threw(() => socket.send("late"))}`);
      log.push(`bufferedAmount after close=${socket.bufferedAmount}`);
      socket.close(4002);
      log.push(`close() again rs=${socket.readyState}`);
    }, { once: true });
    socket.addEventListener("open", () => {
      log.push(`close(999): ${threw(() => socket.close(999))}`);
      log.push(
        `long reason: ${threw(() => socket.close(1000, "é".repeat(62)))}`,
      );
      socket.send("a");
      socket.send("b");
      socket.send("c");
    });
    await closed;
  }

  // 3. The server drops TCP with no close frame.
  {
    log.push("-- dropped");
    const { closed } = open(WS, dropUrl, log);
    await closed;
  }

  // 4. The server refuses the handshake.
  {
    log.push("-- refused");
    const { closed } = open(WS, `${base}/refuse`, log);
    await closed;
  }

  // 5. close() while connecting.
  {
    log.push("-- close while connecting");
    const { socket, closed } = open(WS, `${base}/echo`, log);
    socket.close();
    log.push(`after close() rs=${socket.readyState}`);
    await closed;
  }
  return log;
}

/**
 * Deno's WebSocket where it departs from the WebSockets Standard
 * (websockets.spec.whatwg.org) and HTML, rewritten to what the standard
 * says; ours does that. Each rule names its clause.
 */
function followStandard(native: string[]): string[] {
  const out: string[] = [];
  for (const line of native) {
    // "When a WebSocket message has been received": "1. If readyState is
    // not OPEN, then return." Deno dispatches messages after close().
    if (line.startsWith(`message rs=${WebSocket.CLOSING}`)) continue;
    out.push(
      line
        // Same clause, the MessageEvent's origin: "the serialization of
        // the WebSocket object's url's origin". Deno gives the whole URL.
        .replace(/ origin=(wss?:\/\/[^/]+)\/\S*/, " origin=$1")
        // "When the WebSocket connection is closed": code is "the WebSocket
        // connection close code", which RFC 6455 §7.1.5 makes 1006 when no
        // close frame was received. Deno gives 0.
        .replace(/code=0 (.*clean=false)$/, "code=1006 $1")
        // send(): "Any invocation of this method with a string argument
        // that does not throw an exception must increase the
        // bufferedAmount attribute" (after close() too). Deno does not.
        .replace(
          "bufferedAmount after close=0",
          "bufferedAmount after close=4",
        ),
    );
  }
  // HTML, event handler IDL attributes: setting null deactivates the
  // handler (removes its listener); a later value activates it again, at
  // the end of the list. Deno keeps its first place.
  const y = out.indexOf("onclose Y");
  if (y >= 0 && out[y + 1] === "listener 3") {
    [out[y], out[y + 1]] = [out[y + 1]!, out[y]!];
  }
  return out;
}

for (
  const [name, start] of [
    ["Deno.serve", nativeServer],
    ["our serve()", servedEchoServer],
  ] as const
) {
  Deno.test(`WebSocket: the same script sees the same events on Deno's WebSocket and ours (${name})`, async () => {
    const { url, server } = start();
    const dropping = rawServer();
    try {
      const native = await script(NativeWebSocket, url, dropping.url);
      const ours = await script(WebSocket, url, dropping.url);
      assertEquals(ours, followStandard(native));
    } finally {
      dropping.close();
      await dropping.done;
      await server.shutdown();
    }
  });
}

// --- ours alone, against our serve() -------------------------------------

/** Runs `handler` for each connection of a serve() on loopback. */
function ourServer(
  handler: (connection: WebSocketConnection) => void,
  protocol?: string,
) {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, protocol },
    handler,
  );
  return { url: `ws://127.0.0.1:${server.addr.port}`, server };
}

/** Resolves with the next event of `type`. */
function next<E extends Event = Event>(
  target: EventTarget,
  type: string,
): Promise<E> {
  return new Promise((resolve) => {
    target.addEventListener(type, (event) => resolve(event as E), {
      once: true,
    });
  });
}

/** Waits until `check()` holds, polling; fails after 10 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert(check(), `timed out waiting for ${what}`);
}

Deno.test("WebSocket: the constants, on the class and its prototype, and the URL it keeps", async () => {
  assertEquals(
    [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED],
    [0, 1, 2, 3],
  );
  assertEquals(Object.hasOwn(WebSocket.prototype, "OPEN"), true);
  const { url, server } = ourServer((connection) => {
    connection.close({ closeCode: 4000 });
  });
  // http: is taken as ws:, as the standard's "get a URL record" says.
  const socket = new WebSocket(url.replace("ws:", "http:") + "/a?b=c", "chat");
  assertEquals(socket.url, `${url}/a?b=c`);
  assertEquals(socket.OPEN, 1);
  assertEquals(Object.hasOwn(socket, "OPEN"), false);
  assertEquals(socket.binaryType, "blob");
  const closed = await next<CloseEvent>(socket, "close");
  assertInstanceOf(closed, CloseEvent);
  assertEquals([closed.code, closed.wasClean], [4000, true]);
  await server.shutdown();
});

Deno.test("WebSocket: a subprotocol and permessage-deflate, over our serve()", async () => {
  const { url, server } = ourServer((connection) => {
    connection.readable.pipeTo(connection.writable).catch(() => {});
  }, "chat");
  const socket = new WebSocket(url, ["chat", "other"]);
  await next(socket, "open");
  assertEquals(socket.protocol, "chat");
  assert(socket.extensions.startsWith("permessage-deflate"), socket.extensions);
  const text = "compressible ".repeat(10_000);
  socket.send(text);
  assertEquals((await next<MessageEvent>(socket, "message")).data, text);
  // close()'s code is a WebIDL [Clamp] unsigned short: 3000.5 rounds to
  // even, 3000; 2999.6 rounds to 3000 too.
  assertThrows(() => socket.close(NaN), DOMException, "not NaN");
  const closed = next<CloseEvent>(socket, "close");
  socket.close(2999.6, "done");
  const event = await closed;
  assertEquals([event.code, event.reason, event.wasClean], [
    3000,
    "done",
    true,
  ]);
  await server.shutdown();
});

Deno.test("WebSocket: a held ArrayBuffer is its message's alone and is never rewritten", async () => {
  const count = 200;
  const { url, server } = ourServer(async (connection) => {
    const writer = connection.writable.getWriter();
    for (let i = 0; i < count; i++) {
      await writer.write(new Uint8Array(16).fill(i));
    }
    await writer.close();
  });
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const held: ArrayBuffer[] = [];
  socket.onmessage = (event) => held.push(event.data);
  await next(socket, "close");
  assertEquals(held.length, count);
  for (let i = 0; i < count; i++) {
    // Not a view into a slab shared with other messages.
    assertEquals(held[i]!.byteLength, 16);
    assertEquals(new Uint8Array(held[i]!), new Uint8Array(16).fill(i));
  }
  await server.shutdown();
});

Deno.test("WebSocket: a Blob keeps its place among sends, and bufferedAmount counts them until written", async () => {
  const received: (string | number)[] = [];
  const done = Promise.withResolvers<void>();
  const { url, server } = ourServer(async (connection) => {
    for await (const message of connection.readable) {
      received.push(typeof message === "string" ? message : message.length);
      if (received.length === 4) done.resolve();
    }
  });
  const socket = new WebSocket(url);
  await next(socket, "open");
  const big = new Uint8Array(1 << 20).fill(7);
  socket.send(new Blob([big]));
  socket.send("after");
  socket.send(new Uint8Array(3));
  socket.send(new Blob(["xy"]));
  // Counted at once, application bytes only (no framing).
  assertEquals(socket.bufferedAmount, (1 << 20) + 5 + 3 + 2);
  await done.promise;
  assertEquals(received, [1 << 20, "after", 3, 2]);
  await until(() => socket.bufferedAmount === 0, "bufferedAmount to drain");
  const closed = next<CloseEvent>(socket, "close");
  socket.close();
  // After close(): counted, never sent (the standard's send()).
  socket.send("late");
  socket.send(new Blob(["abc"]));
  assertEquals(socket.bufferedAmount, 7);
  assertEquals((await closed).code, 1005);
  assertEquals(received.length, 4);
  await server.shutdown();
});

Deno.test("WebSocket: a send past maxBufferedAmount flags it full: error, close 1008, nothing sent", async () => {
  const peer = Promise.withResolvers<unknown>();
  const messages: unknown[] = [];
  const { url, server } = ourServer(async (connection) => {
    for await (const message of connection.readable) messages.push(message);
    peer.resolve(await connection.closed);
  });
  const socket = new WebSocket(url, [], { maxBufferedAmount: 8 });
  const events: string[] = [];
  for (const type of ["error", "close"]) {
    socket.addEventListener(type, (event) => {
      events.push(
        event instanceof CloseEvent
          ? `close ${event.code} ${event.wasClean}`
          : type,
      );
    });
  }
  await next(socket, "open");
  socket.send("12345678");
  socket.send("9");
  assertEquals(socket.readyState, WebSocket.CLOSING);
  await next(socket, "close");
  assertEquals(events, ["error", "close 1008 true"]);
  assertEquals(await peer.promise, {
    closeCode: 1008,
    reason: "send buffer full",
  });
  assertEquals(messages, ["12345678"]);
  await server.shutdown();
});

Deno.test("WebSocket: a protocol error from the server: the peer gets 1007, the page error then close 1006", async () => {
  // A text frame that is not UTF-8.
  const raw = rawServer(new Uint8Array([0x81, 2, 0xc3, 0x28]), false);
  const socket = new WebSocket(raw.url);
  const events: string[] = [];
  for (const type of ["open", "message", "error", "close"]) {
    socket.addEventListener(type, (event) => {
      events.push(
        event instanceof CloseEvent
          ? `close ${event.code} ${event.wasClean}`
          : type,
      );
    });
  }
  await next(socket, "close");
  assertEquals(events, ["open", "error", "close 1006 false"]);
  // The client's close frame: masked, code 1007.
  const bytes = await raw.received;
  assertEquals(bytes[0], 0x88);
  const mask = bytes.subarray(2, 6);
  assertEquals(((bytes[6]! ^ mask[0]!) << 8) | (bytes[7]! ^ mask[1]!), 1007);
  raw.close();
  await raw.done;
});

Deno.test("WebSocket: on<event> handlers: replacing keeps the place, null removes, a non-function is null", async () => {
  const { url, server } = ourServer((connection) => connection.close());
  const socket = new WebSocket(url);
  const calls: string[] = [];
  socket.onclose = () => calls.push("A");
  socket.addEventListener("close", () => calls.push("listener"));
  socket.onclose = function (this: WebSocket) {
    calls.push(this === socket ? "B" : "wrong this");
  };
  assertEquals(typeof socket.onclose, "function");
  socket.onerror = () => calls.push("error");
  socket.onerror = "not a function" as unknown as null;
  assertEquals(socket.onerror, null);
  await next(socket, "close");
  assertEquals(calls, ["B", "listener"]);
  await server.shutdown();
});

Deno.test("WebSocket: where the runtime has no CloseEvent, its own stands in", async () => {
  const { url, server } = ourServer((connection) => {
    connection.close({ closeCode: 4000, reason: "bye" });
  });
  const module = new URL("../mod.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `delete globalThis.CloseEvent;
      const { WebSocket } = await import(${JSON.stringify(module)});
      const socket = new WebSocket(${JSON.stringify(url)});
      socket.onclose = (event) => console.log(JSON.stringify([
        typeof CloseEvent, event instanceof Event, event.type, event.code,
        event.reason, event.wasClean,
      ]));`,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const { stdout, stderr, success } = await child.output();
  assert(success, new TextDecoder().decode(stderr));
  assertEquals(JSON.parse(new TextDecoder().decode(stdout)), [
    "undefined",
    true,
    "close",
    4000,
    "bye",
    true,
  ]);
  await server.shutdown();
});

// Every message sent before close() goes out before the close frame, in
// order (WebSockets Standard: close() starts the closing handshake after
// the queued data). The first write is in flight when close() comes, the
// next ones wait behind it; with permessage-deflate (on by default, from
// 1 KiB) the first is still being compressed.
for (const perMessageDeflate of [false, true]) {
  Deno.test(`WebSocket: send(), send(), close() delivers both, then a clean close (deflate ${perMessageDeflate ? "on" : "off"})`, async () => {
    const got: (string | number)[] = [];
    let serverClosed!: Promise<unknown>;
    const server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, perMessageDeflate },
      (connection) => {
        serverClosed = (async () => {
          for await (const m of connection.readable) {
            got.push(
              typeof m === "string" && m.length > 100 ? m.length : String(m),
            );
          }
          return await connection.closed;
        })();
      },
    );
    for (const first of ["a", "x".repeat(2000)]) {
      got.length = 0;
      const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
      const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
      await new Promise((r) => ws.onopen = r);
      ws.send(first);
      ws.send("b");
      ws.close(1000, "bye");
      const event = await closed;
      assertEquals(await serverClosed, { closeCode: 1000, reason: "bye" });
      assertEquals(event.wasClean, true);
      assertEquals(got, [first.length > 100 ? first.length : first, "b"]);
    }
    await server.shutdown();
  });
}

// connect()'s header check runs in the constructor, as the URL and protocol
// checks do: a misuse throws where it was made, not as a bare 1006 later.
Deno.test("WebSocket: a handshake header in options.headers throws from the constructor", () => {
  const error = assertThrows(
    () =>
      new WebSocket("ws://127.0.0.1:9/", [], { headers: { Upgrade: "h2c" } }),
    TypeError,
    'Cannot create WebSocket: header "upgrade"',
  );
  assertInstanceOf(error, TypeError);
  // The protocol rules are connect()'s, thrown as the standard's SyntaxError.
  for (const protocols of [["a\r\nb"], ["chat", "CHAT"]]) {
    const syntax = assertThrows(
      () => new WebSocket("ws://127.0.0.1:9/", protocols),
      DOMException,
      "Cannot create WebSocket: the protocol",
    );
    assertEquals((syntax as DOMException).name, "SyntaxError");
  }
});
