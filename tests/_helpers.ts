// Shared test helpers: a seeded PRNG, hex fixtures, and the three ways every
// decoder case is fed (whole, byte by byte, at seeded random splits).

import {
  ERROR_CODES,
  type MessageLimits,
  WebSocketError,
  type WebSocketErrorCode,
} from "../mod.ts";
import {
  type Frame,
  FrameDecoderStream,
  type FrameDecoderStreamOptions,
  MessageDecoderStream,
  type WebSocketMessage,
} from "../lib/codec/mod.ts";
import { acceptKey } from "../lib/handshake/mod.ts";

/** mulberry32: a small, fast, seeded PRNG; returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random integer in [0, n). */
export function randInt(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** Random bytes from a seeded PRNG. */
export function randomBytes(random: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = randInt(random, 256);
  return out;
}

/** Parses "81 05 48 65" (spaces and newlines ignored) into bytes. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** How a byte string is cut into chunks. */
export type Split = "whole" | "bytes" | { seed: number };

/** The three feeds every decoder case is run with. */
export const SPLITS: Split[] = ["whole", "bytes", { seed: 1 }, { seed: 2 }];

export function splitName(split: Split): string {
  return typeof split === "string" ? split : `random(seed ${split.seed})`;
}

/**
 * Cuts `bytes` into chunks, each a fresh copy (the decoders own and unmask
 * their input in place).
 */
export function chunk(bytes: Uint8Array, split: Split): Uint8Array[] {
  if (split === "whole") return [bytes.slice()];
  if (split === "bytes") {
    return Array.from(bytes, (b) => new Uint8Array([b]));
  }
  const random = prng(split.seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + randInt(random, Math.min(64, bytes.length - i));
    out.push(bytes.slice(i, i + n));
    i += n;
  }
  if (out.length === 0) out.push(new Uint8Array(0));
  return out;
}

/** What decoding a byte string gave: frames or messages, then an error. */
export interface Outcome<T> {
  items: T[];
  error: unknown;
}

async function drain<T>(stream: ReadableStream<T>): Promise<Outcome<T>> {
  const items: T[] = [];
  try {
    for await (const item of stream) items.push(item);
    return { items, error: undefined };
  } catch (error) {
    return { items, error };
  }
}

/** Decodes bytes into frames, whole. */
export function decodeFrames(
  bytes: Uint8Array,
  split: Split,
  options: FrameDecoderStreamOptions,
): Promise<Outcome<Frame>> {
  return drain(
    ReadableStream.from(chunk(bytes, split)).pipeThrough(
      new FrameDecoderStream(options),
    ),
  );
}

/** Decodes bytes into messages, through partial-payload frames. */
export function decodeMessages(
  bytes: Uint8Array,
  split: Split,
  options: FrameDecoderStreamOptions & MessageLimits,
): Promise<Outcome<WebSocketMessage>> {
  return drain(
    ReadableStream.from(chunk(bytes, split))
      .pipeThrough(new FrameDecoderStream({ partial: true, ...options }))
      .pipeThrough(new MessageDecoderStream(options)),
  );
}

/** Builds the bytes of one frame by hand, for fixtures the encoder refuses. */
export function rawFrame(
  first: number,
  payload: Uint8Array,
  key?: Uint8Array,
): Uint8Array {
  const n = payload.length;
  const ext = n < 126 ? [] : n < 65536 ? [n >> 8, n & 255] : [
    0,
    0,
    0,
    0,
    (n >>> 24) & 255,
    (n >>> 16) & 255,
    (n >>> 8) & 255,
    n & 255,
  ];
  const len7 = n < 126 ? n : n < 65536 ? 126 : 127;
  const body = payload.slice();
  if (key) { for (let i = 0; i < n; i++) body[i]! ^= key[i & 3]!; }
  return concat(
    new Uint8Array([first, (key ? 0x80 : 0) | len7, ...ext, ...(key ?? [])]),
    body,
  );
}

/**
 * Asserts that `error` is a WebSocketError with this code and close code.
 * (deno-std ships untyped, so its assertions do not narrow types.)
 */
export function assertWsError(
  error: unknown,
  code: WebSocketErrorCode,
  closeCode: number = ERROR_CODES[code],
): WebSocketError {
  if (!(error instanceof WebSocketError)) {
    throw new Error(`expected a WebSocketError ${code}, got ${error}`);
  }
  if (error.code !== code || error.closeCode !== closeCode) {
    throw new Error(
      `expected ${code}/${closeCode}, got ${error.code}/${error.closeCode}: ${error.message}`,
    );
  }
  if (!error.message.startsWith("Cannot ")) {
    throw new Error(`message does not read "Cannot …": ${error.message}`);
  }
  return error;
}

/** Runs `fn` and returns what it threw (or fails when it did not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}

/**
 * Writes every message before reading any, then reads as many back: the
 * frames wait in the sender's queue and the socket together, and later
 * reads reuse read buffers while earlier messages are still held.
 */
export async function writeAllThenRead<T>(
  writer: WritableStreamDefaultWriter<T>,
  reader: ReadableStreamDefaultReader<unknown>,
  messages: T[],
): Promise<unknown[]> {
  const writes = messages.map((message) => writer.write(message));
  const got: unknown[] = [];
  for (let i = 0; i < messages.length; i++) {
    got.push((await reader.read()).value);
  }
  await Promise.all(writes);
  return got;
}

const rawEncoder = new TextEncoder();
const rawDecoder = new TextDecoder();

/** Sends `bytes` to a port and reads until EOF (or a reset): all that came back. */
export async function rawExchange(
  port: number,
  bytes: Uint8Array,
): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes);
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    parts.push(buffer.slice(0, n));
  }
  conn.close();
  return concat(...parts);
}

