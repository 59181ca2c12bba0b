// Event order across a protocol failure, pinned on the wire. A valid message
// is followed by a protocol error; the application must receive the message,
// and an echo it writes as soon as it reads it must reach the peer before our
// close frame (1002 or 1007, RFC 6455 §7.1.7 and §8.1), then TCP ends. Each
// end of the library faces a raw TCP peer written here, which checks the
// exact bytes it receives after the handshake.

import { assert, assertEquals } from "@std/assert";
import {
  connect,
  serve,
  type WebSocketConnection,
  WebSocketError,
} from "../mod.ts";
import { concat, rawFrame } from "./_helpers.ts";

// Every read of a raw peer gives up after this, so a failing cell fails
// instead of hanging.
const READ_TIMEOUT = 3000;
// Split (a): the longest wait between two writes for an answer; after the
// valid message's last frame, the longest wait for its echo.
const PAUSE = 20;
const ECHO_WAIT = 1000;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// Clients mask (RFC 6455 §5.3); any key will do.
const MASK_KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

const te = new TextEncoder();
const td = new TextDecoder();

/** A frame as the test writes it: its first byte and its payload. */
interface RawFrame {
  first: number;
  payload: Uint8Array;
}

function frame(first: number, payload: string | number[]): RawFrame {
  return {
    first,
    payload: typeof payload === "string"
      ? te.encode(payload)
      : new Uint8Array(payload),
  };
}

/** The valid message that comes first, and how the peer sees its echo. */
interface Valid {
  name: string;
  frames: RawFrame[];
  echo: string;
}

const VALID: Valid[] = [
  { name: "text", frames: [frame(0x81, "Hello")], echo: 'text "Hello"' },
  {
    name: "binary",
    frames: [frame(0x82, [1, 2, 3, 0xff])],
    echo: "binary 010203ff",
  },
  {
    name: "text in two fragments",
    frames: [frame(0x01, "Hel"), frame(0x80, "lo")],
    echo: 'text "Hello"',
  },
];

/** The protocol error that follows, and the close code it must bring. */
interface Failure {
  name: string;
  frames: RawFrame[];
  closeCode: number;
}

const FAILURES: Failure[] = [
  // RFC 6455 §5.2: a reserved bit with no extension that defines it.
  { name: "RSV2", frames: [frame(0xa1, "x")], closeCode: 1002 },
  // §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
  { name: "opcode 0x3", frames: [frame(0x83, "x")], closeCode: 1002 },
  { name: "opcode 0xB", frames: [frame(0x8b, "")], closeCode: 1002 },
  // §5.4: a continuation frame needs an open message, and a new data frame
  // may not start while one is open.
  {
    name: "continuation with no message open",
    frames: [frame(0x80, "x")],
    closeCode: 1002,
  },
  {
    name: "text inside a fragmented message",
    frames: [frame(0x01, "a"), frame(0x81, "b")],
    closeCode: 1002,
  },
  // §5.5: control frames carry at most 125 bytes and are not fragmented.
  {
    name: "ping of 126 bytes",
    frames: [{ first: 0x89, payload: new Uint8Array(126) }],
    closeCode: 1002,
  },
  { name: "ping with FIN=0", frames: [frame(0x09, "")], closeCode: 1002 },
  // §8.1: a text message that is not UTF-8 fails with 1007. C0 AF is an
  // overlong "/", ED A0 80 a UTF-16 surrogate.
  {
    name: "UTF-8 C0 AF",
    frames: [frame(0x81, [0xc0, 0xaf])],
    closeCode: 1007,
  },
  {
    name: "UTF-8 ED A0 80",
    frames: [frame(0x81, [0xed, 0xa0, 0x80])],
    closeCode: 1007,
  },
];

/**
 * How the frames are cut into TCP writes: (a) a write per frame, (b) one
 * write, (c) one write that also carries the 101 (client end only).
 */
type Split = "a write per frame" | "one write" | "in the 101's write";
type Echo = "pipeTo" | "for await";
type End = "server" | "client";

interface Cell {
  name: string;
  end: End;
  echo: Echo;
  split: Split;
  valid: Valid;
  failure: Failure;
}

