// WebSocketStream (the client) and asWebSocketStream (the server's end), on
// loopback: the behaviours the proposal's web-platform-tests check
// (websockets/stream/tentative: close, abort, constructor, WebSocketError),
// seen from the peer where the peer can see them; and one script run
// against Deno's own --unstable-net WebSocketStream and ours, compared.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  asWebSocketStream,
  serve,
  upgradeWebSocket,
  type WebSocketCloseInfo,
  WebSocketError,
  WebSocketStream,
  type WebSocketStreamLike,
} from "../mod.ts";
import { acceptKey } from "../lib/handshake/key.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Our serve() with the routes the tests use: /echo (takes the first
 * subprotocol), /close-4000, /refuse (403). `seen` collects what the
 * server's end of each connection saw, by path.
 */
function testServer() {
  const seen: { path: string; outcome: unknown }[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onUpgrade: (request, info) =>
      new URL(request.url).pathname === "/refuse"
        ? { reject: 403, body: "no" }
        : { protocol: info.protocols[0] },
  }, async (connection, request) => {
    const path = new URL(request.url).pathname;
    const wss = asWebSocketStream(connection);
    if (path === "/close-4000") wss.close({ closeCode: 4000, reason: "bye" });
    const { readable, writable } = await wss.opened;
    readable.pipeTo(writable).catch(() => {});
    const outcome = await wss.closed.then(
      (info) => info,
      (error) => ({ error: (error as WebSocketError).closeCode }),
    );
    seen.push({ path, outcome });
  });
  return { server, seen, base: `ws://127.0.0.1:${server.addr.port}` };
}

/** Accepts connections and never answers: a handshake that hangs. */
function silentServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of conns) conn.close();
    },
  };
}

/** Answers each upgrade with a 101, then drops TCP with no close frame. */
function dropServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) {
      const buffer = new Uint8Array(4096);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) break;
        head += decoder.decode(buffer.subarray(0, n));
      }
      const key = /sec-websocket-key: (.*)\r\n/i.exec(head)?.[1] ?? "";
      await conn.write(encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
      ));
      conn.close();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting.catch(() => {});
    },
  };
}

Deno.test("opened resolves to readable, writable, extensions and protocol; url is serialized", async () => {
  const { server, base } = testServer();
  const wss = new WebSocketStream(`http://127.0.0.1:${server.addr.port}/echo`, {
    protocols: ["chat"],
    perMessageDeflate: false,
  });
  assertEquals(wss.url, `${base}/echo`);
  const info = await wss.opened;
  assertEquals(Object.keys(info).sort(), [
    "extensions",
    "protocol",
    "readable",
    "writable",
  ]);
  assertEquals([info.protocol, info.extensions], ["chat", ""]);
  assertInstanceOf(info.readable, ReadableStream);
  assertInstanceOf(info.writable, WritableStream);
  wss.close();
  assertEquals(await wss.closed, { closeCode: 1005, reason: "" });
  await server.shutdown();
});

Deno.test("close(): the code and reason reach the peer and come back in closed", async (t) => {
  const { server, seen, base } = testServer();
  const cases: [unknown, WebSocketCloseInfo][] = [
    [{ closeCode: 3456, reason: "pizza" }, {
      closeCode: 3456,
      reason: "pizza",
    }],
    [undefined, { closeCode: 1005, reason: "" }],
    [{}, { closeCode: 1005, reason: "" }],
    [{ reason: "" }, { closeCode: 1005, reason: "" }],
    [{ reason: "non-empty" }, { closeCode: 1000, reason: "non-empty" }],
    [null, { closeCode: 1005, reason: "" }],
  ];
  for (const [closeInfo, expected] of cases) {
    await t.step(JSON.stringify(closeInfo) ?? "undefined", async () => {
      const wss = new WebSocketStream(`${base}/echo`);
      await wss.opened;
      wss.close(closeInfo as never);
      assertEquals(await wss.closed, expected);
    });
  }
  await server.shutdown();
  assertEquals(seen.map((s) => s.outcome), cases.map(([, e]) => e));
});

