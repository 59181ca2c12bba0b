// permessage-deflate (RFC 7692): negotiation of every parameter and every
// invalid form, the RSV1 rules, corrupt streams, and seeded round trips for
// each window size with and without context takeover under random chunking
// and fragmentation.

import { assert, assertEquals, assertThrows } from "@std/assert";
import { deflateRawSync } from "node:zlib";
import {
  connect,
  type MessageData,
  type PerMessageDeflateOptions,
  serve,
  type WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketErrorCode,
  WebSocketStream,
} from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import {
  acceptKey,
  formatExtensions,
  parseExtensions,
} from "../lib/handshake/mod.ts";
import {
  acceptDeflate,
  deflateOffers,
  Deflater,
  Inflater,
  type NegotiatedDeflate,
  validateDeflateResponse,
} from "../lib/deflate/mod.ts";
import {
  assertWsError,
  concat,
  prng,
  randInt,
  randomBytes,
  rawFrame,
  writeAllThenRead,
} from "./_helpers.ts";

const te = new TextEncoder();
const td = new TextDecoder();

Deno.test("deflateOffers formats every parameter and several offers", () => {
  assertEquals(
    formatExtensions(deflateOffers({})),
    "permessage-deflate; client_max_window_bits",
  );
  assertEquals(
    formatExtensions(deflateOffers([
      {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 9,
      },
      { clientMaxWindowBits: false },
    ])),
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
      "server_max_window_bits=10; client_max_window_bits=9, permessage-deflate",
  );
  for (const bad of [7, 16, 10.5]) {
    assertThrows(
      () => deflateOffers({ serverMaxWindowBits: bad }),
      RangeError,
      "8 to 15",
    );
  }
  assertThrows(() => deflateOffers({ level: 10 }), RangeError, "level");
  assertThrows(() => deflateOffers({ memLevel: 0 }), RangeError, "memLevel");
});

Deno.test("the server picks the first acceptable offer under its policy", async (t) => {
  const accept = (header: string, policy: PerMessageDeflateOptions = {}) => {
    const result = acceptDeflate(parseExtensions(header), policy);
    return result && {
      response: formatExtensions([result.response]),
      params: {
        serverNoContextTakeover: result.params.serverNoContextTakeover,
        clientNoContextTakeover: result.params.clientNoContextTakeover,
        serverMaxWindowBits: result.params.serverMaxWindowBits,
        clientMaxWindowBits: result.params.clientMaxWindowBits,
      },
    };
  };
  const params = (s: boolean, c: boolean, sb: number, cb: number) => ({
    serverNoContextTakeover: s,
    clientNoContextTakeover: c,
    serverMaxWindowBits: sb,
    clientMaxWindowBits: cb,
  });

  await t.step("Chromium's offer, default policy", () => {
    assertEquals(accept("permessage-deflate; client_max_window_bits"), {
      response: "permessage-deflate",
      params: params(false, false, 15, 15),
    });
  });
  await t.step("a bare offer", () => {
    assertEquals(accept("permessage-deflate"), {
      response: "permessage-deflate",
      params: params(false, false, 15, 15),
    });
  });
  await t.step("both no_context_takeover flags are honoured", () => {
    assertEquals(
      accept(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      ),
      {
        response:
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        params: params(true, true, 15, 15),
      },
    );
  });
  await t.step("the policy adds no_context_takeover unasked (§7.1.1)", () => {
    assertEquals(
      accept("permessage-deflate", {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      })?.params,
      params(true, true, 15, 15),
    );
  });
  await t.step("server_max_window_bits: the smaller of ask and policy", () => {
    assertEquals(accept("permessage-deflate; server_max_window_bits=10"), {
      response: "permessage-deflate; server_max_window_bits=10",
      params: params(false, false, 10, 15),
    });
    assertEquals(
      accept("permessage-deflate; server_max_window_bits=12", {
        serverMaxWindowBits: 9,
      })?.response,
      "permessage-deflate; server_max_window_bits=9",
    );
    assertEquals(
      accept("permessage-deflate", { serverMaxWindowBits: 11 })?.params
        .serverMaxWindowBits,
      11,
    );
  });
  await t.step("client_max_window_bits hint rules (§7.1.2.2)", () => {
    // A value in the offer is the client's own limit.
    assertEquals(
      accept("permessage-deflate; client_max_window_bits=10")?.params
        .clientMaxWindowBits,
      10,
    );
    // The policy lowers it only when the offer has the parameter.
    assertEquals(
      accept("permessage-deflate; client_max_window_bits", {
        clientMaxWindowBits: 9,
      })?.response,
      "permessage-deflate; client_max_window_bits=9",
    );
    assertEquals(
      accept("permessage-deflate; client_max_window_bits=8", {
        clientMaxWindowBits: 12,
      })?.params.clientMaxWindowBits,
      8,
    );
    // Without it the policy cannot be met: that offer is declined, the next
    // one taken.
    assertEquals(
      accept("permessage-deflate", { clientMaxWindowBits: 10 }),
      undefined,
    );
    assertEquals(
      accept(
        "permessage-deflate, permessage-deflate; client_max_window_bits",
        { clientMaxWindowBits: 10 },
      )?.response,
      "permessage-deflate; client_max_window_bits=10",
    );
  });
  await t.step("invalid offers are declined, not failed", () => {
    for (
      const bad of [
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=1.5",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=9; client_max_window_bits=10",
        "x-webkit-deflate-frame",
      ]
    ) {
      assertEquals(accept(bad), undefined, bad);
      // A valid offer after it is still chosen.
      assertEquals(
        accept(`${bad}, permessage-deflate; server_max_window_bits=11`)
          ?.params.serverMaxWindowBits,
        11,
        bad,
      );
    }
  });
  await t.step("a quoted value is a value (§9.1)", () => {
    assertEquals(
      accept('permessage-deflate; server_max_window_bits="10"')?.response,
      "permessage-deflate; server_max_window_bits=10",
    );
  });
});

