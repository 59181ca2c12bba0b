/**
 * {@linkcode connectPolling}: the client of {@linkcode PollingServer}, long
 * polling or short polling, with the shape of a WebSocket connection.
 * Plain ESM with no Deno API, so that it runs in a browser.
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { WebSocketError } from "../errors.ts";
import type { MessageData } from "../codec/message.ts";
import type { WebSocketCloseInfo } from "../net/connection_options.ts";
import { reconnectDelay, sleep } from "../sse/_backoff.ts";
import { before, deadline } from "../_deadline.ts";
import {
  decodeBatch,
  encodeBatch,
  type PollingBatch,
  type PollingMessage,
  toPollingMessage,
} from "./wire.ts";
import { DEFAULT_MAX_BODY_SIZE } from "./server.ts";

/** The options of {@linkcode connectPolling}. */
export interface PollingClientOptions {
  /**
   * `0` for long polling (each poll is held by the server until a message
   * comes or `hold` passes, and the next goes out at once); more for short
   * polling: each poll answers at once, and the next goes out this many
   * milliseconds later.
   *
   * @default {0}
   */
  interval?: number;
  /**
   * How long a long poll asks the server to hold it, in milliseconds (the
   * server caps it at its `holdTimeout`).
   *
   * @default {25000}
   */
  hold?: number;
  /**
   * How long a request may take beyond its hold before it is abandoned and
   * sent again, in milliseconds.
   *
   * @default {30000}
   */
  requestTimeout?: number;
  /**
   * The wait after a failed request, doubled for each failure in a row up
   * to `maxRetryDelay`, plus up to 25% jitter; also the wait before sending
   * again what a full server did not take.
   *
   * @default {1000}
   */
  retry?: number;
  /**
   * The cap of that backoff, in milliseconds.
   *
   * @default {30000}
   */
  maxRetryDelay?: number;
  /**
   * Requests in a row that may fail before the connection fails with
   * `ERR_SESSION_CLOSED`.
   *
   * @default {10}
   */
  maxRetries?: number;
  /**
   * The bound of the messages written and not yet acknowledged; a write
   * waits while it is full.
   *
   * @default {1024}
   */
  maxQueuedMessages?: number;
  /**
   * The largest POST body the client sends, in bytes of JSON: a batch of
   * messages is cut to fit; a single message that cannot fit fails its
   * write with `ERR_MESSAGE_TOO_LARGE`. The server's `maxBodySize`, which
   * it sends when the session opens, caps it.
   *
   * @default {the server's maxBodySize (1048576 if it does not say)}
   */
  maxBodySize?: number;
  /**
   * More request headers.
   *
   * @default {undefined}
   */
  headers?: HeadersInit;
  /**
   * Aborting it fails the connection with the signal's reason.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Milliseconds `close()` waits for the server to take what was written
   * before it (a server whose application reads nothing takes nothing),
   * then for the server's answer to the close, which carries the messages
   * the client has not had yet. Past it the session is ended anyway, and
   * `closed` rejects with `ERR_CLOSE_TIMEOUT`: what was not taken, or not
   * answered, is lost.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * The `fetch` to use.
   *
   * @default {globalThis.fetch}
   */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

const DELAY = { min: 0, max: 2 ** 31 - 1, unit: "milliseconds" } as const;
const OPTIONS: Rules = [
  ["interval", DELAY],
  ["hold", DELAY],
  ["requestTimeout", { ...DELAY, min: 1 }],
  ["retry", DELAY],
  ["maxRetryDelay", DELAY],
  ["maxRetries", { min: 0, infinity: true }],
  ["maxQueuedMessages", { min: 1 }],
  ["maxBodySize", { min: 64 }],
  ["closeTimeout", { ...DELAY, min: 1 }],
];

// `{"seq":<up to 16 digits>,"messages":[]}`: a body's bytes besides its
// messages'.
const ENVELOPE = encodeBatch({ seq: 1, messages: [] }).length + 15;
const utf8 = new TextEncoder();

// The bytes a message adds to a body: its JSON and a comma.
function bodyBytes(message: PollingMessage): number {
  const json = encodeBatch({ seq: 1, messages: [message] });
  return utf8.encode(json).length - ENVELOPE + 15 + 1;
}

class RequestFailed extends Error {}

/**
 * A polling session, seen from the client: `readable`, `writable`,
 * `closed` and `close()`, as a WebSocket connection has them. Made by
 * {@linkcode connectPolling}.
 */
export class PollingClientConnection {
  /** The server's messages, in order, each once. */
  readonly readable: ReadableStream<PollingMessage>;
  /**
   * Messages to the server: a string as text, an `ArrayBuffer` or a view as
   * binary (copied). A write resolves once the message is queued; it waits
   * while `maxQueuedMessages` are unacknowledged.
   */
  readonly writable: WritableStream<MessageData>;
  /**
   * Resolves with `{ closeCode: 1000, reason: "" }` when the session ends
   * cleanly; rejects with a {@linkcode WebSocketError} (`ERR_SESSION_CLOSED`)
   * or the signal's reason.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /** The session id. */
  readonly id: string;