function cells(end: End): Cell[] {
  const splits: Split[] = end === "server"
    ? ["a write per frame", "one write"]
    : ["a write per frame", "one write", "in the 101's write"];
  const out: Cell[] = [];
  for (const echo of ["pipeTo", "for await"] as const) {
    for (const split of splits) {
      for (const failure of FAILURES) {
        for (const valid of VALID) {
          out.push({
            name: `${end} · ${failure.name} · ${split} · after ${valid.name}` +
              ` · ${echo}`,
            end,
            echo,
            split,
            valid,
            failure,
          });
        }
      }
    }
  }
  return out;
}

// --- the raw peer's I/O ------------------------------------------------

class ReadTimeout extends Error {}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

/** Reads once, or closes the socket after READ_TIMEOUT and throws. */
async function readWithTimeout(
  conn: Deno.Conn,
  buffer: Uint8Array,
): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), READ_TIMEOUT);
  });
  const reading = conn.read(buffer);
  try {
    const result = await Promise.race([reading, expired]);
    if (result !== "expired") return result;
  } finally {
    clearTimeout(timer);
  }
  // A read cannot be cancelled; closing the socket ends it.
  closeQuietly(conn);
  await reading.catch(() => {});
  throw new ReadTimeout(`no bytes and no end within ${READ_TIMEOUT} ms`);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let i = 0; i < bytes.length;) i += await conn.write(bytes.subarray(i));
}

/** Reads an HTTP head; returns it and the bytes read past it. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ head: string; rest: Uint8Array }> {
  let bytes: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    const end = td.decode(bytes).indexOf("\r\n\r\n");
    if (end >= 0) {
      return {
        head: td.decode(bytes.subarray(0, end + 4)),
        rest: bytes.slice(end + 4),
      };
    }
    const n = await readWithTimeout(conn, buffer);
    if (n === null) throw new Error("the head ended early");
    bytes = concat(bytes, buffer.subarray(0, n));
  }
}

async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", te.encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Collects what the library sends, until EOF, a reset or a timeout. */
class Collector {
  #parts: Uint8Array[];
  #waiters: (() => void)[] = [];
  /** How the bytes ended: "EOF", "reset", or what went wrong. */
  readonly done: Promise<string>;

  constructor(conn: Deno.Conn, first: Uint8Array) {
    this.#parts = first.length ? [first] : [];
    this.done = this.#run(conn);
  }

  get bytes(): Uint8Array {
    return concat(...this.#parts);
  }

  async #run(conn: Deno.Conn): Promise<string> {
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await readWithTimeout(conn, buffer);
        if (n === null) return "EOF";
        this.#parts.push(buffer.slice(0, n));
        this.#wake();
      }
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) return "reset";
      if (error instanceof ReadTimeout) return `a timeout (${error.message})`;
      return `a read error (${error})`;
    } finally {
      this.#wake();
    }
  }

  #wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /** Resolves when more bytes come or the reads end, or after `ms`. */
  async more(ms: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push(resolve);
    const timer = setTimeout(resolve, ms);
    await promise;
    clearTimeout(timer);
  }
}

/** Resolves as `promise` does, or rejects after READ_TIMEOUT. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: not within ${READ_TIMEOUT} ms`)),
          READ_TIMEOUT,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Writes the frames as the split says; the 101 goes first when given.
 * Splits (a) and (b) wait until the application echoes (`ready`), so that
 * the frames meet an open connection, not one still being set up.
 */
async function sendFrames(
  conn: Deno.Conn,
  frames: Uint8Array[],
  echoAfter: number,
  split: Split,
  ready: Promise<void>,
  collector: () => Collector,
  response?: Uint8Array,
): Promise<string | undefined> {
  try {
    if (split === "in the 101's write") {
      await writeAll(conn, concat(response!, ...frames));
      collector();
      return;
    }
    if (response) await writeAll(conn, response);
    const reading = collector();
    await within(ready, "the application did not start echoing");
    if (split === "one write") {
      await writeAll(conn, concat(...frames));
      return;
    }
    for (const [i, bytes] of frames.entries()) {
      // Let the library answer what it has; timing only shapes the test,
      // the expected bytes are the same.
      if (i > 0) await reading.more(i === echoAfter ? ECHO_WAIT : PAUSE);
      await writeAll(conn, bytes);
    }
  } catch (error) {
    return `a write failed (${error})`;
  }
  return undefined;
}

