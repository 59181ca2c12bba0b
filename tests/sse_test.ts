// Server-sent events: the parser against every rule of the HTML standard's
// event stream interpretation (§9.2.6), each case fed whole, byte by byte
// and at seeded random splits; the encoder's refusals; a serialize → parse
// round trip of random events; sseResponse under Deno.serve (headers,
// keep-alive, backpressure from a slow reader); and the client against a
// real server that drops it mid-stream.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  encodeServerSentEvent,
  EventStreamParser,
  type ServerSentEvent,
  ServerSentEventClient,
  type ServerSentEventMessage,
  ServerSentEventParseStream,
  ServerSentEventStream,
  sseResponse,
} from "../lib/sse/mod.ts";
import { JITTER, reconnectDelay } from "../lib/sse/_backoff.ts";
import { WebSocketError } from "../mod.ts";
import {
  chunk,
  prng,
  randInt,
  type Split,
  splitName,
  SPLITS,
} from "./_helpers.ts";

const encoder = new TextEncoder();

interface Parsed {
  events: ServerSentEventMessage[];
  lastEventId: string;
  retry: number | undefined;
  error: unknown;
}

async function parse(
  input: string | Uint8Array,
  split: Split,
  options: { maxEventSize?: number } = {},
): Promise<Parsed> {
  const bytes = typeof input === "string" ? encoder.encode(input) : input;
  const stream = new ServerSentEventParseStream(options);
  const events: ServerSentEventMessage[] = [];
  let error: unknown;
  try {
    for await (
      const event of ReadableStream.from(chunk(bytes, split)).pipeThrough(
        stream,
      )
    ) {
      events.push(event);
    }
  } catch (e) {
    error = e;
  }
  return {
    events,
    lastEventId: stream.lastEventId,
    retry: stream.retry,
    error,
  };
}

function msg(data: string, id = "", event = "message"): ServerSentEventMessage {
  return { event, data, id };
}

interface Case {
  name: string;
  input: string | Uint8Array;
  events: ServerSentEventMessage[];
  lastEventId?: string;
  retry?: number;
}