Deno.test("the client validates the server's response strictly", async (t) => {
  const check = (
    header: string,
    offer: PerMessageDeflateOptions | PerMessageDeflateOptions[] = {},
  ) => validateDeflateResponse(parseExtensions(header), offer);

  await t.step("accepted forms", () => {
    const plain = check("permessage-deflate");
    assertEquals(
      [plain.serverMaxWindowBits, plain.clientMaxWindowBits],
      [15, 15],
    );
    const limited = check(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
    );
    assertEquals(
      [
        limited.serverNoContextTakeover,
        limited.clientNoContextTakeover,
        limited.serverMaxWindowBits,
        limited.clientMaxWindowBits,
      ],
      [true, true, 9, 8],
    );
    // Our own promised limit applies when the server says nothing.
    assertEquals(
      check("permessage-deflate", { clientMaxWindowBits: 11 })
        .clientMaxWindowBits,
      11,
    );
    // With several offers, the first the response fits is used.
    assertEquals(
      check("permessage-deflate; server_max_window_bits=12", [
        { serverMaxWindowBits: 10 },
        { serverMaxWindowBits: 13 },
      ]).serverMaxWindowBits,
      12,
    );
  });

  const failures: [string, PerMessageDeflateOptions, string][] = [
    ["permessage-deflate; foo=1", {}, "unknown parameter foo"],
    [
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      {},
      "appears twice",
    ],
    ["permessage-deflate; server_max_window_bits=16", {}, "8 to 15"],
    ["permessage-deflate; server_max_window_bits", {}, "8 to 15"],
    ["permessage-deflate; client_max_window_bits", {}, "8 to 15"],
    ["permessage-deflate; client_max_window_bits=7", {}, "8 to 15"],
    ["permessage-deflate; server_no_context_takeover=x", {}, "no value"],
    [
      "permessage-deflate; client_max_window_bits=10",
      { clientMaxWindowBits: false },
      "not offered",
    ],
    [
      "permessage-deflate; client_max_window_bits=12",
      { clientMaxWindowBits: 10 },
      "over the offered 10",
    ],
    [
      "permessage-deflate; server_max_window_bits=12",
      { serverMaxWindowBits: 10 },
      "over the asked 10",
    ],
    [
      "permessage-deflate",
      { serverMaxWindowBits: 10 },
      "asked for and not answered",
    ],
    [
      "permessage-deflate",
      { serverNoContextTakeover: true },
      "asked for and not answered",
    ],
    ["permessage-deflate, permessage-deflate", {}, "2 times"],
  ];
  for (const [header, offer, message] of failures) {
    await t.step(`refuses "${header}"`, () => {
      let error: unknown;
      try {
        check(header, offer);
      } catch (e) {
        error = e;
      }
      assertWsError(error, "ERR_HANDSHAKE", 1006);
      assert(
        (error as Error).message.includes(message),
        (error as Error).message,
      );
    });
  }
});