// --- what the peer received --------------------------------------------

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Parses the bytes as frames: a line per message (fragments joined) or
 * control frame, and a line for anything out of place.
 */
function describe(bytes: Uint8Array, masked: boolean): string[] {
  const events: string[] = [];
  let message: { opcode: number; parts: Uint8Array[] } | undefined;
  let i = 0;
  while (i < bytes.length) {
    if (bytes.length - i < 2) {
      events.push(`a stray byte ${hexOf(bytes.subarray(i))}`);
      break;
    }
    const b0 = bytes[i]!;
    const b1 = bytes[i + 1]!;
    let length = b1 & 0x7f;
    let p = i + 2;
    if (length === 126) {
      length = (bytes[p]! << 8) | bytes[p + 1]!;
      p += 2;
    } else if (length === 127) {
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + p, 8)
        .getBigUint64(0));
      p += 8;
    }
    const hasMask = (b1 & 0x80) !== 0;
    if (hasMask !== masked) {
      events.push(masked ? "an unmasked frame" : "a masked frame");
    }
    const key = hasMask ? bytes.subarray(p, p + 4) : undefined;
    if (hasMask) p += 4;
    if (p + length > bytes.length) {
      events.push(`a truncated frame ${hexOf(bytes.subarray(i))}`);
      break;
    }
    const payload = bytes.slice(p, p + length);
    if (key) { for (let j = 0; j < length; j++) payload[j]! ^= key[j & 3]!; }
    i = p + length;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (b0 & 0x70) events.push(`RSV bits ${(b0 & 0x70) >> 4}`);
    if (opcode === 0x8) {
      events.push(
        length >= 2
          ? `close ${(payload[0]! << 8) | payload[1]!}`
          : "close with no code",
      );
    } else if (opcode === 0x9 || opcode === 0xa) {
      events.push(`${opcode === 0x9 ? "ping" : "pong"} ${hexOf(payload)}`);
    } else if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
      if (opcode !== 0x0) {
        if (message) events.push("a message left unfinished");
        message = { opcode, parts: [] };
      } else if (!message) {
        events.push("a continuation with no message");
        continue;
      }
      message.parts.push(payload);
      if (fin) {
        const data = concat(...message.parts);
        events.push(
          message.opcode === 0x1
            ? `text ${JSON.stringify(td.decode(data))}`
            : `binary ${hexOf(data)}`,
        );
        message = undefined;
      }
    } else {
      events.push(`opcode ${opcode}`);
    }
  }
  if (message) events.push("a message left unfinished");
  return events;
}

// --- the library's side ------------------------------------------------

function show(error: unknown): string {
  if (error instanceof WebSocketError) {
    return `${error.code}/${error.closeCode}: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Echoes every message in the chosen style; logs what goes wrong. */
async function echo(
  connection: WebSocketConnection,
  style: Echo,
  log: string[],
): Promise<void> {
  const closed = connection.closed.then(
    (info) => log.push(`closed resolved with ${info.closeCode}`),
    (error) => log.push(`closed rejected with ${show(error)}`),
  );
  if (style === "pipeTo") {
    await connection.readable.pipeTo(connection.writable).catch((error) =>
      log.push(`pipeTo rejected with ${show(error)}`)
    );
  } else {
    const writer = connection.writable.getWriter();
    try {
      for await (const message of connection.readable) {
        await writer.write(message);
      }
    } catch (error) {
      log.push(`the loop threw ${show(error)}`);
    }
  }
  await closed;
}

interface Outcome {
  events: string[];
  end: string;
  log: string[];
  writeError?: string;
}

async function serverCell(cell: Cell): Promise<Outcome> {
  const log: string[] = [];
  const echoes: Promise<void>[] = [];
  const echoing = Promise.withResolvers<void>();
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (connection) => {
      echoes.push(echo(connection, cell.echo, log));
      echoing.resolve();
    },
  );
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    // Each write its own segment: with Nagle's algorithm, a frame written
    // while an earlier one waits for its ACK would join the next one.
    conn.setNoDelay(true);
    await writeAll(
      conn,
      te.encode(
        `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.addr.port}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    const { head, rest } = await readHead(conn);
    assert(head.startsWith("HTTP/1.1 101 "), head);
    // RFC 6455 §1.3's example key and answer.
    assert(
      head.includes("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
      head,
    );
    let collector: Collector | undefined;
    const c = conn;
    const frames = [...cell.valid.frames, ...cell.failure.frames].map((f) =>
      rawFrame(f.first, f.payload, MASK_KEY)
    );
    const writeError = await sendFrames(
      conn,
      frames,
      cell.valid.frames.length,
      cell.split,
      echoing.promise,
      () => collector = new Collector(c, rest),
    );
    const end = await collector!.done;
    return { events: describe(collector!.bytes, false), end, log, writeError };
  } finally {
    if (conn) closeQuietly(conn);
    await server.shutdown();
    await Promise.all(echoes);
  }
}