const CASES: Case[] = [
  // Decoding: UTF-8, one leading BOM stripped, bad bytes replaced.
  {
    name: "a leading BOM is stripped",
    input: "\uFEFFdata: a\n\n",
    events: [msg("a")],
  },
  {
    name: "only one BOM is stripped: a second is part of the field name",
    input: "\uFEFF\uFEFFdata: a\n\ndata: b\n\n",
    events: [msg("b")],
  },
  {
    name: "a BOM after the start is data",
    input: "data: \uFEFFa\n\n",
    events: [msg("\uFEFFa")],
  },
  {
    name: "multi-byte characters survive any split",
    input: "data: 日本語 🎉\n\n",
    events: [msg("日本語 🎉")],
  },
  {
    name: "invalid UTF-8 becomes U+FFFD",
    input: new Uint8Array([...encoder.encode("data: "), 0xff, 0xc3, 10, 10]),
    events: [msg("\uFFFD\uFFFD")],
  },
  // Line ends.
  {
    name: "LF, CR and CRLF all end lines",
    input: "data: a\ndata: b\rdata: c\r\ndata: d\r\n\r\ndata: e\r\rdata: f\n\n",
    events: [msg("a\nb\nc\nd"), msg("e"), msg("f")],
  },
  {
    name: "CR CR is two line ends, so it dispatches",
    input: "data: a\r\r",
    events: [msg("a")],
  },
  {
    name: "LF CR is two line ends, so it dispatches",
    input: "data: a\n\r",
    events: [msg("a")],
  },
  // Fields.
  {
    name: "one space after the colon is removed, no more",
    input: "data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\n",
    events: [msg("a"), msg("a"), msg(" a"), msg("\ta")],
  },
  {
    name: "a value keeps the colons after the first",
    input: "data: a: b:c\n\n",
    events: [msg("a: b:c")],
  },
  {
    name: "a line with no colon is a field with an empty value",
    input: "data\n\ndata\ndata\n\n",
    events: [msg(""), msg("\n")],
  },
  {
    name: "an empty data value still dispatches an event",
    input: "data:\n\ndata: \n\n",
    events: [msg(""), msg("")],
  },
  {
    name: "data lines join with LF and lose the final LF",
    input: "data: a\ndata:\ndata: b\n\n",
    events: [msg("a\n\nb")],
  },
  {
    name: "a line starting with a colon is a comment",
    input: ": hello\n:\ndata: x\n: between\ndata: y\n\n",
    events: [msg("x\ny")],
  },
  {
    name: "a comment alone dispatches nothing",
    input: ":\n\n: keep-alive\n\n",
    events: [],
  },
  {
    name: "unknown fields are ignored, and names are case-sensitive",
    input: "foo: bar\nData: no\nDATA: no\n data: no\ndata: yes\n\n",
    events: [msg("yes")],
  },
  {
    name: "event sets the type; empty means message",
    input: "event: add\ndata: 1\n\nevent:\ndata: 2\n\n",
    events: [msg("1", "", "add"), msg("2")],
  },
  {
    name: "the type resets after every blank line, even with no data",
    input: "event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n",
    events: [msg("1", "", "a"), msg("2"), msg("3")],
  },
  {
    name: "the last event id persists across events",
    input: "id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
    events: [msg("a", "1"), msg("b", "1"), msg("c", "2")],
    lastEventId: "2",
  },
  {
    name: "an empty id resets it",
    input: "id: 1\ndata: a\n\nid\ndata: b\n\n",
    events: [msg("a", "1"), msg("b", "")],
    lastEventId: "",
  },
  {
    name: "an id with a NUL is ignored",
    input: "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n",
    events: [msg("a", "1"), msg("b", "1")],
    lastEventId: "1",
  },
  {
    name: "a blank line sets the last event id even with no data",
    input: "id: 5\n\n",
    events: [],
    lastEventId: "5",
  },
  {
    name: "an id with no blank line after it is not committed",
    input: "id: 1\n\nid: 2\ndata: x\n",
    events: [],
    lastEventId: "1",
  },
  {
    name: "the last id field of an event wins",
    input: "id: 1\nid: 2\ndata: x\n\n",
    events: [msg("x", "2")],
    lastEventId: "2",
  },
  {
    name: "retry of ASCII digits sets the reconnection time",
    input: "retry: 1500\n\nretry:0012\n",
    events: [],
    retry: 12,
  },
  {
    name: "retry that is not all ASCII digits is ignored",
    input:
      "retry: 100\nretry: 15x\nretry: -1\nretry: 1.5\nretry:\nretry:  7\nretry: 1e3\nretry: ١٢\n\n",
    events: [],
    retry: 100,
  },
  {
    name: "retry needs no blank line and dispatches nothing",
    input: "data: a\nretry: 250\n",
    events: [],
    retry: 250,
  },
  {
    name: "no dispatch at the end of input for an unfinished event",
    input: "data: a\n\ndata: b\n",
    events: [msg("a")],
  },
  {
    name: "no dispatch for a last line with no line end",
    input: "data: a\n\ndata: b",
    events: [msg("a")],
  },
  {
    name: "field values may hold a NUL in data",
    input: "data: a\0b\n\n",
    events: [msg("a\0b")],
  },
];

for (const c of CASES) {
  for (const split of SPLITS) {
    Deno.test(`sse parse: ${c.name} (${splitName(split)})`, async () => {
      const result = await parse(c.input, split);
      assertEquals(result.error, undefined);
      assertEquals(result.events, c.events);
      assertEquals(result.lastEventId, c.lastEventId ?? result.lastEventId);
      assertEquals(result.retry, c.retry);
    });
  }
}

Deno.test("sse parse: a CR ending one chunk and an LF starting the next are one line end", async () => {
  const chunks = ["data: a\r", "\ndata: b\r", "\n\r", "\ndata: c\r", "\r"];
  const events = await Array.fromAsync(
    ReadableStream.from(chunks.map((s) => encoder.encode(s))).pipeThrough(
      new ServerSentEventParseStream(),
    ),
  );
  assertEquals(events, [msg("a\nb"), msg("c")]);
  // The same rule in the sans-I/O parser, with an empty chunk in between.
  const parser = new EventStreamParser();
  assertEquals(parser.push("data: x\r"), []);
  assertEquals(parser.push(""), []);
  assertEquals(parser.push("\n"), []);
  assertEquals(parser.push("\n"), [msg("x")]);
});