/** A raw server that answers the handshake with `extensions`. */
function rawServer(
  extensions: string,
  then: (conn: Deno.Conn) => Promise<void> = async () => {},
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const request = Promise.withResolvers<string>();
  const done = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    const n = (await conn.read(buffer))!;
    const text = td.decode(buffer.subarray(0, n));
    request.resolve(text);
    const key = /sec-websocket-key: (.*)\r\n/i.exec(text)![1]!;
    await conn.write(te.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n` +
        (extensions ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : "") +
        "\r\n",
    ));
    await then(conn);
    conn.close();
    listener.close();
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    done,
    request: request.promise,
  };
}

Deno.test("connect() offers deflate, and fails the handshake on a bad answer", async (t) => {
  await t.step("the default offer is sent", async () => {
    const peer = rawServer("");
    const client = await connect(`ws://127.0.0.1:${peer.port}/`);
    assert(
      (await peer.request).includes(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
      ),
    );
    assertEquals(client.extensions, "");
    await peer.done;
    await client.closed.catch(() => {});
  });
  await t.step("perMessageDeflate: false offers nothing", async () => {
    const peer = rawServer("");
    const client = await connect(`ws://127.0.0.1:${peer.port}/`, {
      perMessageDeflate: false,
    });
    assert(!(await peer.request).toLowerCase().includes("extensions"));
    await peer.done;
    await client.closed.catch(() => {});
  });
  for (
    const bad of [
      "permessage-deflate; server_max_window_bits=20",
      "permessage-deflate; bogus",
      "x-unknown-extension",
    ]
  ) {
    await t.step(`"${bad}" fails with ERR_HANDSHAKE`, async () => {
      const peer = rawServer(bad);
      const error = await connect(`ws://127.0.0.1:${peer.port}/`).then(
        () => undefined,
        (e) => e,
      );
      assertWsError(error, "ERR_HANDSHAKE", 1006);
      await peer.done;
    });
  }
});

// --- the data path ---------------------------------------------------------

function negotiated(
  bits: number,
  noContextTakeover: boolean,
  threshold = 0,
): NegotiatedDeflate {
  return {
    serverNoContextTakeover: noContextTakeover,
    clientNoContextTakeover: noContextTakeover,
    serverMaxWindowBits: bits,
    clientMaxWindowBits: bits,
    threshold,
    level: 6,
    memLevel: 8,
  };
}

/** Re-chunks bytes at seeded random points. */
function rechunk(random: () => number) {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length;) {
        const n = 1 + randInt(random, 4000);
        controller.enqueue(chunk.slice(i, i + n));
        i += n;
      }
    },
  });
}

function pipePair(
  random: () => number,
  client: Partial<WebSocketConnectionOptions>,
  server: Partial<WebSocketConnectionOptions>,
) {
  const up = rechunk(random);
  const down = rechunk(random);
  return {
    client: new TransportWebSocket(
      { readable: down.readable, writable: up.writable },
      { role: "client", ...client },
    ),
    server: new TransportWebSocket(
      { readable: up.readable, writable: down.writable },
      { role: "server", ...server },
    ),
  };
}

const JSON_TEXT = JSON.stringify(
  Array.from(
    { length: 50 },
    (_, i) => ({ id: i, name: `user ${i}`, ok: true }),
  ),
);

function randomMessage(random: () => number): string | Uint8Array {
  const size = [0, 1, 100, 1000, 20_000, 200_000][randInt(random, 6)]!;
  switch (randInt(random, 3)) {
    case 0:
      return JSON_TEXT.repeat(Math.ceil(size / JSON_TEXT.length) || 1)
        .slice(0, size) + "é€😀";
    case 1:
      return randomBytes(random, size);
    default:
      return te.encode(JSON_TEXT.repeat(Math.ceil(size / JSON_TEXT.length)))
        .subarray(0, size);
  }
}

