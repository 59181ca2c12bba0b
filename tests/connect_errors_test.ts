// What connect() rejects with when it cannot open, each on a real case on
// loopback, and what a raw server receives from it (credentials, no
// redirects followed).

import {
  assertEquals,
  assertFalse,
  assertInstanceOf,
  assertStringIncludes,
} from "@std/assert";
import { connect, serve, WebSocketHandshakeError } from "../mod.ts";
import { acceptKey } from "../lib/handshake/mod.ts";
import { assertWsError } from "./_helpers.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * A raw server for one request: it reads the request head, answers with
 * `response` and closes. `request` resolves with the head it read.
 */
function answerOnce(response: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const request = (async () => {
    const conn = await listener.accept();
    let head = "";
    const buffer = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      head += decoder.decode(buffer.subarray(0, n));
    }
    await conn.write(encoder.encode(response));
    conn.close();
    listener.close();
    return head;
  })();
  return { port: (listener.addr as Deno.NetAddr).port, request };
}

Deno.test("a refused TCP connection is ERR_CONNECTION_REFUSED and names the URL", async () => {
  const url = `ws://127.0.0.1:${freePort()}/chat`;
  const error = assertWsError(
    await connect(url).catch((e) => e),
    "ERR_CONNECTION_REFUSED",
  );
  assertStringIncludes(error.message, url);
  assertInstanceOf(error.cause, Deno.errors.ConnectionRefused);
});

Deno.test("a host name that does not resolve is ERR_DNS", async () => {
  const error = assertWsError(
    await connect("ws://nonexistent.invalid/", { handshakeTimeout: 60_000 })
      .catch((e) => e),
    "ERR_DNS",
  );
  assertStringIncludes(error.message, "ws://nonexistent.invalid/");
  assertInstanceOf(error.cause, Error);
});

Deno.test("a certificate the client does not trust is ERR_TLS (1015)", async () => {
  const fixtures = new URL("./fixtures/", import.meta.url);
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(new URL("cert.pem", fixtures)),
    key: Deno.readTextFileSync(new URL("key.pem", fixtures)),
  });
  const served = (async () => {
    const conn = await listener.accept();
    await conn.handshake().catch(() => {});
    conn.close();
  })();
  const url = `wss://localhost:${(listener.addr as Deno.NetAddr).port}/`;
  const error = assertWsError(await connect(url).catch((e) => e), "ERR_TLS");
  assertEquals(error.closeCode, 1015);
  assertStringIncludes(error.message, url);
  assertStringIncludes(error.message, "caCerts");
  assertInstanceOf(error.cause, Deno.errors.InvalidData);
  await served;
  listener.close();
});

Deno.test("a server that never answers is ERR_HANDSHAKE_TIMEOUT and names the URL", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const url = `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/slow`;
  const error = assertWsError(
    await connect(url, { handshakeTimeout: 200 }).catch((e) => e),
    "ERR_HANDSHAKE_TIMEOUT",
  );
  assertStringIncludes(error.message, url);
  (await accepted).close();
  listener.close();
});

for (
  const [status, text, header, value] of [
    [401, "Unauthorized", "www-authenticate", 'Basic realm="chat"'],
    [404, "Not Found", "x-request-id", "r-42"],
  ] as const
) {
  Deno.test(`a ${status} answer is a WebSocketHandshakeError with its status and headers`, async () => {
    const server = answerOnce(
      `HTTP/1.1 ${status} ${text}\r\n${header}: ${value}\r\nContent-Length: 0\r\n\r\n`,
    );
    const error = await connect(`ws://127.0.0.1:${server.port}/`)
      .catch((e) => e);
    assertInstanceOf(error, WebSocketHandshakeError);
    assertWsError(error, "ERR_HANDSHAKE");
    assertEquals(
      [error.status, error.statusText, error.headers.get(header)],
      [status, text, value],
    );
    assertStringIncludes(error.message, `answered ${status} ${text}`);
    await server.request;
  });
}