Deno.test("close() checks its argument as the proposal does, and sends nothing when it throws", async () => {
  const { server, seen, base } = testServer();
  const wss = new WebSocketStream(`${base}/echo`);
  await wss.opened;
  for (const closeCode of [0, 999, 1001, 1005, 2999, 5000]) {
    const error = assertThrows(() => wss.close({ closeCode }), DOMException);
    assertEquals((error as DOMException).name, "InvalidAccessError");
  }
  const long = assertThrows(
    () => wss.close({ reason: "é".repeat(62) }),
    DOMException,
  );
  assertEquals((long as DOMException).name, "SyntaxError");
  assertThrows(() => wss.close(true as never), TypeError);
  assertThrows(() => wss.close({ closeCode: Infinity }), TypeError);
  assertThrows(() => wss.close({ closeCode: 70000 }), TypeError);
  // The proposal's old key would otherwise silently mean "no code".
  assertThrows(
    () => wss.close({ code: 3000 } as never),
    TypeError,
    "closeCode",
  );
  // 123 bytes fit; "1000" converts as WebIDL's unsigned short does.
  wss.close({ closeCode: "1000" as never, reason: "é".repeat(61) + "x" });
  assertEquals(await wss.closed, {
    closeCode: 1000,
    reason: "é".repeat(61) + "x",
  });
  await server.shutdown();
  assertEquals(seen[0]?.outcome, {
    closeCode: 1000,
    reason: "é".repeat(61) + "x",
  });
});

Deno.test("writable.abort(e) and readable.cancel(e) close with e's code: the peer sees it", async (t) => {
  const { server, seen, base } = testServer();
  await t.step("abort with a WebSocketError", async () => {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.abort(
      new WebSocketError("done", { closeCode: 4001, reason: "aborted" }),
    );
    assertEquals(await wss.closed, { closeCode: 4001, reason: "aborted" });
  });
  await t.step("cancel with a WebSocketError", async () => {
    const wss = new WebSocketStream(`${base}/echo`);
    const { readable } = await wss.opened;
    await readable.cancel(new WebSocketError("", { reason: "canceled" }));
    assertEquals(await wss.closed, { closeCode: 1000, reason: "canceled" });
  });
  await t.step("abort with anything else: no code (1005)", async () => {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.abort({ closeCode: 3456, reason: "set" });
    assertEquals(await wss.closed, { closeCode: 1005, reason: "" });
  });
  await t.step("writer.close(): no code (1005)", async () => {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.getWriter().close();
    assertEquals(await wss.closed, { closeCode: 1005, reason: "" });
  });
  await server.shutdown();
  assertEquals(seen.map((s) => s.outcome), [
    { closeCode: 4001, reason: "aborted" },
    { closeCode: 1000, reason: "canceled" },
    { closeCode: 1005, reason: "" },
    { closeCode: 1005, reason: "" },
  ]);
});

Deno.test("closed rejects with a WebSocketError after an unclean close", async () => {
  const drop = dropServer();
  const wss = new WebSocketStream(`ws://127.0.0.1:${drop.port}/`);
  const { readable } = await wss.opened;
  const error = await wss.closed.catch((e) => e);
  assertInstanceOf(error, WebSocketError);
  assertEquals([error.closeCode, error.code], [1006, "ERR_ABNORMAL_CLOSURE"]);
  await assertRejects(() => readable.getReader().read(), WebSocketError);
  await drop.close();
});

