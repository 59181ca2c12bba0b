// Option checks at every entry point: each numeric option, given each of a
// few values that break most rules, either fails at once (before any I/O)
// with a message that names the option and the value, or is allowed.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  acceptWebSocket,
  connect,
  serve,
  upgradeWebSocket,
  type WebSocketConnection,
  WebSocketStream,
} from "../mod.ts";
import { UpgradedWebSocket } from "../lib/net/upgrade.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import {
  encodeMessage,
  FrameDecoderStream,
  FrameParser,
  MessageAssembler,
  MessageDecoderStream,
  MessageEncoderStream,
  parseFrameHeader,
} from "../lib/codec/mod.ts";
import {
  acceptDeflate,
  deflateOffers,
  type NegotiatedDeflate,
} from "../lib/deflate/mod.ts";
import { assertWsError, thrown } from "./_helpers.ts";
import { show } from "../lib/_options.ts";

/** Two ends of an in-memory byte pipe, as a connection's transport. */
function memoryPair() {
  const toServer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  return {
    server: { readable: toServer.readable, writable: toClient.writable },
    client: { readable: toClient.readable, writable: toServer.writable },
  };
}

Deno.test("a connection refuses fragmentSize 0, which made every send spin forever", () => {
  for (const fragmentSize of [0, -1, NaN]) {
    assertThrows(
      () =>
        new TransportWebSocket(memoryPair().server, {
          role: "server",
          fragmentSize,
        }),
      RangeError,
      `Cannot create connection: fragmentSize must be a positive integer or Infinity, not ${fragmentSize}`,
    );
  }
});

Deno.test("a connection refuses a NaN maxFrameSize, which turned the limit off", () => {
  const error = assertThrows(
    () =>
      new TransportWebSocket(memoryPair().server, {
        role: "server",
        maxFrameSize: NaN,
      }),
    RangeError,
  );
  assertInstanceOf(error, RangeError);
  assertEquals(
    error.message,
    "Cannot create connection: maxFrameSize must be a non-negative integer or Infinity, not NaN",
  );
});

Deno.test("parseFrameHeader, unchecked per frame, refuses every frame under a NaN maxFrameSize", () => {
  const header = new Uint8Array([0x82, 0x01]);
  assertWsError(
    thrown(() =>
      parseFrameHeader(header, 0, { role: "client", maxFrameSize: NaN })
    ),
    "ERR_FRAME_TOO_LARGE",
  );
});

// --- the table ------------------------------------------------------------

/** The values every numeric option is tried with. */
const VALUES: unknown[] = [0, -1, NaN, Infinity, 1.5, "10"];

/** How a value reads in a message: `"10"` quoted, numbers as JS writes them. */
function shown(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

/** An option, the options object that sets it, and which VALUES it allows. */
interface OptionCase {
  /** As the message names it: `heartbeat.interval`. */
  name: string;
  options(value: unknown): Record<string, unknown>;
  allowed: unknown[];
}

function top(name: string, allowed: unknown[]): OptionCase {
  return { name, allowed, options: (value) => ({ [name]: value }) };
}

function inside(
  outer: string,
  name: string,
  base: object,
  allowed: unknown[],
): OptionCase {
  return {
    name: `${outer}.${name}`,
    allowed,
    options: (value) => ({ [outer]: { ...base, [name]: value } }),
  };
}

const HEARTBEAT = { interval: 1000, timeout: 1000 };
const CONNECTION: OptionCase[] = [
  top("closeTimeout", [0, 1.5]),
  top("readableHighWaterMark", []),
  top("writableHighWaterMark", [0]),
  top("fragmentSize", [Infinity]),
  top("maxFrameSize", [0, Infinity]),
  top("maxMessageSize", [0, Infinity]),
  top("maxFragments", [Infinity]),
  inside("heartbeat", "interval", HEARTBEAT, [1.5]),
  inside("heartbeat", "timeout", HEARTBEAT, [1.5]),
];
const HANDSHAKE: OptionCase[] = [
  top("handshakeTimeout", [1.5]),
  top("maxHeaderSize", []),
];
const DEFLATE_ALLOWED: [string, unknown[]][] = [
  ["threshold", [0, Infinity]],
  ["level", [0]],
  ["memLevel", []],
  ["serverMaxWindowBits", []],
  ["clientMaxWindowBits", []],
];
const DEFLATE = DEFLATE_ALLOWED.map(([name, allowed]) => top(name, allowed));
const DEFLATE_CHOICE = DEFLATE_ALLOWED.map(([name, allowed]) =>
  inside("perMessageDeflate", name, {}, allowed)
);
const NEGOTIATED: NegotiatedDeflate = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
  threshold: 1024,
  level: 6,
  memLevel: 8,
};
const NEGOTIATED_CASES = DEFLATE_ALLOWED.map(([name, allowed]) =>
  inside("perMessageDeflate", name, NEGOTIATED, allowed)
);
const UPGRADE: OptionCase[] = [
  top("idleTimeout", [0, 1.5]),
  top("maxQueuedBytes", [0, Infinity]),
  top("maxMessageSize", [0, Infinity]),
  top("writableHighWaterMark", [0]),
  top("sendTimeout", [0, 1.5]),
  top("closeTimeout", [0, 1.5]),
];
const FRAME = [top("maxFrameSize", [0, Infinity]), top("allowedRsv", [0])];
const MESSAGE = [
  top("maxMessageSize", [0, Infinity]),
  top("maxFragments", [Infinity]),
];
const ENCODE = [top("fragmentSize", [Infinity])];

