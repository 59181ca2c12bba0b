/**
 * `RedisBackplane`: topics across processes through Redis, with the
 * `ioredis` client. This subpath (`@seed/websocket-streams/redis`) is the
 * package's only part with a dependency; the core needs none.
 *
 * Two modes:
 *
 * - **`"pubsub"`** (the default): `PUBLISH` and `SUBSCRIBE`. At most once,
 *   mostly: a message published while a process is disconnected from
 *   Redis, or while Redis restarts, does not reach that process's
 *   subscribers; and a `PUBLISH` whose answer a lost connection cut is sent
 *   again by ioredis once reconnected, so that message can arrive twice.
 * - **`"streams"`**: one stream per topic, `XADD … MAXLEN ~ n` and a
 *   blocking `XREAD` from the last id read. At least once: after a
 *   disconnection or a Redis restart, reading resumes from the last id, so
 *   nothing added since is missed; a publish made while Redis is
 *   unreachable waits in the client's queue and is added once it is back
 *   (it fails after `maxRetriesPerRequest` reconnection attempts). What
 *   Redis loses itself is lost: entries trimmed by `MAXLEN` before they
 *   were read, and, without persistence, entries a restart dropped before
 *   they were read. A command resent after a broken connection may add an
 *   entry twice.
 *
 * Both reconnect on their own (ioredis's `retryStrategy`) and subscribe
 * again after a reconnection.
 *
 * @example Two processes' topics through Redis (needs a Redis server)
 * ```ts ignore
 * import { serve, Topics } from "@seed/websocket-streams";
 * import { RedisBackplane } from "@seed/websocket-streams/redis";
 *
 * const backplane = new RedisBackplane({ url: "redis://127.0.0.1:6379" });
 * const topics = new Topics({ backplane });
 * serve({ port: 8080 }, async (connection) => {
 *   await topics.subscribe(connection, "chat");
 *   for await (const message of connection.readable) {
 *     await topics.publish("chat", message);
 *   }
 * });
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "./_ioredis.ts";
import type { Backplane } from "../lib/topics.ts";

export type { Backplane } from "../lib/topics.ts";

/** How {@linkcode RedisBackplane} carries messages; see the module doc. */
export type RedisBackplaneMode = "pubsub" | "streams";

/** Options for {@linkcode RedisBackplane}. */
export interface RedisBackplaneOptions {
  /** The server, as `redis://[user:password@]host:port[/db]`. */
  url: string;
  /**
   * Pub/sub (at most once) or streams (at least once, resumes from the last
   * id read).
   *
   * @default {"pubsub"}
   */
  mode?: RedisBackplaneMode;
  /**
   * Put before each topic to make its channel or stream key.
   *
   * @default {"ws:topic:"}
   */
  prefix?: string;
  /**
   * Streams: about how many entries each stream keeps (`MAXLEN ~`).
   *
   * @default {10000}
   */
  maxLength?: number;
  /**
   * Streams: how long one blocking `XREAD` waits, in milliseconds; a new
   * subscription interrupts it (`CLIENT UNBLOCK`), but for the first one
   * after a reconnection, which it waits out (at most this long).
   *
   * @default {5000}
   */
  blockTimeout?: number;
  /**
   * How many times a command waits for a reconnection before it fails (the
   * bound on a publish made while Redis is unreachable). Meanwhile the
   * publishes wait in ioredis's queue, which has no bound on their count:
   * a caller that publishes while Redis is down should await each
   * `publish()` (it waits out the reconnections) rather than fire many.
   *
   * @default {20}
   */
  maxRetriesPerRequest?: number;
  /**
   * Hears errors that have no caller to reach (a lost connection, a read
   * that failed and will be retried).
   *
   * @default {ignore: ioredis reconnects}
   */
  onError?: (error: unknown) => void;
}

type Listener = (bytes: Uint8Array, id?: string) => void;

const DEFAULT_MAX_LENGTH = 10_000;
const DEFAULT_BLOCK = 5000;
// After a failed read, wait this long before the next: ioredis is
// reconnecting meanwhile.
const RETRY_DELAY = 100;
// Entries one XREAD takes at most.
const READ_COUNT = 1000;