  #url: string;
  #options: PollingClientOptions;
  #fetch: (input: string, init: RequestInit) => Promise<Response>;
  #max: number;
  #lastSeen = 0;
  #out: { seq: number; message: PollingMessage; bytes: number }[] = [];
  #nextOut = 1;
  // The server's sessionTimeout, as it said when the session opened.
  #sessionTimeout: number;
  // The largest body the server takes.
  #maxBody: number;
  #room: (() => void)[] = [];
  #sending = false;
  #flushed: (() => void)[] = [];
  #reader!: ReadableStreamDefaultController<PollingMessage>;
  #pulled: (() => void) | undefined;
  #abort = new AbortController();
  #done = false;
  #closing = false;
  // Our DELETE went out: its answer ends the session.
  #closeSent = false;
  #resolveClosed!: (info: WebSocketCloseInfo) => void;
  #rejectClosed!: (error: unknown) => void;
  #onAbort: (() => void) | undefined;

  /** @internal Made by {@linkcode connectPolling}. */
  constructor(
    url: string,
    id: string,
    options: PollingClientOptions,
    server: { sessionTimeout?: number; maxBodySize?: number } = {},
  ) {
    this.#url = url;
    this.#sessionTimeout = server.sessionTimeout ?? 30_000;
    // The option, but never past what the server said it takes.
    this.#maxBody = Math.min(
      options.maxBodySize ?? Infinity,
      server.maxBodySize ?? DEFAULT_MAX_BODY_SIZE,
    );
    this.id = id;
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#max = options.maxQueuedMessages ?? 1024;
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(() => {});
    this.readable = new ReadableStream<PollingMessage>({
      start: (controller) => {
        this.#reader = controller;
      },
      pull: () => {
        this.#pulled?.();
        this.#pulled = undefined;
      },
      cancel: () => this.close(),
    }, new CountQueuingStrategy({ highWaterMark: this.#max }));
    this.writable = new WritableStream<MessageData>({
      write: (data) => this.#write(data),
      close: () => this.close(),
      abort: () => this.close(),
    });
    const signal = options.signal;
    if (signal) {
      this.#onAbort = () => this.#fail(signal.reason);
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    this.#pollLoop();
  }

  /**
   * Ends the session, as a WebSocket's closing handshake does: stops
   * polling, sends what is still unacknowledged (as long as requests
   * succeed), then tells the server, whose answer carries every message
   * its application wrote before it heard the close; those are enqueued
   * in `readable` (in order, each once, read or not), which then ends, and
   * `closed` resolves. `closeTimeout` bounds it all. Calling it again does
   * nothing.
   */
  close(): void {
    if (this.#closing || this.#done) return;
    this.#closing = true;
    this.#closeAsync();
  }

  async #closeAsync(): Promise<void> {
    // A server whose application reads nothing takes nothing, and would
    // hold this wait forever: closeTimeout bounds it, as it bounds a
    // WebSocket's closing handshake.
    const limit = this.#options.closeTimeout ?? 5000;
    // One deadline for both steps: delivering the outbox, then the
    // handshake.
    const time = deadline(limit);
    let lost: WebSocketError | undefined;
    try {
      if (this.#out.length > 0) {
        const flushed = new Promise<void>((resolve) =>
          this.#flushed.push(resolve)
        );
        if (!(await before(flushed, time.signal))) {
          lost = new WebSocketError(
            `Cannot close cleanly: the server had not taken the last ${this.#out.length} messages written before close() after ${limit} ms (closeTimeout)`,
            { code: "ERR_CLOSE_TIMEOUT" },
          );
        }
      }
      if (this.#done) return;
      if (lost) {
        // Ended anyway, so that the server does not wait out its
        // sessionTimeout.
        const response = await this.#request("DELETE", "", undefined, 0);
        await response.body?.cancel();
      } else {
        lost = await this.#closeHandshake(time.signal);
      }
    } catch (error) {
      // The server times the session out in the end. But the answer to our
      // close carried what the server had not delivered yet, and the
      // session is gone: lost with it, those messages make this no clean
      // end (a 404, a session the server had ended already, stays one).
      if (!lost && error instanceof RequestFailed) {
        lost = new WebSocketError(
          "Cannot close cleanly: the answer to the close was lost, and what the server had not yet delivered with it",
          { code: "ERR_ABNORMAL_CLOSURE", cause: error },
        );
      }
    } finally {
      time.clear();
    }
    this.#end(lost);
  }

  // The close as a WebSocket's is (RFC 6455 §1.4, §7.1.2): what the server
  // wrote before it heard the close still arrives. The DELETE acknowledges
  // what we have, and its answer is a batch of the rest with `closed:
  // true` (an older server answers `{"closed": true}` alone). The close's
  // deadline (`expired`, closeTimeout from close()) bounds it; past it,
  // ERR_CLOSE_TIMEOUT.
  async #closeHandshake(
    expired: AbortSignal,
  ): Promise<WebSocketError | undefined> {
    const limit = this.#options.closeTimeout ?? 5000;
    this.#closeSent = true;
    try {
      const response = await this.#request(
        "DELETE",
        `&ack=${this.#lastSeen}`,
        undefined,
        0,
        expired,
      );
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        if (expired.aborted) throw expired.reason;
        // A body cut short: the answer is lost.
        throw new RequestFailed("close answer cut short", { cause: error });
      }
      let batch;
      try {
        batch = decodeBatch(text);
      } catch (error) {
        // An older server's `{"closed": true}`; anything else is a lost
        // answer.
        if (isOlderCloseAnswer(text)) return undefined;
        throw new RequestFailed("bad close answer", { cause: error });
      }
      this.#enqueue(batch);
      return undefined;
    } catch (error) {
      if (!expired.aborted) throw error;
      return new WebSocketError(
        `Cannot close cleanly: the server did not answer the close in ${limit} ms (closeTimeout)`,
        { code: "ERR_CLOSE_TIMEOUT" },
      );
    }
  }

  // Enqueues the messages of a batch that were not seen yet, in order.
  #enqueue(batch: PollingBatch): void {
    for (let i = 0; i < batch.messages.length; i++) {
      const seq = batch.seq + i;
      if (seq <= this.#lastSeen) continue; // sent again: had it
      this.#lastSeen = seq;
      this.#reader.enqueue(batch.messages[i]!);
    }
  }

  #end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#onAbort) {
      this.#options.signal?.removeEventListener("abort", this.#onAbort);
    }
    this.#abort.abort();
    this.#pulled?.();
    for (const resolve of this.#room.splice(0)) resolve();
    for (const resolve of this.#flushed.splice(0)) resolve();
    try {
      if (error === undefined) this.#reader.close();
      else this.#reader.error(error);
    } catch {
      // Cancelled already.
    }
    if (error === undefined) {
      this.#resolveClosed({ closeCode: 1000, reason: "" });
    } else this.#rejectClosed(error);
  }

  #fail(error: unknown): void {
    this.#end(error);
  }