Deno.test("a redirect is not followed: the 3xx rejects with its Location", async () => {
  const server = answerOnce(
    "HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
  );
  const error = await connect(`ws://127.0.0.1:${server.port}/`)
    .catch((e) => e);
  assertInstanceOf(error, WebSocketHandshakeError);
  assertEquals(error.status, 302);
  assertEquals(error.headers.get("location"), "ws://127.0.0.1:1/elsewhere");
  assertStringIncludes(error.message, "maxRedirects");
  await server.request;
});

Deno.test('the URL\'s userinfo is not sent unless credentials is "url"', async (t) => {
  const refuse = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
  await t.step(
    "by default: no Authorization, no password in the message",
    async () => {
      const server = answerOnce(refuse);
      const error = await connect(
        `ws://al%20ice:p%40ss@127.0.0.1:${server.port}/`,
      )
        .catch((e) => e);
      const head = await server.request;
      assertFalse(/^authorization:/im.test(head), head);
      assertFalse(head.includes("p%40ss") || head.includes("al%20ice"), head);
      assertInstanceOf(error, WebSocketHandshakeError);
      assertFalse(error.message.includes("p%40ss"), error.message);
      assertStringIncludes(error.message, `ws://127.0.0.1:${server.port}/`);
    },
  );
  await t.step('credentials: "url" sends Basic, percent-decoded', async () => {
    const server = answerOnce(refuse);
    await connect(`ws://al%20ice:p%40ss@127.0.0.1:${server.port}/`, {
      credentials: "url",
    }).catch(() => {});
    const head = await server.request;
    const line = /^authorization: (.*)\r$/im.exec(head);
    assertEquals(line?.[1], `Basic ${btoa("al ice:p@ss")}`);
  });
  await t.step("an Authorization header of the caller wins", async () => {
    const server = answerOnce(refuse);
    await connect(`ws://u:p@127.0.0.1:${server.port}/`, {
      credentials: "url",
      headers: { authorization: "Bearer t" },
    }).catch(() => {});
    const head = await server.request;
    assertEquals(/^authorization: (.*)\r$/im.exec(head)?.[1], "Bearer t");
  });
});

/** A raw server that answers every request with `answer(n)`, n from 1, and keeps each request head. */
function answerEach(answer: (n: number) => string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heads: string[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      let head = "";
      const buffer = new Uint8Array(4096);
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) break;
        head += decoder.decode(buffer.subarray(0, n));
      }
      heads.push(head);
      await conn.write(encoder.encode(answer(heads.length)));
      conn.close();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    heads,
    async close() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

Deno.test("maxRedirects follows a redirect to the server that answers, and no further than asked", async (t) => {
  const target = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (connection, request) => {
      connection.close({
        closeCode: 4000,
        reason: new URL(request.url).pathname,
      });
    },
  );
  await t.step(
    "one hop, to another origin: followed, without the credentials",
    async () => {
      const redirector = answerEach(() =>
        `HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://127.0.0.1:${target.addr.port}/next?q=1\r\nContent-Length: 0\r\n\r\n`
      );
      const client = await connect(`ws://u:p@127.0.0.1:${redirector.port}/`, {
        maxRedirects: 1,
        credentials: "url",
        headers: { cookie: "a=1", "x-keep": "yes" },
      });
      assertEquals(await client.closed, { closeCode: 4000, reason: "/next" });
      assertEquals(redirector.heads.length, 1);
      assertStringIncludes(
        redirector.heads[0]!.toLowerCase(),
        "authorization: basic",
      );
      await redirector.close();
    },
  );
  await t.step(
    "a redirect loop stops at maxRedirects with the last 3xx",
    async () => {
      const loop = answerEach((n) =>
        `HTTP/1.1 302 Found\r\nLocation: /again-${n}\r\nContent-Length: 0\r\n\r\n`
      );
      const error = await connect(`ws://127.0.0.1:${loop.port}/`, {
        maxRedirects: 3,
      }).catch((e) => e);
      assertInstanceOf(error, WebSocketHandshakeError);
      assertEquals([error.status, error.headers.get("location")], [
        302,
        "/again-4",
      ]);
      assertEquals(loop.heads.map((h) => h.split(" ")[1]), [
        "/",
        "/again-1",
        "/again-2",
        "/again-3",
      ]);
      await loop.close();
    },
  );
  await t.step("no redirect from wss: down to ws:", async () => {
    const fixtures = new URL("./fixtures/", import.meta.url);
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: Deno.readTextFileSync(new URL("cert.pem", fixtures)),
      key: Deno.readTextFileSync(new URL("key.pem", fixtures)),
    });
    const served = (async () => {
      const conn = await listener.accept();
      await conn.read(new Uint8Array(4096));
      await conn.write(encoder.encode(
        `HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:${target.addr.port}/plain\r\nContent-Length: 0\r\n\r\n`,
      ));
      conn.close();
    })();
    const error = await connect(
      `wss://localhost:${(listener.addr as Deno.NetAddr).port}/`,
      {
        maxRedirects: 5,
        caCerts: [
          Deno.readTextFileSync(new URL("ca.pem", fixtures)),
        ],
      },
    ).catch((e) => e);
    assertInstanceOf(error, WebSocketHandshakeError);
    assertEquals(error.status, 302);
    await served;
    listener.close();
  });
  await target.shutdown();
});

