/**
 * permessage-deflate (RFC 7692): the negotiation of its four parameters, and
 * a bounded inflater and a deflater over `node:zlib`.
 *
 * Why `node:zlib` and not `CompressionStream("deflate-raw")`: only zlib takes
 * window bits 8–15, which `server_max_window_bits` and
 * `client_max_window_bits` need, and only its stream can be stopped part-way
 * through an inflate, which bomb safety needs (`DecompressionStream` hands
 * back all of a write's output at once). Measured by `bench/deflate_throughput.ts`
 * on this 2-core machine, same corpus, same run: deflating 2.7 KiB JSON
 * messages costs 39.8 µs each with zlib and 39.2 µs with
 * `CompressionStream`; inflating 64 KiB ones runs at 682 against 749 MB/s.
 * A gap under 10% does not pay for losing the window sizes.
 *
 * @module
 */

import type { DeflateRaw, InflateRaw } from "node:zlib";
import { WebSocketError } from "../errors.ts";
import type { ExtensionOffer } from "../handshake.ts";
import { checkDeflateOptions } from "../_options.ts";

/** The extension's token. */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * How to offer (client) or accept (server) permessage-deflate.
 *
 * On a client each field is what is asked for; on a server it is the
 * server's policy, applied to whatever the client offers.
 */
export interface PerMessageDeflateOptions {
  /**
   * Client: ask the server to reset its compression context after each
   * message. Server: always reset ours (saves memory, costs ratio).
   *
   * @default {false}
   */
  serverNoContextTakeover?: boolean;
  /**
   * Client: promise to reset ours after each message. Server: require the
   * client to reset its context.
   *
   * @default {false}
   */
  clientNoContextTakeover?: boolean;
  /**
   * Client: ask the server to use at most 2^n bytes of window (8–15).
   * Server: use at most this, even if the client allows more.
   *
   * @default {15 (not sent)}
   */
  serverMaxWindowBits?: number;
  /**
   * Client: `true` sends a bare `client_max_window_bits` (the server may
   * then pick our window); a number promises at most 2^n bytes; `false`
   * leaves it out. Server: ask the client for at most 2^n bytes; an offer
   * that does not allow it is declined.
   *
   * @default {client: true; server: none (the client's choice)}
   */
  clientMaxWindowBits?: number | boolean;
  /**
   * Messages smaller than this many bytes are sent uncompressed. Measured
   * by `bench/deflate_throughput.ts`: JSON under 128 bytes grows when deflated
   * alone; 128–512 bytes save 23–61%, but each zlib call costs 9–13 µs,
   * about as much CPU as echoing a small message uncompressed. From 1 KiB a
   * call saves 700 bytes or more for 15 µs. So 1024, as ws chose. A
   * non-negative integer; `Infinity` sends nothing compressed (received
   * messages are still inflated).
   *
   * @default {1024}
   */
  threshold?: number;
  /**
   * The zlib compression level, 0–9.
   *
   * @default {6}
   */
  level?: number;
  /**
   * The zlib memory level, 1–9: lower uses less memory per deflater.
   *
   * @default {8}
   */
  memLevel?: number;
}

/** The outcome of the negotiation: what each side does. */
export interface DeflateParams {
  /** The server resets its deflate context after each message. */
  serverNoContextTakeover: boolean;
  /** The client resets its deflate context after each message. */
  clientNoContextTakeover: boolean;
  /** The server's deflate window, in bits (8–15). */
  serverMaxWindowBits: number;
  /** The client's deflate window, in bits (8–15). */
  clientMaxWindowBits: number;
}

/** Negotiated parameters plus the local engine settings a connection uses. */
export interface NegotiatedDeflate extends DeflateParams {
  /** See {@linkcode PerMessageDeflateOptions.threshold}. */
  threshold: number;
  /** See {@linkcode PerMessageDeflateOptions.level}. */
  level: number;
  /** See {@linkcode PerMessageDeflateOptions.memLevel}. */
  memLevel: number;
}

const DEFAULT_THRESHOLD = 1024;
const DEFAULT_LEVEL = 6;
const DEFAULT_MEM_LEVEL = 8;
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;
const KNOWN = new Set([
  "server_no_context_takeover",
  "client_no_context_takeover",
  "server_max_window_bits",
  "client_max_window_bits",
]);

function engineSettings(options: PerMessageDeflateOptions) {
  checkDeflateOptions("configure permessage-deflate", options);
  return {
    threshold: options.threshold ?? DEFAULT_THRESHOLD,
    level: options.level ?? DEFAULT_LEVEL,
    memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
  };
}

/**
 * The client's offers, in order of preference (RFC 7692 §5).
 *
 * @param options One offer, or several in order of preference.
 * @default {one offer with a bare client_max_window_bits}
 * @returns The offers, ready for `formatExtensions`.
 * @throws {RangeError | TypeError} For an option out of its range (window
 * bits outside 8–15, a level outside 0–9), or not a number.
 *
 * @example The default offer
 * ```ts
 * import { deflateOffers, formatExtensions } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   formatExtensions(deflateOffers({})),
 *   "permessage-deflate; client_max_window_bits",
 * );
 * ```
 */