Deno.test("signal: aborted before, during and after the handshake", async (t) => {
  const silent = silentServer();
  const { server, base } = testServer();
  await t.step(
    "already aborted: both reject with its reason, nothing is dialed",
    async () => {
      let dialed = false;
      const reason = new Error("stop");
      const wss = new WebSocketStream(`${base}/echo`, {
        signal: AbortSignal.abort(reason),
        dial: () => {
          dialed = true;
          return Promise.reject(new Error("dialed"));
        },
      });
      assertEquals(await wss.opened.catch((e) => e), reason);
      assertEquals(await wss.closed.catch((e) => e), reason);
      assert(!dialed);
    },
  );
  await t.step(
    "during the handshake: both reject with its reason",
    async () => {
      const controller = new AbortController();
      const wss = new WebSocketStream(`ws://127.0.0.1:${silent.port}/`, {
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(), 20);
      const error = await wss.opened.catch((e) => e);
      assertInstanceOf(error, DOMException);
      assertEquals(error.name, "AbortError");
      assertEquals(await wss.closed.catch((e) => e), error);
    },
  );
  await t.step("after opening: nothing", async () => {
    const controller = new AbortController();
    const wss = new WebSocketStream(`${base}/echo`, {
      signal: controller.signal,
    });
    await wss.opened;
    controller.abort();
    wss.close({ closeCode: 3000 });
    assertEquals(await wss.closed, { closeCode: 3000, reason: "" });
  });
  await t.step(
    "close() during the handshake rejects both with a WebSocketError",
    async () => {
      const wss = new WebSocketStream(`ws://127.0.0.1:${silent.port}/`);
      wss.close();
      const error = await wss.opened.catch((e) => e);
      assertInstanceOf(error, WebSocketError);
      assertEquals([error.code, error.closeCode], ["ERR_ABORTED", 1006]);
      assertEquals(await wss.closed.catch((e) => e), error);
    },
  );
  await server.shutdown();
  await silent.close();
});

Deno.test("the constructor refuses a bad URL or protocols with a SyntaxError", () => {
  for (
    const [url, protocols] of [
      ["ftp://127.0.0.1/", []],
      ["ws://127.0.0.1/#x", []],
      ["ws://127.0.0.1/#", []],
      ["ws://[bad", []],
      ["ws://127.0.0.1/", ["chat", "CHAT"]],
      ["ws://127.0.0.1/", ["a b"]],
    ] as const
  ) {
    const error = assertThrows(
      () => new WebSocketStream(url, { protocols: [...protocols] }),
      DOMException,
    );
    assertEquals((error as DOMException).name, "SyntaxError", url);
  }
});

Deno.test("asWebSocketStream gives upgradeWebSocket's end the same shape; abort's code reaches the client", async () => {
  const seen = Promise.withResolvers<unknown>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      const { response, connection } = upgradeWebSocket(request);
      const wss: WebSocketStreamLike = asWebSocketStream(connection);
      (async () => {
        const info = await wss.opened;
        const reader = info.readable.getReader();
        const first = (await reader.read()).value;
        reader.releaseLock();
        await info.writable.abort(
          new WebSocketError("", { closeCode: 4100, reason: "server says" }),
        );
        seen.resolve({
          url: wss.url,
          first,
          protocol: info.protocol,
          closed: await wss.closed,
        });
      })();
      return response;
    },
  );
  const client = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/up`);
  const { writable } = await client.opened;
  await writable.getWriter().write("hello");
  assertEquals(await client.closed, { closeCode: 4100, reason: "server says" });
  assertEquals(await seen.promise, {
    url: `ws://127.0.0.1:${server.addr.port}/up`,
    first: "hello",
    protocol: "",
    closed: { closeCode: 4100, reason: "server says" },
  });
  await server.shutdown();
});