Deno.test("the headers sent to another origin after a redirect carry no credentials", async () => {
  const second = answerEach(() =>
    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
  );
  const first = answerEach(() =>
    `HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:${second.port}/moved\r\nContent-Length: 0\r\n\r\n`
  );
  const error = await connect(`ws://u:p@127.0.0.1:${first.port}/`, {
    maxRedirects: 2,
    credentials: "url",
    headers: { cookie: "a=1", authorization: "Bearer t", "x-keep": "yes" },
  }).catch((e) => e);
  assertInstanceOf(error, WebSocketHandshakeError);
  assertEquals(error.status, 403);
  assertStringIncludes(first.heads[0]!, "authorization: Bearer t");
  const head = second.heads[0]!;
  assertStringIncludes(head, "GET /moved HTTP/1.1");
  assertStringIncludes(head, "x-keep: yes");
  assertFalse(/^(authorization|cookie):/im.test(head), head);
  await first.close();
  await second.close();
});

Deno.test("maxRedirects is checked before anything is dialed", async () => {
  for (const maxRedirects of [-1, 21, 1.5]) {
    await connect("ws://127.0.0.1:1/", { maxRedirects }).then(
      () => {
        throw new Error("connected");
      },
      (error) => assertInstanceOf(error, RangeError),
    );
  }
});

Deno.test("headers: Host replaces the URL's, and no header is sent twice", async () => {
  const server = answerOnce(
    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
  );
  await connect(`ws://127.0.0.1:${server.port}/`, {
    headers: { Host: "example.test", "X-Extra": "1" },
  }).catch(() => {});
  const lines = (await server.request).split("\r\n").map((line) =>
    line.toLowerCase()
  );
  const hosts = lines.filter((line) => line.startsWith("host:"));
  assertEquals(hosts, ["host: example.test"]);
  assertEquals(lines.filter((line) => line.startsWith("x-extra:")).length, 1);
});

Deno.test("headers the handshake owns are refused with a TypeError naming them", async () => {
  for (
    const [name, hint] of <[string, string][]> [
      ["Upgrade", "handshake"],
      ["Connection", "handshake"],
      ["Sec-WebSocket-Key", "handshake"],
      ["Sec-WebSocket-Version", "handshake"],
      ["Sec-WebSocket-Protocol", "protocols"],
      ["Sec-WebSocket-Extensions", "perMessageDeflate"],
    ]
  ) {
    const error = await connect("ws://127.0.0.1:9/", {
      headers: { [name]: "x" },
    }).catch((e) => e);
    assertInstanceOf(error, TypeError, name);
    assertStringIncludes(error.message, `"${name.toLowerCase()}"`);
    assertStringIncludes(error.message, hint);
  }
});

