/**
 * {@linkcode Topics}: publish a message once to every connection subscribed
 * to a topic, in this process and, through a {@linkcode Backplane}, in
 * others.
 *
 * A published message is framed once (and compressed once per set of
 * negotiated deflate settings), and the same bytes are queued on every
 * subscriber's connection: server frames are unmasked (RFC 6455 §5.1), so
 * one frame's bytes are valid on every server-side connection. Each
 * subscriber's queue is bounded; a subscriber that falls behind is closed
 * or skipped (see {@linkcode TopicsOptions.slowSubscriber}) and never
 * stalls the others.
 *
 * @module
 */

import { encodeShared } from "./codec/_outbox.ts";
import { Opcode } from "./codec/frame.ts";
import { Deflater } from "./deflate/zlib.ts";
import {
  type SharedFrameTarget,
  sharedFrameTarget,
  TransportWebSocket,
} from "./net/connection.ts";
import type { WebSocketConnection } from "./net/websocket_connection.ts";
import type { MessageData } from "./codec/message.ts";

/**
 * Carries published messages between processes (or isolates): whatever a
 * {@linkcode Topics} publishes goes through it, and comes back to every
 * `Topics` subscribed to the topic, this one included, each message once.
 * `RedisBackplane` (the `./redis` export) and
 * {@linkcode BroadcastChannelBackplane} implement it.
 *
 * The contract: `publish` delivers `bytes` to every `onMessage` subscribed to
 * `topic` through any instance of the backplane, its own included; the
 * messages of one topic from one instance reach each `onMessage` in publish
 * order. A backplane may also give all of a topic's messages one order
 * everywhere (`RedisBackplane` does, the server's); one that does not
 * ({@linkcode BroadcastChannelBackplane}) says so.
 */
export interface Backplane {
  /**
   * Sends `bytes` to every subscriber of `topic`, here and elsewhere.
   *
   * @param topic The topic.
   * @param bytes The message, which the backplane does not change.
   * @returns Resolves once the backplane has taken the message.
   */
  publish(topic: string, bytes: Uint8Array): Promise<void>;
  /**
   * Calls `onMessage` with each message published on `topic` from now on.
   *
   * @param topic The topic.
   * @param onMessage Called with each message's bytes, in order, and its id
   * when the backplane keeps a history (see {@linkcode Backplane.history}).
   * @returns Resolves, once the subscription is active, with the function
   * that ends it.
   */
  subscribe(
    topic: string,
    onMessage: (bytes: Uint8Array, id?: string) => void,
  ): Promise<() => void>;
  /**
   * The messages of `topic` after the one with id `after`, oldest first,
   * for a backplane that keeps a history (Redis streams). Ids are Redis
   * stream ids (`<ms>-<seq>`), which order the messages.
   *
   * @param topic The topic.
   * @param after The id of the last message the client has.
   * @param limit The most messages returned.
   * @returns The messages and their ids.
   */
  history?(
    topic: string,
    after: string,
    limit: number,
  ): Promise<{ id: string; bytes: Uint8Array }[]>;
}

/** Options for {@linkcode Topics.subscribe}. */
export interface SubscribeOptions {
  /**
   * The id of the last message this client had (from
   * {@linkcode TopicsOptions.stamp}): the messages after it are sent first,
   * from the backplane's history, then the live ones, with none twice. Needs
   * a backplane with a history (`RedisBackplane` in streams mode). The
   * history goes at the pace the client takes it: a frame is queued once
   * the connection's queue is under {@linkcode TopicsOptions.maxBufferedAmount}
   * (looked at every 10 ms); a client that stops reading is ended by its
   * connection's `sendTimeout`. When the history cannot be read, the
   * connection is closed with 1011 (its client resumes again from the same
   * id) and `subscribe()` rejects.
   *
   * @default {none: live messages only}
   */
  since?: string;
}

/** What {@linkcode TopicsOptions.slowSubscriber} does with a slow subscriber. */
export type SlowSubscriberPolicy = "close" | "drop";