Deno.test("sse parse: a BOM that starts a later chunk is data (only the stream's first is stripped)", async () => {
  // Deno's TextDecoder drops a BOM that starts any chunk after the first
  // with { stream: true }; the parser must not.
  const chunks = ["data: a", "\uFEFFb\n", "\n"];
  const events = await Array.fromAsync(
    ReadableStream.from(chunks.map((s) => encoder.encode(s))).pipeThrough(
      new ServerSentEventParseStream(),
    ),
  );
  assertEquals(events, [msg("a\uFEFFb")]);
});

Deno.test("sse parse: maxEventSize bounds the data buffer and an endless line", async () => {
  for (const split of SPLITS) {
    const data = await parse("data: 0123456789\ndata: 0123456789\n\n", split, {
      maxEventSize: 16,
    });
    assertInstanceOf(data.error, WebSocketError);
    const error = data.error as WebSocketError;
    assertEquals(error.code, "ERR_EVENT_TOO_LARGE");
    assertEquals(error.closeCode, 1009);
    assertStringIncludes(error.message, "Cannot parse server-sent event");
    // A stream that never ends its line is cut at the bound, not buffered.
    const line = await parse(`data: ${"x".repeat(100)}`, split, {
      maxEventSize: 50,
    });
    assertInstanceOf(line.error, WebSocketError);
    assertEquals((line.error as WebSocketError).code, "ERR_EVENT_TOO_LARGE");
    // Exactly at the bound is allowed: "data: " + 10 is 16 units, and the
    // data buffer "0123456789\n" 11.
    const fits = await parse("data: 0123456789\n\n", split, {
      maxEventSize: 16,
    });
    assertEquals(fits.error, undefined);
    assertEquals(fits.events, [msg("0123456789")]);
  }
  assertThrows(() => new EventStreamParser({ maxEventSize: 0 }), RangeError);
});

Deno.test("sse encode: every field, multi-line data and comments", () => {
  assertEquals(
    encodeServerSentEvent({
      comment: "a\nb",
      event: "e",
      id: "1",
      retry: 10,
      data: "x\r\ny\rz\n",
    }),
    ":a\n:b\nevent: e\nid: 1\nretry: 10\ndata: x\ndata: y\ndata: z\ndata: \n\n",
  );
  assertEquals(encodeServerSentEvent({}), "");
  assertEquals(encodeServerSentEvent({ data: "" }), "data: \n\n");
});

Deno.test("sse encode: refuses line ends in event and id, a NUL in id, a bad retry", () => {
  const bad: [ServerSentEvent, string][] = [
    [{ event: "a\nb" }, '"a\\nb"'],
    [{ event: "a\rb" }, '"a\\rb"'],
    [{ id: "1\n" }, '"1\\n"'],
    [{ id: "1\r\n" }, '"1\\r\\n"'],
    [{ id: "a\0b" }, '"a\\u0000b"'],
    [{ retry: -1 }, "-1"],
    [{ retry: 1.5 }, "1.5"],
    [{ retry: NaN }, "NaN"],
    [{ data: 5 as unknown as string }, "5"],
  ];
  for (const [event, shown] of bad) {
    const error = assertThrows(() => encodeServerSentEvent(event), TypeError);
    assertStringIncludes(error.message, "Cannot encode server-sent event");
    assertStringIncludes(error.message, shown);
  }
});

Deno.test("sse encode: ServerSentEventStream errors on an event it refuses", async () => {
  const body = ReadableStream.from([{ data: "ok" }, { id: "x\ny" }])
    .pipeThrough(new ServerSentEventStream());
  const reader = body.getReader();
  assertEquals(
    new TextDecoder().decode((await reader.read()).value),
    "data: ok\n\n",
  );
  await assertRejects(() => reader.read(), TypeError, "id must contain");
});

// Random strings with the characters that matter to the format.
const ALPHABET = [
  "a",
  "Z",
  "0",
  " ",
  ":",
  "\r",
  "\n",
  "\r\n",
  "\0",
  "é",
  "日",
  "🎉",
  "\uFEFF",
  "data: ",
  "id:",
];

function randomText(random: () => number, lineEnds: boolean): string {
  let out = "";
  const n = randInt(random, 12);
  for (let i = 0; i < n; i++) {
    const piece = ALPHABET[randInt(random, ALPHABET.length)]!;
    if (!lineEnds && /[\r\n\0]/.test(piece)) continue;
    out += piece;
  }
  return out;
}

