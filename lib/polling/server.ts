/**
 * {@linkcode PollingServer}: long and short polling as a fetch handler,
 * each session a connection with the shape of a WebSocket's.
 *
 * @module
 */

import { CometSession } from "../_comet_session.ts";
import { checkOptions, type Rules } from "../_options.ts";
import { readBody } from "../_request_body.ts";
import { WebSocketError } from "../errors.ts";
import type { MessageData } from "../codec/message.ts";
import type { WebSocketCloseInfo } from "../net/connection_options.ts";
import {
  decodeBatch,
  encodeBatch,
  type PollingMessage,
  toPollingMessage,
} from "./wire.ts";

/** The default longest hold of a poll: 25 s (under most proxies' 30 s). */
export const DEFAULT_HOLD_TIMEOUT = 25_000;
/** The default time a session lives with no request in flight: 30 s. */
export const DEFAULT_SESSION_TIMEOUT = 30_000;
/** The default bound of each direction's queue, in messages. */
export const DEFAULT_MAX_QUEUED_MESSAGES = 1024;
/** The default bound of a POST body: 1 MiB. */
export const DEFAULT_MAX_BODY_SIZE = 1024 * 1024;
/** The default bound on live sessions. */
export const DEFAULT_MAX_SESSIONS = 10_000;

/** The options of {@linkcode PollingServer}. */
export interface PollingServerOptions {
  /**
   * The longest a `GET` is held waiting for a message, in milliseconds;
   * a client's `wait` is capped at it.
   *
   * @default {25000}
   */
  holdTimeout?: number;
  /**
   * How long a session lives with no request in flight, in milliseconds;
   * past it the session fails with `ERR_SESSION_TIMEOUT`.
   *
   * @default {30000}
   */
  sessionTimeout?: number;
  /**
   * The bound of each direction's queue, in messages. Outbound, the
   * messages not yet acknowledged: a write waits while it is full
   * (backpressure; nothing is dropped, and a client that stops polling
   * ends with the session timeout). Inbound, the messages the application
   * has not read: a `POST` takes what fits and acknowledges only that, and
   * the client sends the rest again later.
   *
   * @default {1024}
   */
  maxQueuedMessages?: number;
  /**
   * The largest `POST` body, in bytes; a larger one is refused with 413.
   *
   * @default {1048576}
   */
  maxBodySize?: number;
  /**
   * The most sessions at once; opening one more is refused with 503.
   *
   * @default {10000}
   */
  maxSessions?: number;
}

// Sessions that ended cleanly and still answer a retried request with
// their close; the oldest is forgotten first.
const MAX_TOMBSTONES = 1024;

const OPTIONS: Rules = [
  ["holdTimeout", { min: 0, max: 2 ** 31 - 1, unit: "milliseconds" }],
  ["sessionTimeout", { min: 1, max: 2 ** 31 - 1, unit: "milliseconds" }],
  ["maxQueuedMessages", { min: 1 }],
  ["maxBodySize", { min: 1 }],
  ["maxSessions", { min: 1 }],
];

/**
 * One polling session, seen from the server: the shape of a WebSocket
 * connection (`readable`, `writable`, `closed`, `close()`).
 */
export interface PollingConnection {
  /** The session id the client sends with each request. */
  readonly id: string;
  /** The client's messages, in order, each once. */
  readonly readable: ReadableStream<PollingMessage>;
  /**
   * Messages to the client: a string as text, an `ArrayBuffer` or a view
   * as binary (copied). A write waits while `maxQueuedMessages` are
   * unacknowledged. Closing it closes the session.
   */
  readonly writable: WritableStream<MessageData>;
  /**
   * Resolves with `{ closeCode: 1000, reason: "" }` when the session ends
   * cleanly (either side closed it); rejects with `ERR_SESSION_TIMEOUT`.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /**
   * Ends the session: no more writes; what is queued is still delivered,
   * and the client's next poll after it has acknowledged everything tells
   * it the session is closed. Calling it again does nothing.
   */
  close(): void;
}

const JSON_HEADERS = {
  "content-type": "application/json",
  "cache-control": "no-store",
};

