/**
 * permessage-deflate (RFC 7692): a bounded inflater and a deflater over
 * `node:zlib`.
 *
 * Why `node:zlib` and not `CompressionStream("deflate-raw")`: only zlib takes
 * window bits 8–15, which `server_max_window_bits` and
 * `client_max_window_bits` need, and only its stream can be stopped part-way
 * through an inflate, which bomb safety needs (`DecompressionStream` hands
 * back all of a write's output at once). Their speeds are within 10% of
 * each other (`bench/deflate_throughput.ts`), which does not pay for losing
 * the window sizes.
 *
 * @module
 */

import type { DeflateRaw, InflateRaw } from "node:zlib";
import { decodeUtf8 } from "../codec/utf8.ts";
import { WebSocketError } from "../errors.ts";

// RFC 6455 §5.2: the text opcode.
const TEXT = 0x1;

// RFC 7692 §7.2.1: a sync flush ends with this empty stored block; the
// sender strips it and the receiver appends it.
const TRAILER = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
// Input is handed to zlib in slices of at most this size, so that one call
// never takes unbounded input. zlib emits output 16 KiB at a time and we stop
// at the first chunk past the limit, so the slice bounds work, not memory.
const INFLATE_SLICE = 64 * 1024;
// Zlib streams of connections that reset their context after every message
// are shared through a pool, so idle connections hold none.
const POOL_SIZE = 8;

/** The operation a zlib stream serves now: where its output and errors go. */
interface Sink {
  data(chunk: Uint8Array): void;
  error(error: Error): void;
}
type Zlib = (DeflateRaw | InflateRaw) & { sink?: Sink };
type ZlibModule = typeof import("node:zlib");

// node:zlib is loaded on the first message compressed or inflated, not
// with this module: it brings Deno's Node layer, 2 MiB of JS heap that
// every full GC then marks (measured: importing it took a process from 2.2
// to 4.2 MiB of heap), which a server that never compresses should not pay.
let zlibModule: ZlibModule | undefined;
let zlibLoading: Promise<ZlibModule> | undefined;

function loadZlib(): Promise<ZlibModule> {
  return zlibLoading ??= import("node:zlib").then((module) =>
    zlibModule = module
  );
}

const pools = new Map<string, Zlib[]>();

// Listeners are attached once per stream, as ws does, rather than added and
// removed per message. An error with no operation running is dropped, never
// thrown (Deno emits a data error after the flush callback has run).
function attach<T extends Zlib>(zlib: T): T {
  zlib.on("data", (chunk: Uint8Array) => zlib.sink?.data(chunk));
  zlib.on("error", (error: Error) => zlib.sink?.error(error));
  return zlib;
}

/**
 * Joins zlib's output chunks into one plain `Uint8Array` (not a Buffer) with
 * a buffer of its own. A chunk is a view of a 16 KiB buffer that zlib goes
 * on filling for the next messages and, when the inflater is pooled, for
 * other connections: one is kept as it is only when it spans its buffer.
 */
/**
 * Frees now the memory of output chunks that nobody will read: a message
 * stopped at its limit or broken. Left to the garbage collector, which
 * counts them only as external memory, fifty decompression bombs at once
 * held fifty stopped outputs (160 MiB at a 4 MiB limit) instead of the ten
 * that inflate at a time. Each chunk zlib emits owns its buffer; detaching
 * it (a zero-length `transfer`) releases the backing store at once.
 */