Deno.test("sse property: serialize then parse gives back every event, at any split", async () => {
  const random = prng(16);
  for (let round = 0; round < 200; round++) {
    const sent: ServerSentEvent[] = [];
    const expected: ServerSentEventMessage[] = [];
    let id = "";
    let retry: number | undefined;
    const count = 1 + randInt(random, 8);
    for (let i = 0; i < count; i++) {
      const event: ServerSentEvent = {};
      if (random() < 0.8) event.data = randomText(random, true);
      if (random() < 0.4) event.event = "t" + randomText(random, false);
      if (random() < 0.5) event.id = randomText(random, false);
      if (random() < 0.2) event.retry = randInt(random, 100_000);
      if (random() < 0.2) event.comment = randomText(random, true);
      sent.push(event);
      if (encodeServerSentEvent(event) === "") continue;
      if (event.id !== undefined) id = event.id;
      if (event.retry !== undefined) retry = event.retry;
      if (event.data !== undefined) {
        expected.push({
          event: event.event ?? "message",
          data: event.data.replace(/\r\n|\r/g, "\n"),
          id,
        });
      }
    }
    const bytes = encoder.encode(sent.map(encodeServerSentEvent).join(""));
    const split: Split = round % 3 === 0 ? "bytes" : { seed: round };
    const result = await parse(bytes, split);
    assertEquals(result.error, undefined);
    assertEquals(result.events, expected, `round ${round}`);
    assertEquals(result.lastEventId, id);
    assertEquals(result.retry, retry);
  }
});

function listen(
  handler: (request: Request) => Response | Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
}

Deno.test("sseResponse: headers, overrides and the encoded events", async () => {
  const server = listen(() =>
    sseResponse(ReadableStream.from([{ data: "a" }, {}, { id: "2" }]), {
      headers: { "x-extra": "1", "cache-control": "no-store" },
    })
  );
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), "text/event-stream");
    assertEquals(response.headers.get("cache-control"), "no-store");
    assertEquals(response.headers.get("x-accel-buffering"), "no");
    assertEquals(response.headers.get("x-extra"), "1");
    assertEquals(await response.text(), "data: a\n\nid: 2\n\n");
  } finally {
    await server.shutdown();
  }
  assertThrows(() => sseResponse([] as never), TypeError, "source must be");
  assertThrows(
    () => sseResponse(ReadableStream.from([]), { keepAlive: -1 }),
    RangeError,
    "keepAlive",
  );
});

Deno.test("sseResponse: sends keep-alive comments while idle, and clears its timer when the client leaves", async () => {
  let cancelled: (reason: unknown) => void;
  const sourceCancelled = new Promise((resolve) => cancelled = resolve);
  const server = listen(() =>
    sseResponse(
      new ReadableStream<ServerSentEvent>({
        start(controller) {
          controller.enqueue({ data: "first" });
        },
        cancel: (reason) => cancelled(reason),
      }),
      { keepAlive: 20 },
    )
  );
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    while (!text.includes(":\n\n:\n\n")) text += (await reader.read()).value;
    assert(text.startsWith("data: first\n\n:\n\n"), text);
    // The comments parse to nothing.
    assertEquals((await parse(text, "whole")).events, [msg("first")]);
    await reader.cancel();
    await sourceCancelled;
  } finally {
    await server.shutdown();
  }
});

Deno.test("sseResponse: a slow reader stops the reads from the source (no unbounded buffering)", async () => {
  const EVENT = "x".repeat(8 * 1024);
  const LIMIT = 20_000; // 160 MiB if nothing held the server back
  let pulled = 0;
  let cancelled: () => void;
  const sourceCancelled = new Promise<void>((resolve) => cancelled = resolve);
  const server = listen(() =>
    sseResponse(
      new ReadableStream<ServerSentEvent>({
        pull(controller) {
          if (++pulled < LIMIT) return controller.enqueue({ data: EVENT });
          controller.close();
          cancelled(); // the end, for the finally below
        },
        cancel: () => cancelled(),
      }, { highWaterMark: 0 }),
      { keepAlive: 0 },
    )
  );
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  const reader = response.body!.getReader();
  try {
    await reader.read();
    // Read nothing more; wait until the server stops pulling (the socket
    // buffers are full), however long the loaded machine takes.
    let last = -1;
    let stable = 0;
    while (stable < 10 && pulled < LIMIT) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stable = pulled === last ? stable + 1 : 0;
      last = pulled;
    }
    // The kernel's socket buffers and the runtime's hold a few MiB; the
    // other 150 MiB stayed unproduced.
    assert(pulled < 4096, `the server pulled ${pulled} events of 8 KiB`);
  } finally {
    await reader.cancel();
    await sourceCancelled;
    await server.shutdown();
  }
});