// Both server faces × both ways to end with a code: the client (our
// WebSocketStream) must see the code the server's stream was given.
for (const face of ["serve", "upgradeWebSocket"] as const) {
  for (const how of ["abort", "cancel"] as const) {
    Deno.test(`asWebSocketStream on ${face}(): ${how} with a WebSocketError closes with its code`, async () => {
      const closeCode = how === "abort" ? 4301 : 4302;
      const end = async (wss: WebSocketStreamLike) => {
        const { readable, writable } = await wss.opened;
        const error = new WebSocketError("", { closeCode, reason: how });
        if (how === "abort") await writable.abort(error);
        else await readable.cancel(error);
        return await wss.closed;
      };
      const serverSaw = Promise.withResolvers<unknown>();
      const server = face === "serve"
        ? serve(
          { port: 0, hostname: "127.0.0.1", onListen() {} },
          (connection) =>
            end(asWebSocketStream(connection)).then(serverSaw.resolve),
        )
        : Deno.serve(
          { port: 0, hostname: "127.0.0.1", onListen() {} },
          (request) => {
            const { response, connection } = upgradeWebSocket(request);
            end(asWebSocketStream(connection)).then(serverSaw.resolve);
            return response;
          },
        );
      const client = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`);
      await client.opened;
      assertEquals(await client.closed, { closeCode, reason: how });
      assertEquals(await serverSaw.promise, { closeCode, reason: how });
      await server.shutdown();
    });
  }
}

// Differences that remain between Deno's WebSocketStream (2.9.6) and ours,
// as [Deno's, ours]; the README's WebSocketStream section explains each.
// Where they differ, ours is what the proposal says, except the closeCode
// of a failed handshake (see lib/errors.ts: every library error carries
// its table's close code, 1006 for one that never opened).
const KNOWN_DIFFERENCES: Record<string, [unknown, unknown]> = {
  // The proposal: an unclean close rejects with a WebSocketError whose
  // closeCode is the connection's close code, 1006 for a lost connection.
  "an unclean close rejects closed": [
    { rejected: "WebSocketError null" },
    { rejected: "WebSocketError 1006" },
  ],
  "a refused handshake": [
    [{ rejected: "WebSocketError null" }, { rejected: "WebSocketError null" }],
    [{ rejected: "WebSocketError 1006" }, { rejected: "WebSocketError 1006" }],
  ],
  // The proposal fails the connection at once; Deno waits for the server
  // to answer the handshake, and a server that never does hangs it.
  "close() during the handshake": [
    "hung",
    [{ rejected: "WebSocketError 1006" }, { rejected: "WebSocketError 1006" }],
  ],
  // The proposal: a URL that does not parse is a SyntaxError DOMException;
  // Deno lets URL's TypeError through.
  "constructor URL checks": [
    {
      scheme: "DOMException SyntaxError",
      fragment: "DOMException SyntaxError",
      emptyFragment: "DOMException SyntaxError",
      invalid: "TypeError",
      protocols: "DOMException SyntaxError",
    },
    {
      scheme: "DOMException SyntaxError",
      fragment: "DOMException SyntaxError",
      emptyFragment: "DOMException SyntaxError",
      invalid: "DOMException SyntaxError",
      protocols: "DOMException SyntaxError",
    },
  ],
};

Deno.test("the same script against Deno's --unstable-net WebSocketStream and ours", async () => {
  const { server, base } = testServer();
  const silent = silentServer();
  const drop = dropServer();
  const script = new URL("./peers/websocket_stream_script.ts", import.meta.url);
  const run = async (which: string) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "-A",
        script.pathname,
        which,
        base,
        String(silent.port),
        String(drop.port),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(output.success, decoder.decode(output.stderr));
    return JSON.parse(decoder.decode(output.stdout)) as Record<string, unknown>;
  };
  const ours = await run("ours");
  assert(Object.keys(ours).length >= 18);
  const expected = (name: string) => KNOWN_DIFFERENCES[name]?.[0] ?? ours[name];
  // Deno's client now and then rejects closed after a clean close (1 in
  // 40 against Deno's own server, with the reason as the message; more
  // often on a loaded machine): a scenario agrees when one of five native
  // runs agrees. Our own outcomes are asserted once, above and below.
  let pending = Object.keys(ours);
  let native: Record<string, unknown> = {};
  for (let attempt = 0; attempt < 5 && pending.length > 0; attempt++) {
    native = await run("native");
    pending = pending.filter((name) => {
      try {
        assertEquals(native[name], expected(name));
        return false;
      } catch {
        return true;
      }
    });
  }
  for (const name of pending) assertEquals(native[name], expected(name), name);
  for (const [name, [, ourOutcome]] of Object.entries(KNOWN_DIFFERENCES)) {
    assertEquals(ours[name], ourOutcome, name);
  }
  await server.shutdown();
  await silent.close();
  await drop.close();
});

// websocket-error.any.js's checks of the constructor, on ours.
Deno.test("WebSocketError's constructor validates as the proposal's does", () => {
  const plain = new WebSocketError();
  assertEquals([plain.message, plain.closeCode, plain.reason], ["", null, ""]);
  const withCode = new WebSocketError("m", { closeCode: 3000 });
  assertEquals([withCode.closeCode, withCode.reason], [3000, ""]);
  const reasonOnly = new WebSocketError("m", { reason: "r" });
  assertEquals([reasonOnly.closeCode, reasonOnly.reason], [1000, "r"]);
  for (const closeCode of [999, 1001, 2999, 5000]) {
    const error = assertThrows(
      () => new WebSocketError("", { closeCode }),
      DOMException,
    );
    assertEquals((error as DOMException).name, "InvalidAccessError");
  }
  const long = assertThrows(
    () => new WebSocketError("", { reason: "x".repeat(124) }),
    DOMException,
  );
  assertEquals((long as DOMException).name, "SyntaxError");
  assertEquals(
    new WebSocketError("", { reason: "x".repeat(123) }).closeCode,
    1000,
  );
});

// backpressure.any.js: a readable nobody reads stops the reads from TCP, so
// the sender's writes stall; nothing is lost once it is read.
Deno.test("a WebSocketStream nobody reads holds the sender back, and loses nothing", async () => {
  const count = 64;
  const size = 1 << 20;
  let accepted = 0;
  const sent = Promise.withResolvers<void>();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (connection) => {
      const writer = connection.writable.getWriter();
      for (let i = 0; i < count; i++) {
        const message = new Uint8Array(size).fill(i);
        await writer.write(message);
        accepted++;
      }
      writer.releaseLock();
      sent.resolve();
    },
  );
  const wss = new WebSocketStream(`ws://127.0.0.1:${server.addr.port}/`, {
    perMessageDeflate: false,
  });
  const { readable } = await wss.opened;
  // Wait until the sender stops making progress (bounded), then look.
  let last = -1;
  for (let i = 0; i < 100 && accepted !== last; i++) {
    last = accepted;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert(accepted < count, `${accepted} of ${count} 1 MiB writes went through`);
  const reader = readable.getReader();
  for (let i = 0; i < count; i++) {
    const value = (await reader.read()).value as Uint8Array;
    assertEquals([value.length, value[0], value[size - 1]], [size, i, i]);
  }
  await sent.promise;
  reader.releaseLock();
  wss.close();
  assertEquals(await wss.closed, { closeCode: 1005, reason: "" });
  await server.shutdown();
});

// connect()'s header and protocol checks run in the constructor, as the URL
// check does: misuse throws there, rather than rejecting `opened` later.
Deno.test("the constructor runs connect()'s header and protocol checks", () => {
  assertThrows(
    () =>
      new WebSocketStream("ws://127.0.0.1:9/", {
        headers: { "Sec-WebSocket-Key": "x" },
      }),
    TypeError,
    'Cannot create WebSocketStream: header "sec-websocket-key"',
  );
  for (const protocols of [["a\r\nb"], ["chat", "CHAT"]]) {
    const error = assertThrows(
      () => new WebSocketStream("ws://127.0.0.1:9/", { protocols }),
      DOMException,
      "Cannot create WebSocketStream: the protocol",
    );
    assertEquals((error as DOMException).name, "SyntaxError");
  }
  assertThrows(
    () =>
      new WebSocketStream("ws://127.0.0.1:9/", {
        protocols: "chat" as unknown as string[],
      }),
    TypeError,
    "an array of strings",
  );
});