function release(chunks: Uint8Array[]): void {
  for (const chunk of chunks) {
    if (
      chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength
    ) {
      (chunk.buffer as ArrayBuffer).transfer(0);
    }
  }
  chunks.length = 0;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) {
    const only = chunks[0]!;
    return only.byteLength === only.buffer.byteLength
      ? new Uint8Array(only.buffer, only.byteOffset, only.length)
      : new Uint8Array(only);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function take(key: string, create: () => Zlib): Zlib {
  return pools.get(key)?.pop() ?? create();
}

function giveBack(key: string, zlib: Zlib): void {
  let pool = pools.get(key);
  if (!pool) pools.set(key, pool = []);
  if (pool.length < POOL_SIZE) {
    zlib.reset();
    pool.push(zlib);
  } else {
    zlib.close();
  }
}

/** What both engines share: a zlib stream, owned or borrowed per message. */
// At most this many messages are inflated or deflated at once in the
// process, as ws does (`concurrencyLimit`, 10): fifty connections that send
// a decompression bomb at once then hold ten bounded outputs, not fifty.
// The others wait their turn, in order.
const ZLIB_CONCURRENCY = 10;
let zlibRunning = 0;
let zlibMostRunning = 0;
const zlibWaiting: (() => void)[] = [];

function releaseZlibSlot(): void {
  const next = zlibWaiting.shift();
  // The slot passes straight to the next in line, if any.
  if (next) next();
  else zlibRunning--;
}

/**
 * For tests: the zlib operations running now, and the most at once so far.
 *
 * @returns The counts.
 */
export function zlibStats(): { running: number; most: number } {
  return { running: zlibRunning, most: zlibMostRunning };
}

class Engine {
  #reset: boolean;
  #key: string;
  #create: (zlib: ZlibModule) => Zlib;
  #zlib: Zlib | undefined;
  #busy = false;
  #closed = false;

  constructor(
    reset: boolean,
    key: string,
    create: (zlib: ZlibModule) => Zlib,
  ) {
    this.#reset = reset;
    this.#key = key;
    this.#create = create;
  }

  /**
   * Runs one message through the stream: `feed` writes it, and the promise
   * settles when the flush is done, or at the first error or `stop`.
   */
  run<T>(
    feed: (zlib: Zlib) => void,
    onChunk: (chunk: Uint8Array, stop: (error: Error) => void) => void,
    done: () => T,
  ): Promise<T> {
    if (this.#busy) {
      return Promise.reject(
        new TypeError("Cannot run zlib: a message is already in progress"),
      );
    }
    if (this.#closed) {
      return Promise.reject(
        new TypeError("Cannot run zlib: the engine is closed"),
      );
    }
    this.#busy = true;
    if (zlibRunning < ZLIB_CONCURRENCY) {
      zlibRunning++;
      if (zlibRunning > zlibMostRunning) zlibMostRunning = zlibRunning;
      return this.#load(feed, onChunk, done);
    }
    return new Promise<void>((resolve) => zlibWaiting.push(resolve)).then(
      () => this.#load(feed, onChunk, done),
    );
  }

  /** With a slot held: loads node:zlib if need be, then runs. */
  #load<T>(
    feed: (zlib: Zlib) => void,
    onChunk: (chunk: Uint8Array, stop: (error: Error) => void) => void,
    done: () => T,
  ): Promise<T> {
    const module = zlibModule;
    if (module === undefined) {
      return loadZlib().then(
        (module) => this.#start(module, feed, onChunk, done),
        (error) => {
          this.#busy = false;
          releaseZlibSlot();
          throw error;
        },
      );
    }
    return this.#start(module, feed, onChunk, done);
  }

  #start<T>(
    module: ZlibModule,
    feed: (zlib: Zlib) => void,
    onChunk: (chunk: Uint8Array, stop: (error: Error) => void) => void,
    done: () => T,
  ): Promise<T> {
    if (this.#closed) {
      this.#busy = false;
      releaseZlibSlot();
      return Promise.reject(
        new TypeError("Cannot run zlib: the engine is closed"),
      );
    }
    const create = () => this.#create(module);
    let zlib: Zlib;
    try {
      zlib = this.#zlib ??= this.#reset ? take(this.#key, create) : create();
    } catch (error) {
      // No stream, no run: the slot and the engine are free again.
      this.#busy = false;
      releaseZlibSlot();
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        zlib.sink = undefined;
        this.#busy = false;
        releaseZlibSlot();
        if (error || this.#closed) {
          // A stopped or broken stream cannot be reused.
          this.#zlib = undefined;
          zlib.close();
        } else if (this.#reset) {
          this.#zlib = undefined;
          giveBack(this.#key, zlib);
        }
        if (error) reject(error);
        else resolve(done());
      };
      zlib.sink = {
        data: (chunk) => onChunk(chunk, finish),
        error: finish,
      };
      try {
        feed(zlib);
        if (!settled) {
          zlib.flush(module.constants.Z_SYNC_FLUSH, () => {
            // Deno calls back before it emits a data error: look first.
            finish(zlib.errored ?? undefined);
          });
        }
      } catch (error) {
        // Deno's zlib may throw a data error from write() itself.
        finish(error as Error);
      }
    });
  }

  /** Releases the zlib stream (after the message in progress, if any). */
  close(): void {
    this.#closed = true;
    if (this.#zlib && !this.#busy) {
      this.#zlib.close();
      this.#zlib = undefined;
    }
  }
}

/**
 * Inflates messages (RFC 7692 §7.2.2) with a bound on the output: inflation
 * stops as soon as the output passes the limit.
 */
export class Inflater {
  #engine: Engine;