/**
 * A server with a replay buffer of 20 events. Connection n sends from the
 * client's Last-Event-ID on, and drops after the event `dropAfter[n]`:
 * half of the next event, then the end of the body (odd n) or an error
 * that aborts the response (even n). It asks for `retry: 100` first.
 */
function replayServer(dropAfter: number[]) {
  const requests: { lastEventId: string | null; at: number }[] = [];
  const dropped: number[] = [];
  const server = listen((request) => {
    const lastEventId = request.headers.get("last-event-id");
    requests.push({ lastEventId, at: performance.now() });
    const n = requests.length;
    const chunks: string[] = n === 1 ? ["retry: 100\n\n"] : [];
    const last = dropAfter[n - 1] ?? 20;
    for (let id = Number(lastEventId ?? 0) + 1; id <= last; id++) {
      chunks.push(
        encodeServerSentEvent({ id: String(id), data: `event ${id}` }),
      );
    }
    if (last < 20) chunks.push(`id: ${last + 1}\ndata: partial`);
    // One chunk per pull, so that what is sent before a drop is sent.
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = chunks.shift();
        if (next !== undefined) {
          controller.enqueue(encoder.encode(next));
          return;
        }
        if (last === 20) return; // stay open, as an event stream does
        await new Promise((resolve) => setTimeout(resolve, 20));
        dropped.push(performance.now());
        if (n % 2 === 1) controller.close();
        else controller.error(new Error("dropped"));
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-type": "text/event-stream" },
    });
  });
  return { server, requests, dropped };
}