export function deflateOffers(
  options: PerMessageDeflateOptions | PerMessageDeflateOptions[],
): ExtensionOffer[] {
  const list = Array.isArray(options) ? options : [options];
  return list.map((option) => {
    engineSettings(option);
    const params: Record<string, string | true> = {};
    if (option.serverNoContextTakeover) {
      params.server_no_context_takeover = true;
    }
    if (option.clientNoContextTakeover) {
      params.client_no_context_takeover = true;
    }
    if (option.serverMaxWindowBits !== undefined) {
      params.server_max_window_bits = String(option.serverMaxWindowBits);
    }
    const client = option.clientMaxWindowBits ?? true;
    if (client !== false) {
      params.client_max_window_bits = client === true ? true : String(client);
    }
    return { name: PERMESSAGE_DEFLATE, params };
  });
}

/** An offer's parameters once checked; undefined for an invalid offer. */
interface CheckedParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | undefined;
  clientMaxWindowBits: number | true | undefined;
}

/** Why a parameter list is invalid (RFC 7692 §7), or the checked values. */
function checkParams(
  offer: ExtensionOffer,
  inResponse: boolean,
): CheckedParams | string {
  if (offer.duplicates?.length) {
    return `parameter ${offer.duplicates[0]} appears twice`;
  }
  for (const name of Object.keys(offer.params)) {
    if (!KNOWN.has(name)) return `unknown parameter ${name}`;
  }
  const p = offer.params;
  for (
    const name of ["server_no_context_takeover", "client_no_context_takeover"]
  ) {
    if (p[name] !== undefined && p[name] !== true) {
      return `${name} takes no value`;
    }
  }
  const server = p.server_max_window_bits;
  if (server !== undefined && (server === true || !WINDOW_BITS.test(server))) {
    return `server_max_window_bits must be 8 to 15, not ${server}`;
  }
  const client = p.client_max_window_bits;
  if (
    client !== undefined &&
    (client === true ? inResponse : !WINDOW_BITS.test(client))
  ) {
    return `client_max_window_bits must be 8 to 15, not ${client}`;
  }
  return {
    serverNoContextTakeover: p.server_no_context_takeover === true,
    clientNoContextTakeover: p.client_no_context_takeover === true,
    serverMaxWindowBits: server === undefined ? undefined : Number(server),
    clientMaxWindowBits: client === undefined
      ? undefined
      : client === true
      ? true
      : Number(client),
  };
}

/**
 * The server's choice (RFC 7692 §5, §7.1): the first acceptable offer under
 * the server's policy. Invalid offers (unknown or repeated parameters, values
 * out of range) and offers the policy cannot meet are declined, and when
 * none is left the connection goes on without compression.
 *
 * @param offers The client's extension offers (others than
 * permessage-deflate are skipped).
 * @param policy The server's policy.
 * @returns The response element and the negotiated settings, or
 * `undefined` to decline.
 * @throws {RangeError | TypeError} For a policy with an option out of its
 * range (window bits outside 8–15, a level outside 0–9), or not a number.
 *
 * @example Accept Chromium's offer
 * ```ts
 * import { acceptDeflate, parseExtensions } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const offers = parseExtensions("permessage-deflate; client_max_window_bits");
 * const accepted = acceptDeflate(offers, { clientMaxWindowBits: 12 });
 * assertEquals(accepted?.response.params, { client_max_window_bits: "12" });
 * assertEquals(accepted?.params.clientMaxWindowBits, 12);
 * ```
 */
export function acceptDeflate(
  offers: ExtensionOffer[],
  policy: PerMessageDeflateOptions,
): { response: ExtensionOffer; params: NegotiatedDeflate } | undefined {
  const engine = engineSettings(policy);
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const checked = checkParams(offer, false);
    if (typeof checked === "string") continue;
    const params: Record<string, string | true> = {};
    const serverNoContextTakeover = checked.serverNoContextTakeover ||
      policy.serverNoContextTakeover === true;
    const clientNoContextTakeover = checked.clientNoContextTakeover ||
      policy.clientNoContextTakeover === true;
    if (serverNoContextTakeover) params.server_no_context_takeover = true;
    if (clientNoContextTakeover) params.client_no_context_takeover = true;

    // §7.1.2.1: a requested server window is accepted by answering with it
    // or less; without a request the server may still announce a smaller one.
    let serverBits = 15;
    if (checked.serverMaxWindowBits !== undefined) {
      serverBits = Math.min(
        checked.serverMaxWindowBits,
        policy.serverMaxWindowBits ?? 15,
      );
      params.server_max_window_bits = String(serverBits);
    } else if (policy.serverMaxWindowBits !== undefined) {
      serverBits = policy.serverMaxWindowBits;
      params.server_max_window_bits = String(serverBits);
    }

    // §7.1.2.2: the server may limit the client's window only if the offer
    // has client_max_window_bits.
    const wanted = typeof policy.clientMaxWindowBits === "number"
      ? policy.clientMaxWindowBits
      : undefined;
    let clientBits = 15;
    if (checked.clientMaxWindowBits === undefined) {
      if (typeof wanted === "number") continue; // cannot meet the policy
    } else {
      const offered = checked.clientMaxWindowBits === true
        ? 15
        : checked.clientMaxWindowBits;
      clientBits = typeof wanted === "number"
        ? Math.min(wanted, offered)
        : offered;
      if (typeof wanted === "number" || checked.clientMaxWindowBits !== true) {
        params.client_max_window_bits = String(clientBits);
      }
    }
    return {
      response: { name: PERMESSAGE_DEFLATE, params },
      params: {
        serverNoContextTakeover,
        clientNoContextTakeover,
        serverMaxWindowBits: serverBits,
        clientMaxWindowBits: clientBits,
        ...engine,
      },
    };
  }
  return undefined;
}