Deno.test("seeded compressed round trips: every window, with and without context takeover", async (t) => {
  for (let bits = 8; bits <= 15; bits++) {
    for (const noContext of [false, true]) {
      await t.step(
        `window ${bits}, no_context_takeover ${noContext}`,
        async () => {
          const random = prng(bits * 2 + (noContext ? 1 : 0));
          const params = negotiated(bits, noContext, randInt(random, 2) * 64);
          const fragmentSize = [Infinity, 1, 100, 5000][randInt(random, 4)]!;
          const { client, server } = pipePair(
            random,
            { perMessageDeflate: params, fragmentSize },
            { perMessageDeflate: params, fragmentSize: 3000 },
          );
          server.readable.pipeTo(server.writable).catch(() => {});
          const writer = client.writable.getWriter();
          const reader = client.readable.getReader();
          const count = fragmentSize === 1 ? 6 : 25;
          for (let i = 0; i < count; i++) {
            let message = randomMessage(random);
            if (fragmentSize === 1 && message.length > 2000) {
              message = message.slice(0, 2000);
            }
            await writer.write(message);
            assertEquals((await reader.read()).value, message);
          }
          reader.releaseLock();
          writer.releaseLock();
          client.close({ closeCode: 1000 });
          assertEquals((await client.closed).closeCode, 1000);
          await server.closed;
        },
      );
    }
  }
});

Deno.test("compression shrinks what crosses the wire", async () => {
  const params = negotiated(15, false, 256);
  const { client, server } = pipePair(prng(5), {
    perMessageDeflate: params,
  }, { perMessageDeflate: params });
  const writer = client.writable.getWriter();
  const reader = server.readable.getReader();
  let sent = 0;
  for (let i = 0; i < 20; i++) {
    await writer.write(JSON_TEXT);
    sent += JSON_TEXT.length;
    assertEquals((await reader.read()).value, JSON_TEXT);
  }
  // Context takeover: after the first message the rest are back-references.
  assert(
    server.bytesReceived < sent / 20,
    `${server.bytesReceived} of ${sent}`,
  );
  // Below the threshold, messages go as they are.
  const before = server.bytesReceived;
  await writer.write("tiny");
  assertEquals((await reader.read()).value, "tiny");
  assertEquals(server.bytesReceived - before, 6 + 4);
  reader.releaseLock();
  writer.releaseLock();
  client.close();
  await client.closed;
});

/** Serves one connection with `options`; returns the port and the peer. */
function oneServer(options: Parameters<typeof serve>[0] = {}) {
  const peer = Promise.withResolvers<WebSocketConnection>();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    (connection) => peer.resolve(connection),
  );
  return { server, peer: peer.promise };
}

async function rawClient(port: number, extensions: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(te.encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      (extensions ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : "") +
      "\r\n",
  ));
  const buffer = new Uint8Array(4096);
  const n = (await conn.read(buffer))!;
  return { conn, head: td.decode(buffer.subarray(0, n)) };
}

function frame(
  opcode: number,
  payload: Uint8Array,
  options: { fin?: boolean; rsv1?: boolean } = {},
): Uint8Array {
  const first = (options.fin === false ? 0 : 0x80) |
    (options.rsv1 ? 0x40 : 0) | opcode;
  return rawFrame(first, payload, new Uint8Array([1, 2, 3, 4]));
}