Deno.test("sse client: reconnects with Last-Event-ID after drops, honours retry, and misses nothing", async () => {
  const { server, requests, dropped } = replayServer([7, 13]);
  const client = new ServerSentEventClient(
    `http://127.0.0.1:${server.addr.port}/`,
  );
  try {
    const seen: ServerSentEventMessage[] = [];
    for await (const event of client.readable) {
      seen.push(event);
      if (seen.length === 20) break;
    }
    // Every event once, in order; the half events were never dispatched.
    assertEquals(
      seen,
      Array.from(
        { length: 20 },
        (_, i) => msg(`event ${i + 1}`, String(i + 1)),
      ),
    );
    // A clean end after event 7 resumes from 7; an aborted response may
    // lose what was in flight, and the client asks from what it got.
    const ids = requests.map((r) => r.lastEventId);
    assertEquals(ids.slice(0, 2), [null, "7"]);
    assert(Number(ids[2]) >= 7 && Number(ids[2]) <= 13, String(ids));
    assertEquals(client.reconnectionTime, 100);
    assertEquals(client.lastEventId, "20");
    assertEquals(client.readyState, "closed");
    // retry: 100 is a floor on each wait (timers never fire early).
    for (let i = 0; i < dropped.length; i++) {
      const waited = requests[i + 1]!.at - dropped[i]!;
      assert(waited >= 95, `reconnected after ${waited} ms`);
    }
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("sse client: a status other than 200 or a wrong type fails for good", async () => {
  for (
    const [status, type] of [
      [204, "text/event-stream"],
      [404, "text/event-stream"],
      [200, "text/plain"],
    ] as const
  ) {
    let requests = 0;
    const server = listen(() => {
      requests++;
      return new Response(status === 204 ? null : "data: x\n\n", {
        status,
        headers: { "content-type": type },
      });
    });
    try {
      const client = new ServerSentEventClient(
        `http://127.0.0.1:${server.addr.port}/`,
        { retry: 1 },
      );
      const error = await assertRejects(
        () => Array.fromAsync(client.readable),
        WebSocketError,
        `the server answered ${status}`,
      );
      assertEquals(error.code, "ERR_EVENT_STREAM");
      assertEquals(requests, 1);
      assertEquals(client.readyState, "closed");
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("sse client: 503 is retried with backoff, and maxRetries bounds the attempts", async () => {
  let requests = 0;
  const server = listen(() => {
    requests++;
    return requests <= 2
      ? new Response("busy", { status: 503 })
      : sseResponse(ReadableStream.from([{ data: "up" }]));
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/`;
    const client = new ServerSentEventClient(url, { retry: 1 });
    const reader = client.readable.getReader();
    assertEquals((await reader.read()).value, msg("up"));
    client.close();
    assertEquals((await reader.read()).done, true);
    assertEquals(requests, 3);

    requests = -100; // every answer a 503 from now on
    const giveUp = new ServerSentEventClient(url, { retry: 1, maxRetries: 2 });
    await assertRejects(
      () => Array.fromAsync(giveUp.readable),
      WebSocketError,
      "3 attempts in a row failed",
    );
    assertEquals(requests, -97);
  } finally {
    await server.shutdown();
  }
});

Deno.test("sse client: the signal errors the readable with its reason; close ends it", async () => {
  const server = listen(() =>
    sseResponse(
      new ReadableStream({
        start(controller) {
          controller.enqueue({ data: "1" });
        },
      }),
    )
  );
  try {
    const url = `http://127.0.0.1:${server.addr.port}/`;
    const abort = new AbortController();
    const client = new ServerSentEventClient(url, { signal: abort.signal });
    const reader = client.readable.getReader();
    assertEquals((await reader.read()).value, msg("1"));
    const pending = reader.read(); // waits on the open body
    abort.abort(new Error("stop"));
    await assertRejects(() => pending, Error, "stop");

    const closing = new ServerSentEventClient(url);
    const r2 = closing.readable.getReader();
    assertEquals((await r2.read()).value, msg("1"));
    const waiting = r2.read();
    closing.close();
    assertEquals((await waiting).done, true);
    closing.close(); // again: nothing

    // Aborted before the first read: no request at all.
    const early = new ServerSentEventClient(url, {
      signal: AbortSignal.abort(new Error("never")),
    });
    await assertRejects(() => Array.fromAsync(early.readable), Error, "never");
  } finally {
    await server.shutdown();
  }
});

Deno.test("sse client: an event over maxEventSize errors the readable", async () => {
  const server = listen(() =>
    sseResponse(ReadableStream.from([{ data: "x".repeat(100) }]))
  );
  try {
    const client = new ServerSentEventClient(
      `http://127.0.0.1:${server.addr.port}/`,
      { maxEventSize: 50 },
    );
    const error = await assertRejects(
      () => Array.fromAsync(client.readable),
      WebSocketError,
    );
    assertEquals(error.code, "ERR_EVENT_TOO_LARGE");
  } finally {
    await server.shutdown();
  }
});

Deno.test("sse client: reconnect delays double per failure up to the cap, never below retry, jittered", () => {
  assertEquals(reconnectDelay(100, 0, 30_000, 0), 100);
  assertEquals(reconnectDelay(100, 3, 30_000, 0), 800);
  assertEquals(reconnectDelay(100, 30, 30_000, 0), 30_000);
  assertEquals(reconnectDelay(100, 30, 30_000, 0.999_999), 37_500);
  // The server's retry over the cap is a floor.
  assertEquals(reconnectDelay(60_000, 5, 30_000, 0), 60_000);
  assertEquals(
    reconnectDelay(100, 0, 30_000, 0.5),
    100 * (1 + JITTER / 2) + 0.5,
  );
  assertEquals(reconnectDelay(2 ** 40, 0, 0, 0), 2 ** 31 - 1);
  assertThrows(
    () => new ServerSentEventClient("http://x/", { retry: -1 }),
    RangeError,
  );
  assertThrows(() => new ServerSentEventClient("http://[/"), TypeError);
});

Deno.test("sse client: runs with no Deno global, as in a browser", async () => {
  const server = listen(() =>
    sseResponse(
      ReadableStream.from([{ id: "1", data: "from a browser-like global" }]),
    )
  );
  try {
    const script = `
      const url = Deno.args[0];
      delete globalThis.Deno;
      const { ServerSentEventClient } = await import(${
      JSON.stringify(new URL("../lib/sse/client.ts", import.meta.url).href)
    });
      const client = new ServerSentEventClient(url);
      const reader = client.readable.getReader();
      const { value } = await reader.read();
      client.close();
      console.log(JSON.stringify(value));
    `;
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--ext=ts",
        script,
        `http://127.0.0.1:${server.addr.port}/`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert(output.success, stderr);
    assertEquals(
      JSON.parse(new TextDecoder().decode(output.stdout)),
      msg("from a browser-like global", "1"),
    );
  } finally {
    await server.shutdown();
  }
});
