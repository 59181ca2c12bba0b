// What connect() rejects with when it cannot open, each on a real case on
// loopback, and what a raw server receives from it (credentials, no
// redirects followed).

import {
  assertEquals,
  assertFalse,
  assertInstanceOf,
  assertStringIncludes,
} from "@std/assert";
import { connect, WebSocketHandshakeError } from "../mod.ts";
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
  assertStringIncludes(error.message, "does not follow");
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