function responseError(reason: string): WebSocketError {
  return new WebSocketError(
    "ERR_HANDSHAKE",
    `Cannot open WebSocket: the server's permessage-deflate response is invalid: ${reason}`,
  );
}

/**
 * Checks the server's permessage-deflate response against what was offered
 * (RFC 7692 §7.1): unknown or repeated parameters, values out of range, a
 * `client_max_window_bits` that was not offered or is larger than offered,
 * a `server_max_window_bits` larger than asked, or a requested parameter the
 * server left out all fail the handshake.
 *
 * @param response The server's extension elements for permessage-deflate.
 * @param options The options the offers were made from.
 * @returns The negotiated settings.
 * @throws {WebSocketError} `ERR_HANDSHAKE`, saying what was wrong.
 *
 * @example A response that limits our window
 * ```ts
 * import { parseExtensions, validateDeflateResponse } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const params = validateDeflateResponse(
 *   parseExtensions("permessage-deflate; client_max_window_bits=10"),
 *   {},
 * );
 * assertEquals(params.clientMaxWindowBits, 10);
 * assertEquals(params.serverMaxWindowBits, 15);
 * ```
 */
export function validateDeflateResponse(
  response: ExtensionOffer[],
  options: PerMessageDeflateOptions | PerMessageDeflateOptions[],
): NegotiatedDeflate {
  if (response.length !== 1) {
    throw responseError(
      `it names permessage-deflate ${response.length} times`,
    );
  }
  const checked = checkParams(response[0]!, true);
  if (typeof checked === "string") throw responseError(checked);
  const list = Array.isArray(options) ? options : [options];
  let why = "";
  for (const option of list) {
    const engine = engineSettings(option);
    const offeredClient = option.clientMaxWindowBits ?? true;
    if (checked.clientMaxWindowBits !== undefined) {
      const bits = checked.clientMaxWindowBits as number;
      // §7.1.2.2: only an offer with client_max_window_bits may be answered
      // with it.
      if (offeredClient === false) {
        why = "client_max_window_bits was not offered";
        continue;
      }
      if (offeredClient !== true && bits > offeredClient) {
        why =
          `client_max_window_bits=${bits} is over the offered ${offeredClient}`;
        continue;
      }
    }
    if (option.serverMaxWindowBits !== undefined) {
      if (checked.serverMaxWindowBits === undefined) {
        why = "server_max_window_bits was asked for and not answered";
        continue;
      }
      if (checked.serverMaxWindowBits > option.serverMaxWindowBits) {
        why =
          `server_max_window_bits=${checked.serverMaxWindowBits} is over the asked ${option.serverMaxWindowBits}`;
        continue;
      }
    }
    if (option.serverNoContextTakeover && !checked.serverNoContextTakeover) {
      why = "server_no_context_takeover was asked for and not answered";
      continue;
    }
    return {
      serverNoContextTakeover: checked.serverNoContextTakeover,
      clientNoContextTakeover: checked.clientNoContextTakeover ||
        option.clientNoContextTakeover === true,
      serverMaxWindowBits: checked.serverMaxWindowBits ?? 15,
      clientMaxWindowBits:
        (checked.clientMaxWindowBits as number | undefined) ??
          (typeof offeredClient === "number" ? offeredClient : 15),
      ...engine,
    };
  }
  throw responseError(why);
}

// --- the engine ------------------------------------------------------------

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
    const module = zlibModule;
    if (module === undefined) {
      return loadZlib().then(
        (module) => this.#start(module, feed, onChunk, done),
        (error) => {
          this.#busy = false;
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
      return Promise.reject(
        new TypeError("Cannot run zlib: the engine is closed"),
      );
    }
    const create = () => this.#create(module);
    const zlib = this.#zlib ??= this.#reset
      ? take(this.#key, create)
      : create();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        zlib.sink = undefined;
        this.#busy = false;
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
            stop(
              new WebSocketError(
                "ERR_MESSAGE_TOO_LARGE",
                `Cannot inflate message: it exceeds maxMessageSize (${limit} bytes)`,
              ),
            );
            return;
          }
          chunks.push(chunk);
        },
        () => concat(chunks, total),
      );
    } catch (error) {
      if (error instanceof WebSocketError || error instanceof TypeError) {
        throw error;
      }
      throw new WebSocketError(
        "ERR_INVALID_COMPRESSED_DATA",
        `Cannot inflate message: ${(error as Error).message}`,
        { cause: error },
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