async function clientCell(cell: Cell): Promise<Outcome> {
  const log: string[] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const echoing = Promise.withResolvers<void>();
  // Rejected when connect() fails, whether or not the peer still waits.
  echoing.promise.catch(() => {});
  const peer = (async (): Promise<Omit<Outcome, "log">> => {
    const conn = await listener.accept() as Deno.TcpConn;
    try {
      conn.setNoDelay(true);
      const { head, rest } = await readHead(conn);
      const key = /^sec-websocket-key:[ \t]*(\S+)/im.exec(head)?.[1];
      if (!key) throw new Error(`no Sec-WebSocket-Key in ${head}`);
      const response = te.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
          `Connection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptFor(
            key,
          )}\r\n\r\n`,
      );
      let collector: Collector | undefined;
      const frames = [...cell.valid.frames, ...cell.failure.frames].map((f) =>
        rawFrame(f.first, f.payload)
      );
      const writeError = await sendFrames(
        conn,
        frames,
        cell.valid.frames.length,
        cell.split,
        echoing.promise,
        () => collector = new Collector(conn, rest),
        response,
      );
      const end = await collector!.done;
      return { events: describe(collector!.bytes, true), end, writeError };
    } finally {
      closeQuietly(conn);
    }
  })();
  let client: WebSocketConnection | undefined;
  let echoes: Promise<void> | undefined;
  try {
    client = await connect(`ws://127.0.0.1:${port}/`);
    echoes = echo(client, cell.echo, log);
    echoing.resolve();
    return { ...await peer, log };
  } finally {
    echoing.reject(new Error("connect() failed"));
    closeQuietly(listener);
    await peer.catch(() => {});
    await client?.closed.catch(() => {});
    await echoes;
  }
}

async function runCell(cell: Cell): Promise<string> {
  const outcome = cell.end === "server"
    ? await serverCell(cell)
    : await clientCell(cell);
  const want = [cell.valid.echo, `close ${cell.failure.closeCode}`];
  const ended = outcome.end === "EOF" || outcome.end === "reset";
  const got = `[${outcome.events.join(", ")}] then ${outcome.end}`;
  assert(
    ended && outcome.events.join("\n") === want.join("\n"),
    `the peer got ${got}; want [${want.join(", ")}] then EOF or reset` +
      (outcome.writeError ? `; ${outcome.writeError}` : "") +
      `; the application's side: ${outcome.log.join("; ") || "nothing"}`,
  );
  return outcome.end;
}

function table(end: End) {
  return async (t: Deno.TestContext) => {
    const ends = new Map<string, string[]>();
    for (const cell of cells(end)) {
      await t.step(cell.name, async () => {
        const how = await runCell(cell);
        ends.set(how, [...ends.get(how) ?? [], cell.name]);
      });
    }
    // After the close frame TCP ends with a FIN (EOF) or, when the library
    // closes with bytes unread, a reset: say which.
    const summary = [...ends].map(([how, names]) => `${how}: ${names.length}`);
    console.log(`${end} end, how TCP ended: ${summary.join(", ") || "-"}`);
    for (const name of ends.get("reset") ?? []) console.log(`  reset: ${name}`);
  };
}

Deno.test("the table covers every cell once", () => {
  const names = [...cells("server"), ...cells("client")].map((c) => c.name);
  assertEquals(new Set(names).size, names.length);
});

Deno.test(
  "server end: an earlier message's echo goes out before the close frame",
  table("server"),
);

Deno.test(
  "client end: an earlier message's echo goes out before the close frame",
  table("client"),
);