/** Options for {@linkcode Topics}. */
export interface TopicsOptions {
  /**
   * The most bytes a subscriber's connection may have queued (its
   * `bufferedAmount`) for a published message to be added. An empty queue
   * always takes one message, however large.
   *
   * @default {1048576 (1 MiB)}
   */
  maxBufferedAmount?: number;
  /**
   * What happens to a subscriber whose queue is full: `"close"` closes its
   * connection with {@linkcode TopicsOptions.slowCloseCode} (the close
   * frame goes after the messages already queued, and the connection
   * leaves all its topics); `"drop"` skips this message for it alone, and
   * counts it in `stats.dropped`.
   *
   * @default {"close"}
   */
  slowSubscriber?: SlowSubscriberPolicy;
  /**
   * The close code for a slow subscriber: 1013 (Try Again Later) or 1008
   * (Policy Violation).
   *
   * @default {1013}
   */
  slowCloseCode?: 1008 | 1013;
  /**
   * Reaches the subscribers of other processes. Without it, topics live in
   * this process alone.
   *
   * @default {none}
   */
  backplane?: Backplane;
  /**
   * Hears errors that have no caller to reach: a backplane's message that
   * cannot be read, or a failed subscription.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
  /**
   * Rewrites each message that comes with an id from the backplane (Redis
   * streams) before it is framed, once per message in each process: this
   * is how clients learn the ids they resume from
   * ({@linkcode SubscribeOptions.since}).
   *
   * @default {none: messages go as published}
   */
  stamp?: (
    message: string | Uint8Array,
    info: { topic: string; id: string },
  ) => MessageData;
  /**
   * The most messages a resuming subscriber is sent from the history, and
   * the most live ones held for it while the history is sent (past them it
   * is a slow subscriber: see {@linkcode TopicsOptions.slowSubscriber}).
   *
   * @default {1000}
   */
  maxReplay?: number;
  /**
   * The most topics one connection may be in at once: a `subscribe()` to
   * one more throws a `RangeError` (the application decides what the client
   * hears). Each topic a connection is in costs the server an entry for it.
   *
   * @default {1024}
   */
  maxTopicsPerConnection?: number;
}

/** Options for {@linkcode Topics.publish}. */
export interface PublishOptions {
  /** A connection that does not get this message (say, its sender). */
  except?: WebSocketConnection;
}

/** Counters of a {@linkcode Topics}, since it was made. */
export interface TopicsStats {
  /** Messages framed: one per message and distinct `fragmentSize`. */
  encoded: number;
  /** Messages compressed: one per message and distinct deflate settings. */
  compressed: number;
  /** Messages queued on a subscriber's connection. */
  delivered: number;
  /** Messages skipped for a slow subscriber (`slowSubscriber: "drop"`). */
  dropped: number;
  /** Slow subscribers closed (`slowSubscriber: "close"`). */
  closed: number;
}

interface Subscriber {
  id: number;
  // Topics whose history is being sent: the live frames held meanwhile.
  replaying: Map<string, { id: string; bytes: Uint8Array }[]> | undefined;
  // Topics it resumed: the last id sent from the history. A live message
  // added before the history was read, but heard after it, is in both: the
  // live one at or before this id is not sent again.
  resumedAt: Map<string, string> | undefined;
  // Replays waiting for its queue to drain: each ends its wait when called.
  pauses: Set<() => void>;
  connection: WebSocketConnection;
  target: SharedFrameTarget;
  topics: Set<string>;
  // Made once, not per message: its deflate settings (when they allow
  // sharing), and the keys of the frames it can take, plain or compressed.
  deflateKey: string | undefined;
  plainKey: string;
  compressedKey: string;
}

interface TopicState {
  name: string;
  subscribers: Set<Subscriber>;
  // The backplane's subscription, once asked for.
  remote: Promise<() => void> | undefined;
}

const DEFAULT_MAX_BUFFERED = 1024 * 1024;
const MAX_TOPIC_LENGTH = 1024;
// The envelope a message travels in through a backplane: a version byte,
// the opcode, the publishing Topics' id, the excepted subscriber's id (0 for
// none) and the payload.
const ENVELOPE_VERSION = 1;
const ORIGIN_BYTES = 16;
const ENVELOPE_HEADER = 2 + ORIGIN_BYTES + 4;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const DEFAULT_MAX_REPLAY = 1000;
const DEFAULT_MAX_TOPICS_PER_CONNECTION = 1024;
// How often a replay looks whether its subscriber's queue has room: a
// connection has no drain event for shared frames.
const REPLAY_POLL = 10;
// The close code of a subscriber whose history could not be read (Internal
// Error, RFC 6455 §7.4.1).
const RESUME_FAILED_CODE = 1011;