function json(body: string, status = 200): Response {
  return new Response(body, { status, headers: JSON_HEADERS });
}

function problem(status: number, error: string): Response {
  return json(JSON.stringify({ error }), status);
}

function integerParam(url: URL, name: string): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null || !/^[0-9]{1,15}$/.test(text)) return undefined;
  return Number(text);
}

// A polling session is the Comet session engine (`../_comet_session.ts`)
// with these knobs: a write waits, unqueued, while `maxQueuedMessages`
// are unacknowledged, with no timeout (`admit: "unacknowledged"`); every
// unacknowledged message is kept and answered again on each poll (no
// replay bound); the inbound queue counts messages; no waiting on a close:
// our close ends the session once the client has acknowledged everything
// before it, and the client's (a DELETE) at once, its answer carrying what
// the client had not acknowledged. Sequence numbers on the wire start at 1; the engine's
// inbound seq at 0, so a batch's `seq - 1` goes in and the engine's next
// expected seq is the wire's last one taken, the `ack`. The application
// holds `connection`, never the engine: its methods (acknowledge, hold,
// sendAll, …) are the requests', and would break its rules from outside.
class Session extends CometSession<PollingMessage> {
  /** What the application holds: the documented shape, nothing more. */
  readonly connection: PollingConnection;
  #server: PollingServer;
  #sessionTimeout: number;

  constructor(
    id: string,
    server: PollingServer,
    options: Required<PollingServerOptions>,
  ) {
    super(id, {
      sessionTimeout: options.sessionTimeout,
      admit: "unacknowledged",
      maxOutbound: options.maxQueuedMessages,
      sendTimeout: Infinity,
      maxReplay: Infinity,
      maxInbound: options.maxQueuedMessages,
      closeTimeout: Infinity,
    }, () => 1);
    this.#server = server;
    this.#sessionTimeout = options.sessionTimeout;
    this.connection = {
      id,
      readable: this.readable,
      writable: this.writable,
      closed: this.closed,
      close: () => this.close(),
    };
  }

  override close(): void {
    if (this.closing) return;
    this.sendClose(1000, "");
    this.stopReading();
  }

  protected override encode(
    data: MessageData,
  ): { message: PollingMessage; size: number } {
    return { message: toPollingMessage("send", data), size: 1 };
  }

  // decodeBatch has made every value a message already.
  protected override decode(value: unknown): PollingMessage {
    return value as PollingMessage;
  }

  protected override sendError(ended: boolean): Error {
    return new TypeError(
      `Cannot send: the session is ${ended ? "closed" : "closing"}`,
    );
  }

  protected override idleError(): WebSocketError {
    return new WebSocketError(
      `Cannot keep polling session: no request came for ${this.#sessionTimeout} ms`,
      { code: "ERR_SESSION_TIMEOUT" },
    );
  }

  protected override readableCancelled(): void {
    this.stopReading();
  }

  protected override ended(error: WebSocketError | undefined): void {
    // A clean end leaves a tombstone: a retried poll whose answer (the
    // `closed: true`) was lost gets it again rather than a 404.
    this.#server._forget(this.id, error ? undefined : this.nextMessageId);
  }

  /** Runs one request of this session, with the session timer paused. */
  async request(run: () => Promise<Response>): Promise<Response> {
    this.hold();
    try {
      return await run();
    } finally {
      this.release();
    }
  }

  async answerPoll(ack: number, wait: number): Promise<Response> {
    this.acknowledge(ack);
    // A newer poll answers the one held before it: the client has given up
    // on that one. (A client that went away is not watched for: Deno warns
    // on request.signal listeners, and the hold ends by itself.)
    this.interrupt();
    if (this.unacknowledged === 0 && !this.closing && wait > 0) {
      await this.wait(wait);
    }
    if (this.isEnded) {
      return json(
        encodeBatch({ seq: this.nextMessageId, messages: [], closed: true }),
      );
    }
    // Every unacknowledged message, so that a response that was lost is
    // sent again; the client drops what it already has by sequence number.
    const { seq, messages } = this.#unacknowledged();
    const closed = this.closing && messages.length === 0;
    if (closed) this.closeReceived(1000, "");
    return json(encodeBatch({ seq, messages, closed }));
  }