  /**
   * Makes an inflater; its zlib stream is created on first use.
   *
   * @param windowBits The peer's window (8–15).
   * @param noContextTakeover Whether the peer resets after each message.
   */
  constructor(windowBits: number, noContextTakeover: boolean) {
    // zlib raises a raw window of 8 to 9 when deflating, so a peer that
    // negotiated 8 may send 9-bit streams; inflate with at least 9.
    const bits = Math.max(windowBits, 9);
    this.#engine = new Engine(
      noContextTakeover,
      `inflate:${bits}`,
      (zlib) => attach(zlib.createInflateRaw({ windowBits: bits })),
    );
  }

  /** Releases the zlib stream (after the message in progress, if any). */
  close(): void {
    this.#engine.close();
  }

  /**
   * Inflates one message and decodes it by its opcode: text as strict
   * UTF-8, binary as the bytes.
   *
   * @param opcode The message's opcode (1 text, 2 binary).
   * @param data Its compressed payload, trailer stripped.
   * @param limit The most bytes the inflated message may have.
   * @returns The string or the bytes.
   * @throws {WebSocketError} As {@linkcode Inflater.inflate}, and
   * `ERR_INVALID_UTF8` (1007) for text that is not UTF-8.
   */
  async inflateMessage(
    opcode: number,
    data: Uint8Array,
    limit: number,
  ): Promise<string | Uint8Array> {
    const bytes = await this.inflate(data, limit);
    if (opcode !== TEXT) return bytes;
    try {
      return decodeUtf8(bytes);
    } catch (cause) {
      throw new WebSocketError("Cannot decode text message: invalid UTF-8", {
        code: "ERR_INVALID_UTF8",
        cause,
      });
    }
  }

  /**
   * Inflates one message.
   *
   * @param data The message's compressed payload, trailer stripped.
   * @param limit The most bytes the result may have.
   * @returns The inflated message.
   * @throws {WebSocketError} `ERR_MESSAGE_TOO_LARGE` (1009) past the limit;
   * `ERR_INVALID_COMPRESSED_DATA` (1007) for a corrupt stream.
   */
  async inflate(data: Uint8Array, limit: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      return await this.#engine.run(
        (zlib) => {
          for (let i = 0; i < data.length && zlib.sink; i += INFLATE_SLICE) {
            zlib.write(data.subarray(i, i + INFLATE_SLICE));
          }
          if (zlib.sink) zlib.write(TRAILER);
        },
        (chunk, stop) => {
          total += chunk.length;
          if (total > limit) {
            release(chunks);
            release([chunk]);
            stop(
              new WebSocketError(
                `Cannot inflate message: it exceeds maxMessageSize (${limit} bytes)`,
                { code: "ERR_MESSAGE_TOO_LARGE" },
              ),
            );
            return;
          }
          chunks.push(chunk);
        },
        () => concat(chunks, total),
      );
    } catch (error) {
      release(chunks);
      if (error instanceof WebSocketError || error instanceof TypeError) {
        throw error;
      }
      throw new WebSocketError(
        `Cannot inflate message: ${(error as Error).message}`,
        { code: "ERR_INVALID_COMPRESSED_DATA", cause: error },
      );
    }
  }
}

/** Deflates messages (RFC 7692 §7.2.1): sync flush, trailer stripped. */
export class Deflater {
  #engine: Engine;

  /**
   * Makes a deflater; its zlib stream is created on first use.
   *
   * @param windowBits Our window (8–15).
   * @param noContextTakeover Whether to reset after each message.
   * @param level The zlib level.
   * @param memLevel The zlib memory level.
   */
  constructor(
    windowBits: number,
    noContextTakeover: boolean,
    level: number,
    memLevel: number,
  ) {
    this.#engine = new Engine(
      noContextTakeover,
      `deflate:${windowBits}:${level}:${memLevel}`,
      (zlib) => attach(zlib.createDeflateRaw({ windowBits, level, memLevel })),
    );
  }

  /** Releases the zlib stream (after the message in progress, if any). */
  close(): void {
    this.#engine.close();
  }

  /**
   * Deflates one message.
   *
   * @param data The message's payload.
   * @returns The compressed payload, without the trailing `00 00 ff ff`.
   */
  deflate(data: Uint8Array): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    return this.#engine.run(
      (zlib) => zlib.write(data),
      (chunk) => {
        chunks.push(chunk);
        total += chunk.length;
      },
      () => {
        const out = concat(chunks, total);
        const n = out.length;
        return n >= 4 && out[n - 4] === 0 && out[n - 3] === 0 &&
            out[n - 2] === 0xff && out[n - 1] === 0xff
          ? out.subarray(0, n - 4)
          : out;
      },
    );
  }
}