/** Whether stream id `a` comes after `b` (`<ms>-<seq>`; else by string). */
function idAfter(a: string, b: string): boolean {
  const x = /^(\d+)-(\d+)$/.exec(a);
  const y = /^(\d+)-(\d+)$/.exec(b);
  if (!x || !y) return a > b;
  const [xm, xs, ym, ys] = [x[1]!, x[2]!, y[1]!, y[2]!].map(BigInt) as [
    bigint,
    bigint,
    bigint,
    bigint,
  ];
  return xm > ym || (xm === ym && xs > ys);
}

function ignore(): void {}

/**
 * Topics of server-side connections, with encode-once fan-out; see the
 * module doc. Connections leave all their topics when they close.
 *
 * Only server-side {@linkcode WebSocketConnection}s (from `serve()` or
 * `acceptWebSocket()`) can subscribe: a client masks every frame with a key
 * of its own (RFC 6455 §5.1), so its frames cannot be shared. Sockets of
 * `upgradeWebSocket()` are Deno's own, whose frames we never touch.
 *
 * Order: within a topic, each subscriber gets messages in publish order.
 * With a backplane, every message, local ones too, is delivered when it
 * comes back from the backplane, so the order is the backplane's: over
 * `RedisBackplane`, all subscribers in all processes see one order per
 * topic (Redis's); over {@linkcode BroadcastChannelBackplane}, each
 * publisher's messages keep their order, but messages of two publishers
 * sent at once can reach two processes in different orders.
 *
 * @example Fan out to two subscribers
 * ```ts
 * import { connect, serve, Topics } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const topics = new Topics();
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   topics.subscribe(connection, "news");
 *   connection.readable.pipeTo(new WritableStream()).catch(() => {});
 * });
 * const url = `ws://127.0.0.1:${server.addr.port}/`;
 * const a = await connect(url);
 * const b = await connect(url);
 * while (topics.subscribers("news") < 2) await new Promise((r) => setTimeout(r, 10));
 * await topics.publish("news", "hello");
 * for (const client of [a, b]) {
 *   const reader = client.readable.getReader();
 *   assertEquals((await reader.read()).value, "hello");
 *   reader.releaseLock();
 *   client.close();
 *   await client.closed;
 * }
 * await server.shutdown();
 * topics.close();
 * ```
 */