  answerSend(text: string): Response {
    let batch;
    try {
      batch = decodeBatch(text);
    } catch (error) {
      return problem(400, (error as Error).message);
    }
    if (batch.seq - 1 > this.expectedSeq) {
      return problem(
        409,
        `expected sequence number ${this.expectedSeq + 1} or lower`,
      );
    }
    // After the end, what comes is acknowledged and dropped.
    if (this.isEnded) this.stopReading();
    return json(
      JSON.stringify({ ack: this.receive(batch.seq - 1, batch.messages) }),
    );
  }

  // The client's close, a handshake as a WebSocket's (RFC 6455 §1.4): the
  // client has every message up to `ack` (an older client sends none), and
  // the answer carries the rest the application wrote before this DELETE,
  // as a poll's batch with `closed: true`; writes from now on fail.
  answerEnd(ack: number | undefined): Response {
    if (ack !== undefined) this.acknowledge(ack);
    const batch = this.#unacknowledged();
    this.closeReceived(1000, "");
    return json(encodeBatch({ ...batch, closed: true }));
  }

  // Every unacknowledged message, now marked sent, and the seq of the first.
  #unacknowledged(): { seq: number; messages: PollingMessage[] } {
    const messages: PollingMessage[] = [];
    let seq = this.nextMessageId;
    for (const { item } of this.sendAll()) {
      if (!("i" in item)) continue;
      if (messages.length === 0) seq = item.i;
      messages.push(item.m);
    }
    return { seq, messages };
  }

  shutdown(): void {
    this.closeReceived(1000, "");
  }
}

/**
 * Long polling and short polling as one fetch handler: the Comet
 * transports for clients that can open neither a WebSocket nor an event
 * stream. Each session is a {@linkcode PollingConnection}, handed to
 * `onConnection`, with the shape of a WebSocket connection.
 *
 * The protocol (see `wire.ts` for the JSON):
 * - `POST` with no `session` parameter opens a session:
 *   `{"session": id, "sessionTimeout": ms, "maxBodySize": bytes}`; the
 *   client cuts its batches to `maxBodySize`, and one whose reader holds
 *   back its polls sends an empty batch more often than `sessionTimeout`.
 * - `GET ?session=<id>&ack=<n>&wait=<ms>` acknowledges every message up to
 *   sequence number `n` (they are dropped), then answers every message not
 *   acknowledged, at once if there is one, else after a message arrives or
 *   `min(wait, holdTimeout)` passes (`wait=0` is short polling). Since only
 *   acknowledged messages are dropped, a lost response is sent again on
 *   the next poll: nothing is lost, and the client drops what it already
 *   has by sequence number.
 * - `POST ?session=<id>` with a batch delivers the client's messages; those
 *   with a sequence number already taken are skipped (a resent POST), and
 *   the answer acknowledges the last taken.
 * - `DELETE ?session=<id>&ack=<n>` is the client's close, a handshake as a
 *   WebSocket's (RFC 6455 §1.4): it acknowledges up to `n` as a poll does,
 *   ends the session (the application's writes fail from then on) and
 *   answers, as a poll's batch with `closed: true`, every message the
 *   application wrote before it that the client has not acknowledged.
 * - An unknown session answers 404; one that ended cleanly (among the last
 *   1024) answers a GET with `closed: true` again, so that a lost close is
 *   not a failure.
 *
 * @example Serve polling and talk to it with the client
 * ```ts
 * import { connectPolling, PollingServer } from "@seed/websocket-streams/polling";
 * import { assertEquals } from "@std/assert";
 *
 * const polling = new PollingServer((connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {}); // echo
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, polling.fetch);
 * const client = await connectPolling(`http://127.0.0.1:${server.addr.port}/`);
 * const writer = client.writable.getWriter();
 * await writer.write("hello");
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * client.close();
 * await client.closed;
 * polling.close();
 * await server.shutdown();
 * ```
 */
export class PollingServer {
  /** The fetch handler: pass it to `Deno.serve` or call it from yours. */
  readonly fetch: (request: Request) => Promise<Response>;

