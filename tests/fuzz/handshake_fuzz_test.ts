// Seeded fuzzing of the handshake parsers: mutated request heads through
// the bounded head reader and the server's checks, and mutated
// Sec-WebSocket-Extensions values through the §9.1 grammar. Each input ends
// in a result or in the documented error (a HandshakeRejection with a 4xx
// status, or a WebSocketError ERR_HANDSHAKE); never another exception.

import { assert } from "@std/assert";
import { WebSocketError } from "../../mod.ts";
import {
  HandshakeRejection,
  parseExtensions,
  validateUpgradeRequest,
} from "../../lib/handshake/mod.ts";
import { readHttpHead } from "../../lib/net/_http.ts";
import type { Transport } from "../../lib/net/_transport.ts";
import { prng, randInt, randomBytes } from "../_helpers.ts";

const COUNT = Number(Deno.env.get("FUZZ_COUNT") ?? 100_000) / 10;
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 6455);

const REQUEST = [
  "GET /chat?room=1 HTTP/1.1",
  "Host: 127.0.0.1:8080",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version: 13",
  "Sec-WebSocket-Protocol: chat, superchat",
  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
];

/** A transport that hands out `bytes` in chunks, then EOF. */
function bytesTransport(bytes: Uint8Array, chunk: number): Transport {
  let at = 0;
  return {
    read(buffer) {
      if (at >= bytes.length) return Promise.resolve(null);
      const n = Math.min(chunk, buffer.length, bytes.length - at);
      buffer.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    writeSome: (b) => Promise.resolve(b.length),
    write: () => Promise.resolve(),
    closeWrite: () => Promise.resolve(),
    close() {},
  };
}

const SPICE = [
  "\r",
  "\n",
  "\0",
  " ",
  "\t",
  ":",
  ",",
  ";",
  "=",
  '"',
  "é",
  "\u00ff",
  "\r\n ",
  "\r\n\t",
  "x".repeat(5000),
];

function mutateHead(random: () => number): string {
  const lines = [...REQUEST];
  const edits = 1 + randInt(random, 4);
  for (let e = 0; e < edits; e++) {
    const i = randInt(random, lines.length);
    const line = lines[i]!;
    switch (randInt(random, 6)) {
      case 0: // a character inserted
        {
          const at = randInt(random, line.length + 1);
          const spice = SPICE[randInt(random, SPICE.length)]!;
          lines[i] = line.slice(0, at) + spice + line.slice(at);
        }
        break;
      case 1: // a duplicate header
        lines.push(line);
        break;
      case 2: // folded onto a continuation line (obsolete, RFC 7230 §3.2.4)
        lines.splice(i + 1, 0, " folded");
        break;
      case 3: // removed
        if (i > 0) lines.splice(i, 1);
        break;
      case 4: // a huge value
        lines[i] = line + "a".repeat(randInt(random, 20000));
        break;
      default: // random bytes as latin1
        lines[i] = String.fromCharCode(
          ...randomBytes(random, randInt(random, 40)),
        );
    }
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

function latin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

function expected(error: unknown): boolean {
  return (error instanceof HandshakeRejection &&
    error.status >= 400 && error.status < 500) ||
    (error instanceof WebSocketError && error.code === "ERR_HANDSHAKE");
}

Deno.test(`fuzz: ${COUNT} mutated request heads get a 4xx or pass`, async () => {
  const random = prng(SEED + 10);
  let rejected = 0;
  for (let i = 0; i < COUNT; i++) {
    const bytes = latin1(mutateHead(random));
    try {
      const head = await readHttpHead(
        bytesTransport(bytes, 1 + randInt(random, 512)),
        16 * 1024,
        10_000,
      );
      // As serve() builds the request from the head.
      const [method, target] = head.start;
      const host = head.headers.get("host") ?? "127.0.0.1";
      let request: Request;
      try {
        request = new Request(`http://${host}${target}`, {
          method,
          headers: head.headers,
        });
      } catch {
        // serve() answers a head that makes no URL with 400 (see below).
        rejected++;
        continue;
      }
      validateUpgradeRequest(request);
    } catch (error) {
      assert(
        expected(error),
        `unexpected: ${(error as Error)?.stack ?? error}`,
      );
      rejected++;
    }
  }
  assert(rejected > 0);
});

Deno.test(`fuzz: ${COUNT} mutated extension headers parse or fail with ERR_HANDSHAKE`, () => {
  const random = prng(SEED + 11);
  const seeds = [
    "permessage-deflate; client_max_window_bits",
    'permessage-deflate; client_max_window_bits="10", permessage-deflate',
    "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
  ];
  for (let i = 0; i < COUNT; i++) {
    let value = seeds[randInt(random, seeds.length)]!;
    const edits = 1 + randInt(random, 3);
    for (let e = 0; e < edits; e++) {
      const at = randInt(random, value.length + 1);
      value = value.slice(0, at) +
        SPICE[randInt(random, SPICE.length - 1)]! +
        value.slice(at + randInt(random, 3));
    }
    try {
      parseExtensions(value);
    } catch (error) {
      assert(
        expected(error),
        `unexpected for ${JSON.stringify(value)}: ${error}`,
      );
    }
  }
});

Deno.test("serve() answers a head that makes no URL with 400, not a bare close", async () => {
  const { serve } = await import("../../mod.ts");
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => {},
  );
  for (const host of ["[::1", "a b", "%zz"]) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    await conn.write(new TextEncoder().encode(
      `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    conn.close();
    const answer = new TextDecoder().decode(
      chunks.length
        ? chunks.reduce((a, b) => new Uint8Array([...a, ...b]))
        : new Uint8Array(),
    );
    assert(
      answer.startsWith("HTTP/1.1 400 "),
      `Host ${host}: ${JSON.stringify(answer)}`,
    );
  }
  await server.shutdown();
});