  async #write(data: MessageData): Promise<void> {
    const message = toPollingMessage("send", data);
    while (this.#out.length >= this.#max && !this.#done) {
      await new Promise<void>((resolve) => this.#room.push(resolve));
    }
    if (this.#done || this.#closing) {
      throw new TypeError(
        `Cannot send: the session is ${this.#done ? "closed" : "closing"}`,
      );
    }
    const bytes = bodyBytes(message);
    const limit = this.#maxBody;
    if (ENVELOPE + bytes > limit) {
      throw new WebSocketError(
        `Cannot send: the message takes ${bytes} bytes of JSON, and a body holds at most ${limit} (maxBodySize)`,
        { code: "ERR_MESSAGE_TOO_LARGE", closeCode: 1009 },
      );
    }
    this.#out.push({ seq: this.#nextOut++, message, bytes });
    if (!this.#sending) this.#sendLoop();
  }

  // One request, abandoned after its hold plus requestTimeout; a network
  // error or a timeout throws RequestFailed, a 404 fails the connection.
  async #request(
    method: string,
    query: string,
    body: string | undefined,
    hold: number,
    signal?: AbortSignal,
  ): Promise<Response> {
    const attempt = new AbortController();
    const timer = setTimeout(
      () => attempt.abort(),
      hold + (this.#options.requestTimeout ?? 30_000),
    );
    try {
      const separator = this.#url.includes("?") ? "&" : "?";
      const response = await this.#fetch(
        `${this.#url}${separator}session=${
          encodeURIComponent(this.id)
        }${query}`,
        {
          method,
          body,
          headers: this.#options.headers,
          cache: "no-store",
          signal: AbortSignal.any([
            this.#abort.signal,
            attempt.signal,
            ...(signal ? [signal] : []),
          ]),
        },
      );
      if (response.status === 404) {
        await response.body?.cancel();
        throw new WebSocketError(
          "Cannot poll: the server does not know the session (it timed out or ended)",
          { code: "ERR_SESSION_CLOSED" },
        );
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new RequestFailed(`status ${response.status}`);
      }
      return response;
    } catch (error) {
      if (error instanceof WebSocketError) throw error;
      throw new RequestFailed("request failed", { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  // Runs `step` until it succeeds, with backoff between failures; a
  // WebSocketError (or the end) stops it.
  async #retrying<T>(step: () => Promise<T>): Promise<T | undefined> {
    let failures = 0;
    while (!this.#done) {
      try {
        return await step();
      } catch (error) {
        if (this.#done) return undefined;
        if (!(error instanceof RequestFailed)) throw error;
        if (++failures > (this.#options.maxRetries ?? 10)) {
          throw new WebSocketError(
            `Cannot poll: ${failures} requests in a row failed`,
            { code: "ERR_SESSION_CLOSED", cause: error },
          );
        }
        await sleep(
          reconnectDelay(
            this.#options.retry ?? 1000,
            failures - 1,
            this.#options.maxRetryDelay ?? 30_000,
            Math.random(),
          ),
          this.#abort.signal,
        ).catch(() => {});
      }
    }
    return undefined;
  }

  // Polling waits for the reader, but no request for sessionTimeout would
  // end the session: every third of it, an empty POST (it pauses the
  // session's timer and takes nothing) says the client is still here.
  async #waitForPullAlive(): Promise<void> {
    let pulled = false;
    const pull = new Promise<void>((resolve) => this.#pulled = resolve)
      .then(() => pulled = true);
    while (!pulled && !this.#done && !this.#closing) {
      const tick = new AbortController();
      await Promise.race([
        pull,
        sleep(this.#sessionTimeout / 3, tick.signal).catch(() => {}),
      ]);
      tick.abort();
      if (pulled || this.#done || this.#closing) return;
      const seq = this.#out[0]?.seq ?? this.#nextOut;
      try {
        const response = await this.#request(
          "POST",
          "",
          encodeBatch({ seq, messages: [] }),
          0,
        );
        await response.body?.cancel();
      } catch (error) {
        if (!(error instanceof RequestFailed)) throw error;
        // A lost keep-alive: the next one, or the next poll, tries again.
      }
    }
  }

  async #pollLoop(): Promise<void> {
    const interval = this.#options.interval ?? 0;
    const hold = interval > 0 ? 0 : this.#options.hold ?? 25_000;
    try {
      while (!this.#done && !this.#closing) {
        // Backpressure: poll only while the readable wants more.
        if ((this.#reader.desiredSize ?? 0) <= 0) {
          await this.#waitForPullAlive();
          continue;
        }
        const batch = await this.#retrying(async () => {
          const response = await this.#request(
            "GET",
            `&ack=${this.#lastSeen}&wait=${hold}`,
            undefined,
            hold,
          );
          try {
            return decodeBatch(await response.text());
          } catch (error) {
            // A body cut short is a lost response: poll again.
            throw new RequestFailed("bad poll response", { cause: error });
          }
        });
        if (batch === undefined || this.#done) return;
        this.#enqueue(batch);
        // After our DELETE, a held poll's `closed` is that DELETE's doing:
        // its answer, with the messages after this batch, ends the session.
        if (batch.closed && this.#closeSent) return;
        if (batch.closed) {
          this.#end();
          return;
        }
        if (interval > 0) await sleep(interval, this.#abort.signal);
      }
    } catch (error) {
      if (!this.#done) this.#fail(error);
    }
  }

  async #sendLoop(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#out.length > 0 && !this.#done) {
        // One body under the server's maxBodySize (a larger one gets 413
        // on every retry); what does not fit goes in the next.
        const limit = this.#maxBody;
        let count = 0;
        let size = ENVELOPE;
        for (const entry of this.#out) {
          if (count > 0 && size + entry.bytes > limit) break;
          size += entry.bytes;
          count++;
        }
        const first = this.#out[0]!.seq;
        const body = encodeBatch({
          seq: first,
          messages: this.#out.slice(0, count).map((entry) => entry.message),
        });
        const ack = await this.#retrying(async () => {
          const response = await this.#request("POST", "", body, 0);
          let value: unknown;
          try {
            value = (await response.json() as { ack?: unknown }).ack;
          } catch (error) {
            throw new RequestFailed("bad send response", { cause: error });
          }
          if (typeof value !== "number") {
            throw new RequestFailed(`bad ack ${show(value)}`);
          }
          return value;
        });
        if (ack === undefined || this.#done) return;
        let n = 0;
        while (n < this.#out.length && this.#out[n]!.seq <= ack) n++;
        this.#out.splice(0, n);
        for (const resolve of this.#room.splice(0, n)) resolve();
        if (n === 0) {
          // The server's queue is full: its application is not reading.
          await sleep(this.#options.retry ?? 1000, this.#abort.signal)
            .catch(() => {});
        }
      }
      for (const resolve of this.#flushed.splice(0)) resolve();
    } catch (error) {
      if (!this.#done) this.#fail(error);
    } finally {
      this.#sending = false;
    }
  }
}

/** Whether `text` is an older server's answer to a close: `{"closed": true}`. */
function isOlderCloseAnswer(text: string): boolean {
  try {
    const value = JSON.parse(text) as { closed?: unknown; seq?: unknown };
    return value?.closed === true && value.seq === undefined;
  } catch {
    return false;
  }
}

/**
 * Opens a long-polling (or, with `interval`, short-polling) session with a
 * {@linkcode PollingServer} at `url`.
 *
 * Each poll acknowledges the last message received, and the server drops
 * only acknowledged messages, so a poll whose response is lost is simply
 * repeated: the server sends the same messages again and the client drops
 * those it has by sequence number. Sending works the same way: a POST
 * carries every unacknowledged message with its sequence number, and is
 * sent again when its answer is lost; the server skips those it took.
 *
 * @param url The URL the server's fetch handler answers.
 * @param options Long or short polling, and the timeouts and bounds.
 * @returns The connection, once the session is open.
 * @throws {RangeError | TypeError} For an option out of range.
 * @throws {WebSocketError} `ERR_SESSION_CLOSED` when the session cannot be
 * opened in `maxRetries` attempts.
 *
 * @example Short polling every 50 ms
 * ```ts
 * import { connectPolling, PollingServer } from "@seed/websocket-streams/polling";
 * import { assertEquals } from "@std/assert";
 *
 * const polling = new PollingServer(async (connection) => {
 *   const writer = connection.writable.getWriter();
 *   await writer.write("tick");
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, polling.fetch);
 * const client = await connectPolling(`http://127.0.0.1:${server.addr.port}/`, { interval: 50 });
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "tick");
 * client.close();
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export async function connectPolling(
  url: string | URL,
  options: PollingClientOptions = {},
): Promise<PollingClientConnection> {
  checkOptions("connect polling", options, OPTIONS);
  const href = new URL(url, globalThis.location?.href).href;
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  let failures = 0;
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const response = await doFetch(href, {
        method: "POST",
        headers: options.headers,
        cache: "no-store",
        signal: options.signal,
      });
      if (response.ok) {
        const opened = await response.json() as Record<string, unknown>;
        if (typeof opened.session === "string") {
          // What the server says of itself (an older one says nothing).
          const positive = (value: unknown) =>
            typeof value === "number" && value > 0 ? value : undefined;
          return new PollingClientConnection(href, opened.session, options, {
            sessionTimeout: positive(opened.sessionTimeout),
            maxBodySize: positive(opened.maxBodySize),
          });
        }
      } else {
        await response.body?.cancel();
      }
    } catch (error) {
      if (options.signal?.aborted) throw error;
    }
    if (++failures > (options.maxRetries ?? 10)) {
      throw new WebSocketError(
        `Cannot open polling session: ${failures} attempts failed`,
        { code: "ERR_SESSION_CLOSED" },
      );
    }
    await sleep(
      reconnectDelay(
        options.retry ?? 1000,
        failures - 1,
        options.maxRetryDelay ?? 30_000,
        Math.random(),
      ),
      options.signal ?? new AbortController().signal,
    );
  }
}