  #sessions = new Map<string, Session>();
  // Sessions that ended cleanly, oldest first: id → next sequence number.
  #tombstones = new Map<string, number>();
  #options: Required<PollingServerOptions>;
  #onConnection: (connection: PollingConnection) => void;

  /**
   * Makes a polling server.
   *
   * @param onConnection Called with each new session.
   * @param options The hold and session timeouts and the bounds.
   * @throws {RangeError | TypeError} For an option out of range.
   */
  constructor(
    onConnection: (connection: PollingConnection) => void,
    options: PollingServerOptions = {},
  ) {
    checkOptions("create polling server", options, OPTIONS);
    if (typeof onConnection !== "function") {
      throw new TypeError(
        "Cannot create polling server: onConnection must be a function",
      );
    }
    this.#onConnection = onConnection;
    this.#options = {
      holdTimeout: options.holdTimeout ?? DEFAULT_HOLD_TIMEOUT,
      sessionTimeout: options.sessionTimeout ?? DEFAULT_SESSION_TIMEOUT,
      maxQueuedMessages: options.maxQueuedMessages ??
        DEFAULT_MAX_QUEUED_MESSAGES,
      maxBodySize: options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE,
      maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
    };
    this.fetch = (request) => this.#handle(request);
  }

  /**
   * The live sessions.
   *
   * @returns Their count.
   */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Ends every session at once (cleanly: their `closed` resolves) and
   * clears their timers; the server still opens new ones.
   */
  close(): void {
    for (const session of [...this.#sessions.values()]) session.shutdown();
  }

  /**
   * @internal A session that ended; `seq`, for a clean end, its next
   * sequence number, kept in a bounded tombstone.
   */
  _forget(id: string, seq?: number): void {
    this.#sessions.delete(id);
    if (seq === undefined) return;
    this.#tombstones.set(id, seq);
    if (this.#tombstones.size > MAX_TOMBSTONES) {
      this.#tombstones.delete(this.#tombstones.keys().next().value!);
    }
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const id = url.searchParams.get("session");
    if (id === null) {
      if (request.method !== "POST") {
        return problem(400, "a request needs a session, or POST to open one");
      }
      await request.body?.cancel();
      if (this.#sessions.size >= this.#options.maxSessions) {
        return problem(503, "too many sessions");
      }
      const session = new Session(crypto.randomUUID(), this, this.#options);
      this.#sessions.set(session.id, session);
      this.#onConnection(session.connection);
      // sessionTimeout: a client held back by its reader keeps the
      // session alive with requests that often; maxBodySize: the client
      // cuts its batches to fit.
      return json(
        JSON.stringify({
          session: session.id,
          sessionTimeout: this.#options.sessionTimeout,
          maxBodySize: this.#options.maxBodySize,
        }),
      );
    }
    const session = this.#sessions.get(id);
    if (!session) {
      await request.body?.cancel();
      const seq = this.#tombstones.get(id);
      if (seq !== undefined && request.method === "GET") {
        return json(encodeBatch({ seq, messages: [], closed: true }));
      }
      if (seq !== undefined && request.method === "DELETE") {
        return json(encodeBatch({ seq, messages: [], closed: true }));
      }
      return problem(404, "unknown session");
    }
    switch (request.method) {
      case "GET": {
        const ack = integerParam(url, "ack") ?? 0;
        const wait = Math.min(
          integerParam(url, "wait") ?? this.#options.holdTimeout,
          this.#options.holdTimeout,
        );
        return session.request(() => session.answerPoll(ack, wait));
      }
      case "POST":
        return session.request(async () => {
          const text = await readBody(request, this.#options.maxBodySize);
          if (text === undefined) {
            return problem(
              413,
              `a body is at most ${this.#options.maxBodySize} bytes`,
            );
          }
          return session.answerSend(text);
        });
      case "DELETE":
        await request.body?.cancel();
        return session.answerEnd(integerParam(url, "ack"));
      default:
        await request.body?.cancel();
        return problem(405, `method ${request.method} not allowed`);
    }
  }
}