// The subprotocol offers go into the request head: each must be a token
// (RFC 6455 §4.1, RFC 7230 §3.2.6), so that a CR LF cannot inject a header,
// and a value of the wrong shape is refused before anything is dialled.
Deno.test("connect: protocols that are not distinct tokens in an array are refused before dialling", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let dialled = false;
  listener.accept().then((conn) => {
    dialled = true;
    conn.close();
  }, () => {});
  const url = `ws://127.0.0.1:${listener.addr.port}/`;
  const cases: [unknown, string][] = [
    [["chat\r\nX-Injected: yes"], "is not a token"],
    [["chat", "a b"], "is not a token"],
    [[""], "is not a token"],
    [["chat", "Chat"], "twice"],
    ["chat", "an array of strings"],
    [[1], "an array of strings"],
  ];
  for (const [protocols, reason] of cases) {
    const error = await connect(url, { protocols: protocols as string[] })
      .then(() => undefined, (e) => e);
    assertInstanceOf(error, TypeError);
    assertStringIncludes(error.message, "Cannot connect: ");
    assertStringIncludes(error.message, reason);
  }
  listener.close();
  assertEquals(dialled, false);
});

// An abort while the 101's Sec-WebSocket-Accept is being checked (an
// asynchronous digest) fails the attempt, as at every earlier step, rather
// than handing out a connection over the transport the abort has closed.
// The abort is timed by wrapping crypto.subtle.digest: it fires as the
// check's digest starts (the real digest still runs).
Deno.test("connect: an abort while the 101 is being checked rejects with ERR_ABORTED", async () => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const controller = new AbortController();
  const subtle = crypto.subtle;
  const digest = subtle.digest;
  let armed = false;
  subtle.digest = function (...args: Parameters<SubtleCrypto["digest"]>) {
    if (armed) {
      armed = false;
      controller.abort(new Error("user aborted"));
    }
    return digest.apply(subtle, args);
  };
  let request = "";
  let answered = false;
  try {
    const result = await connect("ws://example.invalid/", {
      signal: controller.signal,
      perMessageDeflate: false,
      dial: () => {
        let answer: (head: string) => void;
        const head = new Promise<string>((r) => answer = r);
        return Promise.resolve({
          readable: new ReadableStream<Uint8Array>({
            async pull(stream) {
              if (answered) return new Promise(() => {}); // nothing more
              answered = true;
              const key = /sec-websocket-key: *(\S+)/i.exec(await head)![1]!;
              const accept = await acceptKey(key);
              stream.enqueue(encoder.encode(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
                  `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
              ));
              // connect()'s next digest is its check of this answer.
              armed = true;
            },
          }, { highWaterMark: 0 }),
          writable: new WritableStream<Uint8Array>({
            write(chunk) {
              request += decoder.decode(chunk);
              if (request.includes("\r\n\r\n")) answer(request);
            },
          }),
        });
      },
    }).then((connection) => {
      connection.closed.catch(() => {});
      return connection;
    }, (error: unknown) => error);
    assertWsError(result, "ERR_ABORTED");
  } finally {
    subtle.digest = digest;
  }
});

Deno.test("serve(): onUpgrade's refusal sends its headers and the status's own reason phrase", async () => {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onUpgrade: () => ({
      reject: 401,
      body: "log in first",
      headers: { "WWW-Authenticate": 'Basic realm="chat"' },
    }),
  }, () => {});
  const error = await connect(`ws://127.0.0.1:${server.addr.port}/`)
    .catch((e) => e);
  assertInstanceOf(error, WebSocketHandshakeError);
  assertEquals(
    [error.status, error.statusText, error.headers.get("www-authenticate")],
    [401, "Unauthorized", 'Basic realm="chat"'],
  );
  for (const reject of [200, 101, 600, 401.5]) {
    const refusal = serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      onUpgrade: () => ({ reject }),
      onError() {},
    }, () => {});
    const failure = await connect(`ws://127.0.0.1:${refusal.addr.port}/`)
      .catch((e) => e);
    // Not a status a refusal may have: the server answers 500, its own fault.
    assertEquals(failure.status, 500, String(reject));
    await refusal.shutdown();
  }
  await server.shutdown();
});