/** An opening handshake request, with headers changed or removed (`undefined`). */
export function upgradeRequest(
  extra: Record<string, string | undefined> = {},
  method = "GET",
): Uint8Array {
  const headers: Record<string, string | undefined> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...extra,
  };
  const lines = [`${method} / HTTP/1.1`];
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined) lines.push(`${k}: ${v}`);
  }
  return rawEncoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/**
 * A raw TCP server that answers one upgrade with a 101, then hands the socket
 * to `then`: a peer written in the test, which sends exact bytes.
 */
export function rawServer(then: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    const n = (await conn.read(buffer))!;
    const request = rawDecoder.decode(buffer.subarray(0, n));
    const key = /sec-websocket-key: (.*)\r\n/i.exec(request)![1]!;
    await conn.write(rawEncoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
    ));
    await then(conn);
    listener.close();
  })();
  return { port: (listener.addr as Deno.NetAddr).port, done };
}

/** Rejects after `ms`, so that a hang fails the test instead of stalling CI. */
export function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A server's unmasked frames, parsed from bytes as they arrive. */
export class FrameReader {
  #bytes: Uint8Array = new Uint8Array(0);
  push(chunk: Uint8Array): void {
    this.#bytes = concat(this.#bytes, chunk);
  }
  /** The next whole frame, or `undefined` until its bytes are in. */
  next(): { opcode: number; fin: boolean; payload: Uint8Array } | undefined {
    const b = this.#bytes;
    if (b.length < 2) return undefined;
    let length = b[1]! & 127;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2]! << 8) | b[3]!;
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2));
      at = 10;
    }
    if (b.length < at + length) return undefined;
    const frame = {
      opcode: b[0]! & 15,
      fin: (b[0]! & 0x80) !== 0,
      payload: b.slice(at, at + length),
    };
    this.#bytes = b.subarray(at + length);
    return frame;
  }
}

/** Connects a raw client, sends the upgrade, and skips the 101 head. */
export async function rawClient(
  port: number,
  headers: Record<string, string | undefined> = {},
): Promise<{ conn: Deno.TcpConn; frames: FrameReader }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(upgradeRequest(headers));
  const frames = new FrameReader();
  let head: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("no 101");
    head = concat(head, buffer.subarray(0, n));
    const end = rawDecoder.decode(head).indexOf("\r\n\r\n");
    if (end >= 0) {
      const status = rawDecoder.decode(head.subarray(0, end));
      if (!status.includes(" 101 ")) throw new Error(`no 101: ${status}`);
      frames.push(head.subarray(end + 4));
      return { conn, frames };
    }
  }
}

/**
 * Reads until a close frame arrives; returns its code (or undefined when
 * the transport ended first) and whether TCP then ended cleanly.
 */
export async function readUntilClose(
  conn: Deno.Conn,
  frames: FrameReader,
): Promise<{ code: number | undefined; reason: string; data: number }> {
  const buffer = new Uint8Array(65536);
  let data = 0;
  while (true) {
    for (let frame = frames.next(); frame; frame = frames.next()) {
      if (frame.opcode === 8) {
        const p = frame.payload;
        return {
          code: p.length >= 2 ? (p[0]! << 8) | p[1]! : 1005,
          reason: rawDecoder.decode(p.subarray(2)),
          data,
        };
      }
      if (frame.opcode !== 10) data++;
    }
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return { code: undefined, reason: "", data };
    frames.push(buffer.subarray(0, n));
  }
}

// A handler that passes every request to `handler` and resolves `seen`
// once `marker` has gone by in a response body: the test knows what the
// client has been sent.
export function watch(
  handler: (request: Request) => Promise<Response>,
  marker: string,
) {
  const { promise: seen, resolve } = Promise.withResolvers<void>();
  const decoder = new TextDecoder();
  const watched = async (request: Request) => {
    const response = await handler(request);
    if (!response.body) return response;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (decoder.decode(chunk).includes(marker)) resolve();
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, response);
  };
  return { watched, seen };
}

/**
 * How `closed` settles within `ms`: "resolved", the rejection's error, or
 * "still open" (so that a close that hangs fails its test, not the run).
 */
export async function settleWithin(
  closed: Promise<unknown>,
  ms = 20_000,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      closed.then(() => "resolved", (error) => error),
      new Promise((r) => timer = setTimeout(() => r("still open"), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