function ignore(): void {}

// How long ioredis waits, after ending a socket on close(), for Redis to
// close its side before it destroys the socket (its own default is 2 s).
const DISCONNECT_TIMEOUT = 500;
// What a wait raced with close() gives when close() came first.
const CLOSED: unique symbol = Symbol("closed");

/**
 * Resolves when `client` has ended for good: ioredis emits "end" once its
 * socket is closed and it will not reconnect. A client waiting to reconnect
 * (Redis is gone) gets no "end" from disconnect(), which still starts its
 * destroy timer on the dead socket: the wait outlasts that timer.
 */
function whenEnded(client: Redis): Promise<void> {
  if (client.status === "end") return Promise.resolve();
  if (client.status === "reconnecting") {
    return new Promise((resolve) =>
      setTimeout(resolve, DISCONNECT_TIMEOUT + 50)
    );
  }
  return new Promise((resolve) => client.once("end", () => resolve()));
}

/** A copy that owns its bytes: the parser's buffers are not ours. */
function own(buffer: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(buffer);
}

/** Whether stream id `a` comes after `b` ("ms-seq", RESP strings). */
function after(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split("-").map(BigInt) as [bigint, bigint];
  return am > bm || (am === bm && as > bs);
}

/**
 * A `Backplane` on Redis; see the module doc for the two modes and what
 * each loses.
 */
export class RedisBackplane implements Backplane {
  #mode: RedisBackplaneMode;
  #prefix: string;
  #maxLength: number;
  #block: number;
  #onError: (error: unknown) => void;
  // Commands, and (pub/sub) the subscriber connection or (streams) the
  // blocking reader.
  #command: Redis;
  #listen: Redis;
  #listeners = new Map<string, Set<Listener>>();
  #closed = false;

  /**
   * Streams: the entries of a topic after an id, oldest first
   * (`XRANGE key (after + COUNT limit`): what a client that reconnects with
   * its last id missed, as far as the stream still holds it. In pub/sub
   * mode there is no history, and this is `undefined`, so that `Topics`
   * refuses `since` at once.
   */
  readonly history:
    | ((
      topic: string,
      after: string,
      limit: number,
    ) => Promise<{ id: string; bytes: Uint8Array }[]>)
    | undefined;
  // Streams: the last id read per topic, the reader's client id, and the
  // loop's wake-up.
  #lastIds = new Map<string, string>();
  #readerId: number | undefined;
  #reading: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #finished = Promise.withResolvers<void>();
  // Resolved by close(): the reader's waits race it, since a command sent
  // while Redis is gone never settles once the client is disconnected.
  #closing = Promise.withResolvers<typeof CLOSED>();