function upgradeRequest(): Request {
  return new Request("http://localhost/", {
    headers: {
      host: "localhost",
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
}

/** Ends a connection over a memory pair: EOF from the client's side. */
async function end(
  connection: WebSocketConnection,
  client: ReturnType<typeof memoryPair>["client"],
  drained: Promise<void>,
): Promise<void> {
  await client.writable.close();
  await connection.closed.catch(() => {});
  await drained;
}

function drain(client: ReturnType<typeof memoryPair>["client"]) {
  return client.readable.pipeTo(new WritableStream()).catch(() => {});
}

// `connect` dials through this, so that an allowed value shows by reaching
// it, and no socket is ever opened.
const DIALED = new Error("dialed");
let dials = 0;
function dial(): Promise<never> {
  dials++;
  return Promise.reject(DIALED);
}

/**
 * An entry point: `attempt` makes the thing with these options and undoes
 * it, and returns what was thrown or rejected at the start (undefined if
 * nothing was).
 */
interface EntryPoint {
  action: string;
  /** What the test is called, when `action` does not say. */
  label?: string;
  cases: OptionCase[];
  attempt(options: Record<string, unknown>): unknown;
}

const ENTRY_POINTS: EntryPoint[] = [
  {
    action: "create connection",
    cases: [...CONNECTION, ...NEGOTIATED_CASES],
    async attempt(options) {
      const { server, client } = memoryPair();
      let connection;
      try {
        connection = new TransportWebSocket(server, {
          role: "server",
          ...options,
        });
      } catch (error) {
        return error;
      }
      await end(connection, client, drain(client));
      return undefined;
    },
  },
  {
    action: "connect",
    cases: [...CONNECTION, ...HANDSHAKE, ...DEFLATE_CHOICE],
    async attempt(options) {
      const before = dials;
      const error = await connect("ws://127.0.0.1:9/", { ...options, dial })
        .then(() => new Error("connected"), (error) => error);
      if (error === DIALED) return undefined;
      assertEquals(dials, before, "dialed before refusing the option");
      return error;
    },
  },
  {
    action: "create WebSocketStream",
    cases: [...CONNECTION, ...HANDSHAKE, ...DEFLATE_CHOICE],
    async attempt(options) {
      let stream;
      try {
        stream = new WebSocketStream("ws://127.0.0.1:9/", { ...options, dial });
      } catch (error) {
        return error;
      }
      assertEquals(await stream.opened.catch((error) => error), DIALED);
      await stream.closed.catch(() => {});
      return undefined;
    },
  },
  {
    action: "serve",
    cases: [top("port", [0]), ...HANDSHAKE, ...CONNECTION, ...DEFLATE_CHOICE],
    async attempt(options) {
      let server;
      try {
        server = serve({
          port: 0,
          hostname: "127.0.0.1",
          onListen() {},
          ...options,
        }, () => {});
      } catch (error) {
        return error;
      }
      await server.shutdown();
      return undefined;
    },
  },
  {
    action: "accept WebSocket",
    cases: [...CONNECTION, ...DEFLATE_CHOICE],
    async attempt(options) {
      const { server, client } = memoryPair();
      const drained = drain(client);
      let connection;
      try {
        connection = await acceptWebSocket(server, upgradeRequest(), options);
      } catch (error) {
        // Nothing was written: the transport is still the caller's.
        await server.writable.close();
        await drained;
        return error;
      }
      await end(connection, client, drained);
      return undefined;
    },
  },
  {
    action: "upgrade",
    cases: UPGRADE,
    attempt(options) {
      return thrownOrNot(() => upgradeWebSocket(upgradeRequest(), options));
    },
  },
  {
    action: "create UpgradedWebSocket",
    cases: UPGRADE,
    attempt(options) {
      // Never opens: a stand-in with the little the constructor touches.
      const socket = Object.assign(new EventTarget(), { binaryType: "blob" });
      return thrownOrNot(() =>
        new UpgradedWebSocket(socket as unknown as WebSocket, options)
      );
    },
  },
  {
    action: "create FrameParser",
    cases: FRAME,
    attempt: (options) =>
      thrownOrNot(() =>
        new FrameParser({ role: "server", ...options }, () => {})
      ),
  },
  {
    action: "create FrameDecoderStream",
    cases: FRAME,
    attempt: (options) =>
      thrownOrNot(() => new FrameDecoderStream({ role: "server", ...options })),
  },
  {
    action: "create MessageAssembler",
    cases: MESSAGE,
    attempt: (options) =>
      thrownOrNot(() =>
        new MessageAssembler(options, { message() {}, control() {} })
      ),
  },
  {
    action: "create MessageDecoderStream",
    cases: MESSAGE,
    attempt: (options) => thrownOrNot(() => new MessageDecoderStream(options)),
  },
  {
    action: "encode message",
    cases: ENCODE,
    attempt: (options) => thrownOrNot(() => encodeMessage("hello", options)),
  },
  {
    action: "create MessageEncoderStream",
    cases: ENCODE,
    attempt: (options) => thrownOrNot(() => new MessageEncoderStream(options)),
  },
  {
    action: "configure permessage-deflate",
    label: "deflateOffers",
    cases: DEFLATE,
    attempt: (options) => thrownOrNot(() => deflateOffers(options)),
  },
  {
    action: "configure permessage-deflate",
    label: "acceptDeflate",
    cases: DEFLATE,
    attempt: (options) => thrownOrNot(() => acceptDeflate([], options)),
  },
];

function thrownOrNot(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Asserts that `error` is the refusal of `value` for this option: a
 * RangeError for a number, unless an object was wanted.
 */
function assertRefusal(
  error: unknown,
  action: string,
  name: string,
  value: unknown,
  expected = typeof value === "number" ? RangeError : TypeError,
): void {
  assertInstanceOf(error, expected);
  const message = (error as Error).message;
  const start = `Cannot ${action}: ${name} must be `;
  const end = `, not ${shown(value)}`;
  assert(
    message.startsWith(start) && message.endsWith(end),
    `expected "${start}…${end}", got "${message}"`,
  );
}

for (const entry of ENTRY_POINTS) {
  const name = entry.label ?? `"${entry.action}"`;
  Deno.test(`every numeric option of ${name} is checked`, async (t) => {
    for (const option of entry.cases) {
      await t.step(option.name, async () => {
        for (const value of VALUES) {
          const error = await entry.attempt(option.options(value));
          if (option.allowed.some((allowed) => Object.is(allowed, value))) {
            assertEquals(error, undefined, `${option.name}: ${shown(value)}`);
          } else {
            assertRefusal(error, entry.action, option.name, value);
          }
        }
      });
    }
  });
}

Deno.test("heartbeat must be an object with both numbers", async () => {
  for (const heartbeat of [5, "10", null, true]) {
    assertRefusal(
      thrown(() =>
        new TransportWebSocket(memoryPair().server, {
          role: "server",
          heartbeat: heartbeat as unknown as { interval: 1; timeout: 1 },
        })
      ),
      "create connection",
      "heartbeat",
      heartbeat,
      TypeError,
    );
  }
  const error = await connect("ws://127.0.0.1:9/", {
    heartbeat: { interval: 1000 } as { interval: 1000; timeout: 1000 },
    dial,
  }).catch((error) => error);
  assertRefusal(error, "connect", "heartbeat.timeout", undefined);
});

Deno.test("perMessageDeflate: booleans, options, or a list of offers named by index", async () => {
  const attempt = (perMessageDeflate: unknown) =>
    connect("ws://127.0.0.1:9/", {
      perMessageDeflate: perMessageDeflate as boolean,
      dial,
    }).catch((error) => error);
  for (const allowed of [true, false, {}, [{}, { level: 1 }]]) {
    assertEquals(await attempt(allowed), DIALED);
  }
  for (const clientMaxWindowBits of [true, false, 8]) {
    assertEquals(await attempt({ clientMaxWindowBits }), DIALED);
  }
  for (const offer of ["yes", 1]) {
    assertRefusal(
      await attempt(offer),
      "connect",
      "perMessageDeflate",
      offer,
      TypeError,
    );
  }
  assertRefusal(
    await attempt([{}, { level: 10 }]),
    "connect",
    "perMessageDeflate[1].level",
    10,
  );
  assertEquals(
    (await attempt({ clientMaxWindowBits: "15" })).message,
    'Cannot connect: perMessageDeflate.clientMaxWindowBits must be true, false or an integer from 8 to 15, not "15"',
  );
});

Deno.test("connect refuses an option before it dials: not a connection error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  await assertRejects(
    () => connect(`ws://127.0.0.1:${port}/`, { fragmentSize: 0 }),
    RangeError,
    "Cannot connect: fragmentSize must be a positive integer or Infinity, not 0",
  );
});

Deno.test("option messages say what each rule allows", () => {
  const message = (fn: () => unknown) => (thrown(fn) as Error).message;
  const { server } = memoryPair();
  assertEquals(
    message(() =>
      new TransportWebSocket(server, { role: "server", closeTimeout: 2 ** 31 })
    ),
    "Cannot create connection: closeTimeout must be a number of milliseconds from 0 to 2147483647, not 2147483648",
  );
  assertEquals(
    message(() => serve({ port: 65536 }, () => {})),
    "Cannot serve: port must be an integer from 0 to 65535, not 65536",
  );
  assertEquals(
    message(() => upgradeWebSocket(upgradeRequest(), { idleTimeout: -1 })),
    "Cannot upgrade: idleTimeout must be a number of seconds from 0 to 2147483, not -1",
  );
  assertEquals(
    message(() => new MessageDecoderStream({ maxFragments: 0 })),
    "Cannot create MessageDecoderStream: maxFragments must be a positive integer or Infinity, not 0",
  );
});

Deno.test("show() writes values as JSON does, and numbers as JS does", () => {
  assertEquals(
    [-0, 10n, null, undefined, { code: 1000 }, "x".repeat(100), Symbol("s")]
      .map(show),
    [
      "-0",
      "10n",
      "null",
      "undefined",
      '{"code":1000}',
      `"${"x".repeat(57)}..."`,
      "Symbol(s)",
    ],
  );
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assertEquals(show(cycle), "[object Object]");
});

// --- close() ----------------------------------------------------------------

/** Calls `close` with any arguments, as untyped code would. */
function closeWith(
  target: { close(...args: never[]): void },
  ...args: unknown[]
) {
  (target.close as (...args: unknown[]) => void)(...args);
}

/** The close() misuses of browser and native habits, and what they say. */
const CLOSE_MISUSES: [unknown[], typeof Error, string][] = [
  [
    [{ code: 1000 }],
    TypeError,
    'Cannot close: unknown option "code" in {"code":1000}; pass { closeCode, reason }',
  ],
  [
    [1000, "bye"],
    TypeError,
    "Cannot close: the argument must be { closeCode, reason }, not 1000; for close(code, reason), pass { closeCode: 1000, reason }",
  ],
  [
    ["bye"],
    TypeError,
    'Cannot close: the argument must be { closeCode, reason }, not "bye"; for a reason alone, pass { reason: "bye" }',
  ],
  [
    [null],
    TypeError,
    "Cannot close: the argument must be { closeCode, reason }, not null",
  ],
  [
    [{ closeCode: 1.5 }],
    RangeError,
    "Cannot close: closeCode must be an integer, not 1.5",
  ],
  [
    [{ closeCode: "1000" }],
    TypeError,
    'Cannot close: closeCode must be an integer, not "1000"',
  ],
  [
    [{ closeCode: 1000, reason: 42 }],
    TypeError,
    "Cannot close: reason must be a string, not 42",
  ],
];

Deno.test("WebSocketConnection.close() refuses the browser's arguments instead of sending 1005", async () => {
  const { server: serverEnd, client: clientEnd } = memoryPair();
  const client = new TransportWebSocket(clientEnd, { role: "client" });
  const server = new TransportWebSocket(serverEnd, { role: "server" });
  for (const [args, ErrorClass, message] of CLOSE_MISUSES) {
    assertThrows(() => closeWith(client, ...args), ErrorClass, message);
  }
  // Nothing was sent: the close that follows is the first.
  client.close({ closeCode: 4000, reason: "right form" });
  assertEquals(await server.closed, { closeCode: 4000, reason: "right form" });
  assertEquals(await client.closed, { closeCode: 4000, reason: "right form" });
});

// WebSocketStream checks close() as the WHATWG proposal does
// (tests/websocket_stream_test.ts); it still refuses these, as TypeErrors.
Deno.test("the upgrade adapter refuses them too, and WebSocketStream the wrong shapes, even before opening", async () => {
  const { connection } = upgradeWebSocket(upgradeRequest());
  const never = Promise.withResolvers<never>();
  const stream = new WebSocketStream("ws://127.0.0.1:9/", {
    dial: () => never.promise,
  });
  for (const [args, ErrorClass, message] of CLOSE_MISUSES) {
    assertThrows(() => closeWith(connection, ...args), ErrorClass, message);
  }
  for (const args of [[{ code: 1000 }], [1000, "bye"], ["bye"]]) {
    assertThrows(() => closeWith(stream, ...args), TypeError, "Cannot close");
  }
  stream.close();
  assertInstanceOf(await stream.opened.catch((error) => error), Error);
  never.reject(new Error("never dialed"));
});