function compress(data: Uint8Array): Uint8Array {
  // A sync-flushed raw stream with the trailer stripped (RFC 7692 §7.2.1).
  const out = deflateRawSync(data, { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  return out.subarray(0, out.length - 4);
}

Deno.test("RSV1 rules and corrupt streams fail with the right close code", async (t) => {
  const cases: [string, string, Uint8Array, WebSocketErrorCode, number][] = [
    [
      "RSV1 with no deflate negotiated",
      "",
      frame(1, compress(te.encode("hi")), { rsv1: true }),
      "ERR_UNEXPECTED_RSV",
      1002,
    ],
    [
      "RSV1 on a continuation frame",
      "permessage-deflate",
      concat(
        frame(1, compress(te.encode("hello")).subarray(0, 2), {
          fin: false,
          rsv1: true,
        }),
        frame(0, compress(te.encode("hello")).subarray(2), { rsv1: true }),
      ),
      "ERR_UNEXPECTED_RSV",
      1002,
    ],
    [
      "RSV1 on a ping",
      "permessage-deflate",
      frame(9, new Uint8Array(0), { rsv1: true }),
      "ERR_UNEXPECTED_RSV",
      1002,
    ],
    [
      "a corrupt deflate stream",
      "permessage-deflate",
      frame(2, new Uint8Array([0xff, 0xff, 0xff, 0x00, 0x01]), { rsv1: true }),
      "ERR_INVALID_COMPRESSED_DATA",
      1007,
    ],
    [
      "compressed text that inflates to invalid UTF-8",
      "permessage-deflate",
      frame(1, compress(new Uint8Array([0x61, 0xc3, 0x28])), { rsv1: true }),
      "ERR_INVALID_UTF8",
      1007,
    ],
  ];
  for (const [name, offer, bytes, code, closeCode] of cases) {
    await t.step(name, async () => {
      const { server, peer } = oneServer();
      const { conn, head } = await rawClient(server.addr.port, offer);
      assertEquals(
        head.includes("Sec-WebSocket-Extensions: permessage-deflate"),
        offer !== "",
      );
      const connection = await peer;
      connection.readable.pipeTo(new WritableStream()).catch(() => {});
      await conn.write(bytes);
      const error = await connection.closed.then(() => undefined, (e) => e);
      assertWsError(error, code, closeCode);
      // The peer got a close frame with the code.
      const reply = new Uint8Array(256);
      const n = (await conn.read(reply))!;
      assertEquals(reply[0], 0x88);
      assertEquals((reply[2]! << 8) | reply[3]!, closeCode);
      assert(n >= 4);
      conn.close();
      await server.shutdown();
    });
  }
});

Deno.test("a compressed message is inflated across fragments and around pings", async () => {
  const { server, peer } = oneServer();
  const { conn } = await rawClient(server.addr.port, "permessage-deflate");
  const connection = await peer;
  const text = "fragmented and compressed ".repeat(100);
  const z = compress(te.encode(text));
  await conn.write(concat(
    frame(1, z.subarray(0, 10), { fin: false, rsv1: true }),
    frame(9, te.encode("ping")),
    frame(0, z.subarray(10, 20), { fin: false }),
    frame(0, z.subarray(20)),
    frame(2, te.encode("plain after")),
  ));
  const reader = connection.readable.getReader();
  assertEquals((await reader.read()).value, text);
  assertEquals((await reader.read()).value, te.encode("plain after"));
  reader.releaseLock();
  conn.close();
  await connection.closed.catch(() => {});
  await server.shutdown();
});

Deno.test("Inflater stops at the limit; Deflater strips the trailer", async () => {
  const deflater = new Deflater(15, false, 6, 8);
  const data = te.encode("abc".repeat(10_000));
  const z = await deflater.deflate(data);
  assert(z.length < 200);
  assert(
    !(z.at(-4) === 0 && z.at(-3) === 0 && z.at(-2) === 0xff &&
      z.at(-1) === 0xff),
  );
  const inflater = new Inflater(15, false);
  assertEquals(await inflater.inflate(z, data.length), data);
  const error = await new Inflater(15, false).inflate(
    await new Deflater(15, false, 6, 8).deflate(new Uint8Array(1 << 20)),
    1000,
  ).then(() => undefined, (e) => e);
  assertWsError(error, "ERR_MESSAGE_TOO_LARGE", 1009);
  // Small results come out of one zlib output buffer: each still owns
  // its bytes, and the next inflate does not show through its buffer.
  const small = [];
  for (let i = 0; i < 3; i++) {
    const bytes = new Uint8Array(300).fill(i + 1);
    small.push(await inflater.inflate(await deflater.deflate(bytes), 1000));
  }
  for (let i = 0; i < 3; i++) {
    assertEquals(small[i], new Uint8Array(300).fill(i + 1));
    assertEquals(small[i]!.buffer.byteLength, 300);
  }
  // An empty message deflates to a single 0x00 (RFC 7692 §7.2.3.6).
  const empty = await deflater.deflate(new Uint8Array(0));
  assertEquals(await inflater.inflate(empty, 10), new Uint8Array(0));
  deflater.close();
  inflater.close();
});

Deno.test("serve() accepts deflate by default without context takeover, or not at all", async (t) => {
  for (
    const [name, policy, expected] of [
      [
        "default",
        undefined,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      ],
      ["context takeover asked for", {}, "permessage-deflate"],
      ["declined", false, ""],
    ] as const
  ) {
    await t.step(name, async () => {
      const { server, peer } = oneServer(
        policy === undefined ? {} : { perMessageDeflate: policy },
      );
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
      assertEquals(client.extensions, expected);
      assertEquals((await peer).extensions, expected);
      const writer = client.writable.getWriter();
      const reader = client.readable.getReader();
      (await peer).readable.pipeTo((await peer).writable).catch(() => {});
      for (let i = 0; i < 3; i++) {
        await writer.write(JSON_TEXT);
        assertEquals((await reader.read()).value, JSON_TEXT);
      }
      reader.releaseLock();
      writer.releaseLock();
      client.close();
      await client.closed;
      await server.shutdown();
    });
  }
});

Deno.test("inflated binary messages own their buffers", async (t) => {
  // zlib writes its output into 16 KiB buffers and hands out views of
  // them, and a pooled inflater (no context takeover) goes on filling the
  // same buffer for other connections: a view would show their bytes.
  for (const noContext of [false, true]) {
    await t.step(`no_context_takeover ${noContext}`, async () => {
      const params = negotiated(15, noContext, 0);
      const { client, server } = pipePair(
        prng(31),
        { perMessageDeflate: params },
        { perMessageDeflate: params },
      );
      const writer = client.writable.getWriter();
      const reader = server.readable.getReader();
      const sent = Array.from(
        { length: 20 },
        (_, i) => new Uint8Array(100 + i * 37).fill(i),
      );
      const got = await writeAllThenRead(writer, reader, sent) as Uint8Array[];
      assertEquals(got, sent);
      for (const message of got) {
        assertEquals(message.buffer.byteLength, message.length);
      }
      reader.releaseLock();
      writer.releaseLock();
      client.close();
      await client.closed;
    });
  }
});

Deno.test("fifty bombs at once: each fails with 1009, at most ten inflate at a time", async () => {
  const { zlibStats } = await import("../lib/deflate/zlib.ts");
  const { constants } = await import("node:zlib");
  // 64 MiB of zeros: about 64 KiB compressed.
  const bomb = deflateRawSync(new Uint8Array(64 << 20), {
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  const payload = new Uint8Array(bomb.subarray(0, bomb.length - 4));
  const inflaters = Array.from({ length: 50 }, () => new Inflater(15, true));
  const before = zlibStats().most;
  const outcomes = await Promise.all(
    inflaters.map((inflater) =>
      inflater.inflate(payload, 1 << 20).then(() => undefined, (e) => e)
    ),
  );
  for (const outcome of outcomes) {
    assertWsError(outcome, "ERR_MESSAGE_TOO_LARGE", 1009);
  }
  const { running, most } = zlibStats();
  assertEquals(running, 0);
  assert(most <= 10, `${most} ran at once`);
  assert(most === 10 || before === 10, `only ${most} ran at once`);
  for (const inflater of inflaters) inflater.close();
});

// A message handed to the writable before close() goes out before the close
// frame even while it is being compressed (zlib is asynchronous): RFC 6455
// §5.5.1 allows no data after our close frame, so the close frame waits for
// the compression under way, and a write after close() is refused.
Deno.test("permessage-deflate: write() then close() sends the message, then the close frame", async (t) => {
  const got: number[] = [];
  let serverClosed!: Promise<unknown>;
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (connection) => {
      serverClosed = (async () => {
        for await (const m of connection.readable) {
          got.push(String(m).length);
        }
        return await connection.closed;
      })();
    },
  );
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const faces: [
    string,
    () => Promise<{
      writable: WritableStream<MessageData>;
      extensions: string;
      close(): void;
      closed: Promise<unknown>;
    }>,
  ][] = [
    ["connect()", async () => {
      const c = await connect(url);
      return {
        writable: c.writable,
        extensions: c.extensions,
        close: () => c.close({ closeCode: 1000 }),
        closed: c.closed,
      };
    }],
    ["WebSocketStream", async () => {
      const wss = new WebSocketStream(url);
      const { writable, extensions } = await wss.opened;
      return {
        writable,
        extensions,
        close: () => wss.close({ closeCode: 1000 }),
        closed: wss.closed,
      };
    }],
  ];
  for (const [name, open] of faces) {
    await t.step(name, async () => {
      got.length = 0;
      const face = await open();
      assert(face.extensions.startsWith("permessage-deflate"));
      const writer = face.writable.getWriter();
      const written = writer.write("x".repeat(2000)).catch((e) => e);
      face.close();
      const late = await writer.write("late").catch((e) => e);
      assert(late instanceof TypeError, String(late));
      assertEquals(await written, undefined);
      assertEquals(await face.closed, { closeCode: 1000, reason: "" });
      assertEquals(await serverClosed, { closeCode: 1000, reason: "" });
      assertEquals(got, [2000]);
    });
  }
  await server.shutdown();
});