  /**
   * Connects to Redis (in the background: commands wait for the
   * connection).
   *
   * @param options The server, the mode and the bounds.
   * @throws {TypeError} For an unknown mode.
   * @throws {RangeError} For a `maxLength` or `blockTimeout` that is not a
   * positive integer.
   */
  constructor(options: RedisBackplaneOptions) {
    this.#mode = options.mode ?? "pubsub";
    if (this.#mode !== "pubsub" && this.#mode !== "streams") {
      throw new TypeError(
        `Cannot create Redis backplane: mode must be "pubsub" or "streams", not ${
          JSON.stringify(options.mode)
        }`,
      );
    }
    this.#prefix = options.prefix ?? "ws:topic:";
    this.#maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    this.#block = options.blockTimeout ?? DEFAULT_BLOCK;
    for (
      const [name, value] of [
        ["maxLength", this.#maxLength],
        ["blockTimeout", this.#block],
      ] as const
    ) {
      if (!Number.isInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create Redis backplane: ${name} must be a positive integer, not ${value}`,
        );
      }
    }
    this.#onError = options.onError ?? ignore;
    this.history = this.#mode === "streams"
      ? (topic, after, limit) => this.#history(topic, after, limit)
      : undefined;
    const settings = {
      maxRetriesPerRequest: options.maxRetriesPerRequest ?? 20,
      disconnectTimeout: DISCONNECT_TIMEOUT,
      // ioredis 5.9.3's ready check (INFO) cut by close() makes it
      // "recover" with a second disconnect of the closed socket, whose
      // destroy timer no "close" clears: it outlived `finished`. Without
      // it, a Redis still loading answers our commands with LOADING errors,
      // which fail that publish (or are retried, for the reader).
      enableReadyCheck: false,
    };
    this.#command = new Redis(options.url, settings);
    this.#listen = new Redis(options.url, {
      ...settings,
      // Without the ready check (above) the subscriber connection also
      // avoids ioredis 5.9.3's issue #2037: the INFO raced a SUBSCRIBE
      // sent while the connection started, failed ("Connection in
      // subscriber mode…"), and ioredis redid the connection, losing what
      // was published meanwhile. A Redis still loading answers SUBSCRIBE
      // and XREAD all the same.
      // An XREAD cut by a lost connection is sent again once reconnected
      // (autoResendUnfulfilledCommands: with it off, ioredis 5.9.3 drops the
      // cut commands and never settles their promises). That XREAD blocks
      // under a client id we do not know yet, which no CLIENT UNBLOCK
      // reaches: a topic subscribed meanwhile waits for it to end, up to
      // blockTimeout.
    });
    for (const client of [this.#command, this.#listen]) {
      client.on("error", (error: unknown) => this.#onError(error));
    }
    if (this.#mode === "pubsub") {
      this.#listen.on(
        "messageBuffer",
        (channel: Uint8Array, message: Uint8Array) => {
          const topic = Buffer.from(channel).toString().slice(
            this.#prefix.length,
          );
          this.#dispatch(topic, own(message));
        },
      );
    } else {
      // A reconnected reader has a new client id.
      this.#listen.on("ready", () => {
        this.#readerId = undefined;
      });
    }
  }

  /**
   * Publishes `bytes` on `topic`: `PUBLISH`, or `XADD` with `MAXLEN ~`.
   *
   * @param topic The topic.
   * @param bytes The message.
   * @returns Resolves once Redis has taken it.
   */
  async publish(topic: string, bytes: Uint8Array): Promise<void> {
    if (this.#closed) {
      throw new TypeError("Cannot publish message: the backplane is closed");
    }
    const key = this.#prefix + topic;
    const payload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    if (this.#mode === "pubsub") {
      await this.#command.publish(key, payload);
    } else {
      await this.#command.xadd(
        key,
        "MAXLEN",
        "~",
        String(this.#maxLength),
        "*",
        "m",
        payload,
      );
    }
  }

  /**
   * Hears `topic` from now on: `SUBSCRIBE`, or `XREAD` from the stream's
   * current last id.
   *
   * @param topic The topic.
   * @param onMessage Called with each message's bytes.
   * @returns Resolves, once Redis has the subscription, with the function
   * that ends it.
   */
  async subscribe(
    topic: string,
    onMessage: (bytes: Uint8Array, id?: string) => void,
  ): Promise<() => void> {
    if (this.#closed) {
      throw new TypeError("Cannot subscribe: the backplane is closed");
    }
    let listeners = this.#listeners.get(topic);
    const first = listeners === undefined;
    if (listeners === undefined) {
      this.#listeners.set(topic, listeners = new Set());
    }
    listeners.add(onMessage);
    const unsubscribe = () => this.#unsubscribe(topic, onMessage);
    if (!first) return unsubscribe;
    const key = this.#prefix + topic;
    try {
      if (this.#mode === "pubsub") {
        await this.#listen.subscribe(key);
      } else {
        // Read from what is last now: whatever is added after it is read,
        // however late the reader's XREAD reaches Redis.
        const last = await this.#command.xrevrange(key, "+", "-", "COUNT", 1);
        this.#lastIds.set(topic, last[0]?.[0] ?? "0-0");
        this.#startReading();
      }
    } catch (error) {
      this.#unsubscribe(topic, onMessage);
      throw error;
    }
    return unsubscribe;
  }

  async #history(
    topic: string,
    after: string,
    limit: number,
  ): Promise<{ id: string; bytes: Uint8Array }[]> {
    const entries = await this.#command.xrangeBuffer(
      this.#prefix + topic,
      `(${after}`,
      "+",
      "COUNT",
      limit,
    );
    const out: { id: string; bytes: Uint8Array }[] = [];
    for (const [rawId, fields] of entries) {
      const value = fields[1];
      if (value !== undefined) {
        out.push({ id: Buffer.from(rawId).toString(), bytes: own(value) });
      }
    }
    return out;
  }

  /** Disconnects from Redis; nothing is heard or published after it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#lastIds.clear();
    this.#wake?.();
    // disconnect() only ends each socket; ioredis closes it once Redis
    // closes its side (or destroys it after DISCONNECT_TIMEOUT). Wait for
    // both, so that a caller who awaits `finished` and exits leaves nothing
    // open.
    const ended = [this.#command, this.#listen].map(whenEnded);
    this.#command.disconnect();
    this.#listen.disconnect();
    this.#closing.resolve(CLOSED);
    const done = () => this.#finished.resolve();
    Promise.all([this.#reading, ...ended]).then(done, done);
  }

  /**
   * Resolves after {@linkcode close}, once the reader loop has ended and
   * both connections to Redis are closed (ioredis destroys a socket that
   * Redis leaves open for 0.5 s).
   */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  #unsubscribe(topic: string, listener: Listener): void {
    const listeners = this.#listeners.get(topic);
    if (!listeners?.delete(listener) || listeners.size > 0) return;
    this.#listeners.delete(topic);
    if (this.#closed) return;
    if (this.#mode === "pubsub") {
      this.#listen.unsubscribe(this.#prefix + topic).catch(this.#onError);
    } else {
      this.#lastIds.delete(topic);
    }
  }

  #dispatch(topic: string, bytes: Uint8Array, id?: string): void {
    const listeners = this.#listeners.get(topic);
    if (listeners === undefined) return;
    for (const listener of listeners) {
      try {
        listener(bytes, id);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  // --- streams ----------------------------------------------------------

  #startReading(): void {
    if (this.#reading === undefined) {
      this.#reading = this.#readLoop();
      return;
    }
    // A new topic: interrupt the XREAD under way, so that the next one
    // reads its stream too.
    this.#wake?.();
    if (this.#readerId !== undefined) {
      this.#command.client("UNBLOCK", this.#readerId).catch(ignore);
    }
  }

  async #readLoop(): Promise<void> {
    while (!this.#closed) {
      if (this.#lastIds.size === 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      try {
        if (this.#readerId === undefined) {
          const id = await this.#untilClosed(this.#listen.client("ID"));
          if (id === CLOSED) break;
          this.#readerId = id as number;
        }
        // The topics are read once the id is known: a topic subscribed
        // before it could not interrupt the XREAD (CLIENT UNBLOCK needs the
        // id), so it must be in this one.
        const topics = [...this.#lastIds.keys()];
        if (topics.length === 0) continue;
        const result = await this.#untilClosed(this.#listen.xreadBuffer(
          "COUNT",
          READ_COUNT,
          "BLOCK",
          this.#block,
          "STREAMS",
          ...topics.map((topic) => this.#prefix + topic),
          ...topics.map((topic) => this.#lastIds.get(topic)!),
        ));
        if (result === CLOSED) break;
        for (const [key, entries] of result ?? []) {
          const topic = Buffer.from(key).toString().slice(this.#prefix.length);
          for (const [rawId, fields] of entries) {
            const id = Buffer.from(rawId).toString();
            const last = this.#lastIds.get(topic);
            // Unsubscribed meanwhile, or seen already.
            if (last === undefined || !after(id, last)) continue;
            this.#lastIds.set(topic, id);
            const value = fields[1];
            if (value !== undefined) this.#dispatch(topic, own(value), id);
          }
        }
      } catch (error) {
        if (this.#closed) break;
        this.#onError(error);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await this.#untilClosed(
          new Promise((resolve) => timer = setTimeout(resolve, RETRY_DELAY)),
        );
        clearTimeout(timer);
      }
    }
  }

  /** `promise`, or CLOSED once close() is called, whichever comes first. */
  #untilClosed<T>(promise: Promise<T>): Promise<T | typeof CLOSED> {
    // Settling after close(), it has no one to hear it.
    promise.catch(ignore);
    return Promise.race([promise, this.#closing.promise]);
  }
}