export class Topics {
  #maxBuffered: number;
  #policy: SlowSubscriberPolicy;
  #slowCloseCode: number;
  #backplane: Backplane | undefined;
  #onError: (error: unknown) => void;
  #stamp: TopicsOptions["stamp"];
  #maxReplay: number;
  #maxTopics: number;
  #origin = crypto.getRandomValues(new Uint8Array(ORIGIN_BYTES));
  #topics = new Map<string, TopicState>();
  #subscribers = new Map<WebSocketConnection, Subscriber>();
  #nextId = 1;
  #deflaters = new Map<string, Deflater>();
  #closed = false;
  // Deliveries wait in one chain while one of them compresses, so that the
  // order holds (compression is asynchronous).
  #busy: Promise<void> | undefined;
  #busyCount = 0;
  #stats: TopicsStats = {
    encoded: 0,
    compressed: 0,
    delivered: 0,
    dropped: 0,
    closed: 0,
  };

  /**
   * Makes an empty set of topics.
   *
   * @param options The slow-subscriber bound and policy, and the backplane.
   * @throws {RangeError} For a `maxBufferedAmount` that is not a positive
   * number, a `maxReplay` or `maxTopicsPerConnection` that is not a
   * positive integer, or another close code.
   * @throws {TypeError} For an unknown `slowSubscriber` policy.
   */
  constructor(options: TopicsOptions = {}) {
    this.#maxBuffered = options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED;
    if (!(this.#maxBuffered > 0)) {
      throw new RangeError(
        `Cannot create topics: maxBufferedAmount must be a positive number, not ${
          String(options.maxBufferedAmount)
        }`,
      );
    }
    this.#policy = options.slowSubscriber ?? "close";
    if (this.#policy !== "close" && this.#policy !== "drop") {
      throw new TypeError(
        `Cannot create topics: slowSubscriber must be "close" or "drop", not ${
          JSON.stringify(options.slowSubscriber)
        }`,
      );
    }
    this.#slowCloseCode = options.slowCloseCode ?? 1013;
    if (this.#slowCloseCode !== 1008 && this.#slowCloseCode !== 1013) {
      throw new RangeError(
        `Cannot create topics: slowCloseCode must be 1008 or 1013, not ${
          String(options.slowCloseCode)
        }`,
      );
    }
    this.#backplane = options.backplane;
    this.#onError = options.onError ?? console.error;
    this.#stamp = options.stamp;
    this.#maxReplay = options.maxReplay ?? DEFAULT_MAX_REPLAY;
    if (!Number.isInteger(this.#maxReplay) || this.#maxReplay < 1) {
      throw new RangeError(
        `Cannot create topics: maxReplay must be a positive integer, not ${
          String(options.maxReplay)
        }`,
      );
    }
    this.#maxTopics = options.maxTopicsPerConnection ??
      DEFAULT_MAX_TOPICS_PER_CONNECTION;
    if (!Number.isInteger(this.#maxTopics) || this.#maxTopics < 1) {
      throw new RangeError(
        `Cannot create topics: maxTopicsPerConnection must be a positive integer, not ${
          String(options.maxTopicsPerConnection)
        }`,
      );
    }
  }

  /**
   * The counters: messages encoded, compressed, delivered, dropped, and
   * slow subscribers closed.
   *
   * @returns A copy of the counters.
   */
  get stats(): TopicsStats {
    return { ...this.#stats };
  }

  /**
   * Subscribes a connection to a topic. Again does nothing, `since`
   * included: the history is sent once, by the first. It leaves the topic
   * when it closes.
   *
   * @param connection A server-side connection.
   * @param topic The topic: 1 to 1024 UTF-16 units.
   * @param options `since`: resume after this message id.
   * @returns Resolves once the subscription is active everywhere: at once
   * without a backplane, once the backplane has subscribed with one
   * (rejects when it cannot; the connection stays subscribed here, and the
   * topic's next subscribe() asks the backplane again), and,
   * with `since`, once the missed messages are queued.
   * @throws {TypeError} For a client-side connection, or something else.
   * @throws {RangeError} For an empty or too long topic, or one more than
   * `maxTopicsPerConnection` for this connection.
   * @throws {TypeError} For `since` without a backplane that keeps a
   * history.
   */
  subscribe(
    connection: WebSocketConnection,
    topic: string,
    options: SubscribeOptions = {},
  ): Promise<void> {
    checkTopic("subscribe", topic);
    if (!(connection instanceof TransportWebSocket)) {
      throw new TypeError(
        "Cannot subscribe: expected a connection from serve() or acceptWebSocket() (one of upgradeWebSocket() is Deno's, whose frames are its own)",
      );
    }
    if (this.#closed) {
      throw new TypeError("Cannot subscribe: the topics are closed");
    }
    const since = options.since;
    if (since !== undefined && !this.#backplane?.history) {
      throw new TypeError(
        "Cannot resume: the backplane keeps no history (use RedisBackplane in streams mode)",
      );
    }
    let subscriber = this.#subscribers.get(connection);
    if (
      subscriber !== undefined && !subscriber.topics.has(topic) &&
      subscriber.topics.size >= this.#maxTopics
    ) {
      throw new RangeError(
        `Cannot subscribe: the connection is in ${subscriber.topics.size} topics already (maxTopicsPerConnection)`,
      );
    }
    if (subscriber === undefined) {
      const target = sharedFrameTarget(connection as TransportWebSocket);
      if (target.role !== "server") {
        throw new TypeError(
          "Cannot subscribe: a client connection masks each frame with its own key (RFC 6455 §5.1), so it cannot share frames",
        );
      }
      const deflate = target.deflate;
      const deflateKey = deflate &&
        `${deflate.windowBits}:${deflate.level}:${deflate.memLevel}:${deflate.threshold}`;
      subscriber = {
        id: this.#nextId++,
        replaying: undefined,
        resumedAt: undefined,
        pauses: new Set(),
        connection,
        target,
        topics: new Set(),
        deflateKey,
        plainKey: `${target.fragmentSize}`,
        compressedKey: `${target.fragmentSize}:${deflateKey}`,
      };
      this.#subscribers.set(connection, subscriber);
      const leave = () => this.#leaveAll(connection);
      connection.closed.then(leave, leave);
    }
    let state = this.#topics.get(topic);
    if (state === undefined) {
      state = { name: topic, subscribers: new Set(), remote: undefined };
      this.#topics.set(topic, state);
    }
    if (this.#backplane && state.remote === undefined) {
      const remote = this.#backplane.subscribe(
        topic,
        (bytes, id) => this.#onRemote(topic, bytes, id),
      );
      state.remote = remote;
      // Failed (Redis unreachable): forgotten, so that the topic's next
      // subscribe() asks again.
      const failed = state;
      remote.catch((error) => {
        if (failed.remote === remote) failed.remote = undefined;
        this.#onError(error);
      });
    }
    let held: { id: string; bytes: Uint8Array }[] | undefined;
    if (since !== undefined && !subscriber.topics.has(topic)) {
      // Live messages are held until the history is sent: none is lost
      // between the two, and none is sent twice (by id).
      (subscriber.replaying ??= new Map()).set(topic, held = []);
    }
    state.subscribers.add(subscriber);
    subscriber.topics.add(topic);
    let ready = state.remote ? state.remote.then(ignore) : Promise.resolve();
    if (held !== undefined) {
      const resumed = subscriber;
      const frames = held;
      ready = ready.then(() => this.#replay(resumed, topic, since!, frames));
    }
    // The caller may not wait for it: its rejection is reported to onError.
    ready.catch(ignore);
    return ready;
  }

  /**
   * Unsubscribes a connection from a topic.
   *
   * @param connection The connection.
   * @param topic The topic.
   * @returns Whether it was subscribed.
   */
  unsubscribe(connection: WebSocketConnection, topic: string): boolean {
    const subscriber = this.#subscribers.get(connection);
    if (!subscriber?.topics.delete(topic)) return false;
    this.#leave(subscriber, topic);
    if (subscriber.topics.size === 0) this.#subscribers.delete(connection);
    return true;
  }

  /**
   * The connections of this process subscribed to a topic.
   *
   * @param topic The topic.
   * @returns The count.
   */
  subscribers(topic: string): number {
    return this.#topics.get(topic)?.subscribers.size ?? 0;
  }

  /**
   * Publishes a message to every subscriber of a topic: a string as text,
   * an `ArrayBuffer` or a view as binary (copied at once: the caller's
   * buffer is free when this returns). It is framed once, and compressed
   * once per set of deflate settings its subscribers share.
   *
   * @param topic The topic.
   * @param message The message.
   * @param options `except`: a connection that does not get it.
   * @returns Resolves once the message is queued on every local
   * subscriber's connection, or, with a backplane, once the backplane has
   * taken it (it is delivered when it comes back).
   * @throws {TypeError} For a message that is not a string, an
   * `ArrayBuffer` or a view, or once closed.
   * @throws {RangeError} For an empty or too long topic.
   */
  publish(
    topic: string,
    message: MessageData,
    options: PublishOptions = {},
  ): Promise<void> {
    checkTopic("publish", topic);
    if (this.#closed) {
      throw new TypeError("Cannot publish message: the topics are closed");
    }
    let opcode: Opcode;
    let payload: Uint8Array;
    if (typeof message === "string") {
      opcode = Opcode.Text;
      payload = textEncoder.encode(message);
    } else if (message instanceof ArrayBuffer) {
      opcode = Opcode.Binary;
      payload = new Uint8Array(message.slice(0));
    } else if (ArrayBuffer.isView(message)) {
      opcode = Opcode.Binary;
      payload = new Uint8Array(
        message.buffer.slice(
          message.byteOffset,
          message.byteOffset + message.byteLength,
        ),
      );
    } else {
      throw new TypeError(
        `Cannot publish message: expected a string, an ArrayBuffer or a view, not ${
          message === null ? "null" : typeof message
        }`,
      );
    }
    const except = options.except
      ? this.#subscribers.get(options.except)?.id ?? 0
      : 0;
    if (this.#backplane) {
      const envelope = new Uint8Array(ENVELOPE_HEADER + payload.length);
      envelope[0] = ENVELOPE_VERSION;
      envelope[1] = opcode;
      envelope.set(this.#origin, 2);
      new DataView(envelope.buffer).setUint32(2 + ORIGIN_BYTES, except);
      envelope.set(payload, ENVELOPE_HEADER);
      return this.#backplane.publish(topic, envelope);
    }
    return this.#run(() => this.#deliver(topic, opcode, payload, except))
      .then(ignore);
  }

  /**
   * Stops: ends the backplane's subscriptions and forgets every subscriber
   * (their connections stay open). Publishing after it throws.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of this.#subscribers.values()) {
      for (const wake of subscriber.pauses) wake();
    }
    for (const state of this.#topics.values()) {
      state.remote?.then((unsubscribe) => unsubscribe(), ignore);
    }
    this.#topics.clear();
    this.#subscribers.clear();
    for (const deflater of this.#deflaters.values()) deflater.close();
    this.#deflaters.clear();
  }

  #onRemote(topic: string, envelope: Uint8Array, id?: string): void {
    if (this.#closed || !this.#isEnvelope(topic, envelope)) return;
    let mine = true;
    for (let i = 0; i < ORIGIN_BYTES; i++) {
      if (envelope[2 + i] !== this.#origin[i]) {
        mine = false;
        break;
      }
    }
    const except = mine
      ? new DataView(envelope.buffer, envelope.byteOffset).getUint32(
        2 + ORIGIN_BYTES,
      )
      : 0;
    const [opcode, payload] = this.#stamped(topic, envelope, id);
    this.#run(() => this.#deliver(topic, opcode, payload, except, id))
      .catch(this.#onError);
  }

  /**
   * Whether a backplane's message (live or from the history) is an envelope
   * of this version with a data opcode; else it is reported, and not sent:
   * another writer of the channel or stream, or a later version.
   */
  #isEnvelope(topic: string, envelope: Uint8Array): boolean {
    if (
      envelope.length >= ENVELOPE_HEADER && envelope[0] === ENVELOPE_VERSION &&
      (envelope[1] === Opcode.Text || envelope[1] === Opcode.Binary)
    ) {
      return true;
    }
    this.#onError(
      new TypeError(
        `Cannot deliver message: the backplane's message on "${topic}" is not a topics envelope`,
      ),
    );
    return false;
  }

  /** A backplane message's opcode and payload, stamped when it has an id. */
  #stamped(
    topic: string,
    envelope: Uint8Array,
    id: string | undefined,
  ): [Opcode, Uint8Array] {
    const opcode = envelope[1] as Opcode;
    const payload = envelope.subarray(ENVELOPE_HEADER);
    if (id === undefined || this.#stamp === undefined) return [opcode, payload];
    const stamped = this.#stamp(
      opcode === Opcode.Text ? textDecoder.decode(payload) : payload.slice(),
      { topic, id },
    );
    if (typeof stamped === "string") {
      return [Opcode.Text, textEncoder.encode(stamped)];
    }
    return [
      Opcode.Binary,
      stamped instanceof ArrayBuffer ? new Uint8Array(stamped) : new Uint8Array(
        stamped.buffer,
        stamped.byteOffset,
        stamped.byteLength,
      ),
    ];
  }

  /**
   * Sends a resuming subscriber what it missed from the backplane's
   * history, then the live frames held meanwhile that came after it; each
   * frame once its queue has room (maxBufferedAmount), as a live one would
   * be, so that a long history waits in the backplane, not in memory.
   */
  async #replay(
    subscriber: Subscriber,
    topic: string,
    since: string,
    held: { id: string; bytes: Uint8Array }[],
  ): Promise<void> {
    const target = subscriber.target;
    // Still this replay's: not closed, unsubscribed or subscribed again.
    const current = () =>
      !this.#closed && subscriber.replaying?.get(topic) === held;
    let last = since;
    const send = async (id: string, bytes: Uint8Array): Promise<boolean> => {
      await this.#room(subscriber, bytes.length, current);
      if (!current()) return false;
      if (!target.pushEncoded(bytes)) {
        // Closing: RFC 6455 §5.5.1 allows no data after our close frame.
        this.#leaveAll(subscriber.connection);
        return false;
      }
      this.#stats.delivered++;
      last = id;
      return true;
    };
    let entries: { id: string; bytes: Uint8Array }[];
    try {
      entries = await this.#backplane!.history!(topic, since, this.#maxReplay);
    } catch (error) {
      // What it missed is unknown: the held live frames would go after a
      // gap. The client is closed instead (1011, RFC 6455 §7.4.1), to
      // resume again from the same id; subscribe() rejects with the error.
      if (current()) {
        this.#leaveAll(subscriber.connection);
        subscriber.connection.close({
          closeCode: RESUME_FAILED_CODE,
          reason: "Cannot resume: the history is unavailable",
        });
      }
      throw error;
    }
    for (const entry of entries) {
      if (!idAfter(entry.id, last)) continue;
      const envelope = entry.bytes;
      if (!this.#isEnvelope(topic, envelope)) continue;
      const [opcode, payload] = this.#stamped(topic, envelope, entry.id);
      this.#stats.encoded++;
      if (!await send(entry.id, encodeShared(opcode, payload, false))) break;
    }
    // Frames keep coming while these are sent: all of them go, then the
    // live feed takes over, in the same turn.
    for (let frame; current() && (frame = held.shift());) {
      if (idAfter(frame.id, last) && !await send(frame.id, frame.bytes)) {
        break;
      }
    }
    if (current()) {
      subscriber.replaying!.delete(topic);
      (subscriber.resumedAt ??= new Map()).set(topic, last);
    }
  }

  /**
   * Waits until the subscriber's queue takes `size` more bytes within the
   * bound (an empty queue takes any), or `going()` is false. A peer that
   * stops reading is ended by its connection's `sendTimeout`, which ends
   * the wait.
   */
  async #room(
    subscriber: Subscriber,
    size: number,
    going: () => boolean,
  ): Promise<void> {
    while (going()) {
      const buffered = subscriber.target.bufferedAmount();
      if (buffered === 0 || buffered + size <= this.#maxBuffered) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          subscriber.pauses.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, REPLAY_POLL);
        subscriber.pauses.add(wake);
      });
    }
  }

  /** Runs deliveries in order: at once while none is compressing. */
  #run(step: () => number | Promise<number>): Promise<number> {
    if (this.#busy === undefined) {
      const result = step();
      return typeof result === "number"
        ? Promise.resolve(result)
        : this.#track(result);
    }
    return this.#track(this.#busy.then(step));
  }

  #track(result: Promise<number>): Promise<number> {
    this.#busyCount++;
    this.#busy = result.then(ignore, ignore).finally(() => {
      if (--this.#busyCount === 0) this.#busy = undefined;
    });
    return result;
  }

  /**
   * Frames (and compresses) a message once per distinct setting among the
   * topic's subscribers, then queues the same bytes on each.
   */
  #deliver(
    topic: string,
    opcode: Opcode,
    payload: Uint8Array,
    except: number,
    id?: string,
  ): number | Promise<number> {
    const state = this.#topics.get(topic);
    if (state === undefined || this.#closed) return 0;
    // Compressed once per deflate setting, when the subscribers that have
    // it reset their context per message (else they get it uncompressed,
    // which RFC 7692 allows for any message).
    let compressing: Map<string, Promise<Uint8Array>> | undefined;
    for (const subscriber of state.subscribers) {
      const deflate = subscriber.target.deflate;
      if (deflate === undefined || payload.length < deflate.threshold) {
        continue;
      }
      const key = subscriber.deflateKey!;
      if (compressing?.has(key)) continue;
      let deflater = this.#deflaters.get(key);
      if (deflater === undefined) {
        deflater = new Deflater(
          deflate.windowBits,
          true,
          deflate.level,
          deflate.memLevel,
        );
        this.#deflaters.set(key, deflater);
      }
      this.#stats.compressed++;
      (compressing ??= new Map()).set(key, deflater.deflate(payload));
    }
    if (compressing === undefined) {
      return this.#fanOut(state, opcode, payload, except, undefined, id);
    }
    const keys = [...compressing.keys()];
    return Promise.all(compressing.values()).then((outputs) => {
      const compressed = new Map<string, Uint8Array>();
      keys.forEach((key, i) => compressed.set(key, outputs[i]!));
      return this.#fanOut(state, opcode, payload, except, compressed, id);
    });
  }

  #fanOut(
    state: TopicState,
    opcode: Opcode,
    payload: Uint8Array,
    except: number,
    compressed: Map<string, Uint8Array> | undefined,
    id?: string,
  ): number {
    if (this.#closed) return 0;
    // Frames by fragment size, plain or compressed, made on first use.
    const frames = new Map<string, Uint8Array>();
    const max = this.#maxBuffered;
    let delivered = 0;
    for (const subscriber of state.subscribers) {
      if (subscriber.id === except) continue;
      const compressedPayload = subscriber.deflateKey === undefined
        ? undefined
        : compressed?.get(subscriber.deflateKey);
      const key = compressedPayload
        ? subscriber.compressedKey
        : subscriber.plainKey;
      let bytes = frames.get(key);
      if (bytes === undefined) {
        this.#stats.encoded++;
        const fragmentSize = subscriber.target.fragmentSize;
        bytes = compressedPayload
          ? encodeShared(opcode, compressedPayload, true, fragmentSize)
          : encodeShared(opcode, payload, false, fragmentSize);
        frames.set(key, bytes);
      }
      const resumedAt = subscriber.resumedAt?.get(state.name);
      if (resumedAt !== undefined && id !== undefined) {
        // Sent from the history already (see Subscriber.resumedAt); from the
        // first newer one on, the live feed's order holds.
        if (!idAfter(id, resumedAt)) continue;
        subscriber.resumedAt!.delete(state.name);
      }
      const held = subscriber.replaying?.get(state.name);
      if (held) {
        // Resuming: sent after the history (see #replay), if it is newer.
        // At most maxReplay are held: past it the subscriber is slow (closed,
        // or this message skipped).
        if (id === undefined) continue;
        if (held.length >= this.#maxReplay) this.#slow(subscriber);
        else held.push({ id, bytes });
        continue;
      }
      const buffered = subscriber.target.bufferedAmount();
      if (buffered > 0 && buffered + bytes.length > max) {
        this.#slow(subscriber);
        continue;
      }
      if (subscriber.target.pushEncoded(bytes)) {
        delivered++;
      } else {
        // Closing: RFC 6455 §5.5.1 allows no data after our close frame.
        this.#leaveAll(subscriber.connection);
      }
    }
    this.#stats.delivered += delivered;
    return delivered;
  }

  #slow(subscriber: Subscriber): void {
    if (this.#policy === "drop") {
      this.#stats.dropped++;
      return;
    }
    this.#stats.closed++;
    this.#leaveAll(subscriber.connection);
    subscriber.connection.close({
      closeCode: this.#slowCloseCode,
      reason: "Cannot keep up: too many messages queued",
    });
  }

  #leaveAll(connection: WebSocketConnection): void {
    const subscriber = this.#subscribers.get(connection);
    if (subscriber === undefined) return;
    this.#subscribers.delete(connection);
    for (const topic of subscriber.topics) this.#leave(subscriber, topic);
    subscriber.topics.clear();
  }

  #leave(subscriber: Subscriber, topic: string): void {
    subscriber.replaying?.delete(topic);
    for (const wake of subscriber.pauses) wake();
    subscriber.resumedAt?.delete(topic);
    const state = this.#topics.get(topic);
    if (state === undefined) return;
    state.subscribers.delete(subscriber);
    if (state.subscribers.size === 0) {
      this.#topics.delete(topic);
      state.remote?.then((unsubscribe) => unsubscribe(), ignore);
    }
  }
}

function checkTopic(action: string, topic: string): void {
  if (typeof topic !== "string") {
    throw new TypeError(
      `Cannot ${action}: the topic must be a string, not ${typeof topic}`,
    );
  }
  if (topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new RangeError(
      `Cannot ${action}: the topic must have 1 to ${MAX_TOPIC_LENGTH} characters, not ${topic.length}`,
    );
  }
}
