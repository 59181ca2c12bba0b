/**
 * {@linkcode ServerSentEventClient}: an `EventSource` as a `ReadableStream`
 * of events, over `fetch`. Plain ESM with no Deno API, so that the same
 * module runs in a browser.
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { WebSocketError } from "../errors.ts";
import { EventStreamParser } from "./event_stream_parser.ts";
import type { ServerSentEventMessage } from "./event.ts";
import { reconnectDelay, sleep } from "./_backoff.ts";
import { Utf8StreamDecoder } from "./_decoder.ts";

/** The default reconnection time, before the server sends `retry`: 3 s. */
export const DEFAULT_RECONNECTION_TIME = 3000;
/** The default cap of the reconnection backoff: 30 s. */
export const DEFAULT_MAX_RETRY_DELAY = 30_000;
/** The default wait for a response's headers: 30 s. */
export const DEFAULT_CONNECT_TIMEOUT = 30_000;

/** The options of {@linkcode ServerSentEventClient}. */
export interface ServerSentEventClientOptions {
  /**
   * More request headers (`accept: text/event-stream` and, on a
   * reconnection, `last-event-id` are set by the client).
   *
   * @default {undefined}
   */
  headers?: HeadersInit;
  /**
   * The request's credentials mode (`"include"` is `EventSource`'s
   * `withCredentials`).
   *
   * @default {"same-origin"}
   */
  credentials?: RequestCredentials;
  /**
   * Aborting it ends the client: the readable errors with the signal's
   * reason and the request is aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * The last event id to start from, sent as `Last-Event-ID` on the first
   * request too (a page that kept it across a reload).
   *
   * @default {""}
   */
  lastEventId?: string;
  /**
   * The reconnection time in milliseconds until the server sends `retry`.
   *
   * @default {3000}
   */
  retry?: number;
  /**
   * The cap of the backoff, in milliseconds: each failed attempt in a row
   * doubles the wait, up to this (or up to the server's `retry`, if that is
   * larger), plus up to 25% jitter.
   *
   * @default {30000}
   */
  maxRetryDelay?: number;
  /**
   * Attempts in a row that may fail (a network error, no byte received, or
   * a 502/503/504) before the client gives up with `ERR_EVENT_STREAM`.
   *
   * @default {Infinity}
   */
  maxRetries?: number;
  /**
   * Milliseconds to wait for a response's headers before the attempt
   * counts as failed.
   *
   * @default {30000}
   */
  connectTimeout?: number;
  /**
   * The bound on one event, in UTF-16 code units; past it the readable
   * errors with `ERR_EVENT_TOO_LARGE` (a reconnection would only replay
   * it).
   *
   * @default {1048576}
   */
  maxEventSize?: number;
  /**
   * The `fetch` to use.
   *
   * @default {globalThis.fetch}
   */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

const DELAY = { min: 0, max: 2 ** 31 - 1, unit: "milliseconds" } as const;
const OPTIONS: Rules = [
  ["retry", DELAY],
  ["maxRetryDelay", DELAY],
  ["maxRetries", { min: 0, infinity: true }],
  ["connectTimeout", { ...DELAY, min: 1 }],
];
// Statuses that mean "try again" behind a proxy or during a deploy; HTML
// §9.2.3 fails the connection on any status but 200, which would make a
// rolling restart end every client for good.
const RETRY_STATUSES = new Set([502, 503, 504]);

/** Where a {@linkcode ServerSentEventClient} is. */
export type ServerSentEventClientState = "connecting" | "open" | "closed";

/**
 * A server-sent events client: it `fetch`es `url`, parses the
 * `text/event-stream` body with the HTML standard's rules
 * ({@linkcode EventStreamParser}) and yields each event on
 * {@linkcode readable}. When the stream ends or the network fails, it
 * reconnects after the reconnection time (the server's `retry`, else
 * `options.retry`) with backoff, and sends `Last-Event-ID`, so that a
 * server with a replay buffer sends what the client missed.
 *
 * - **Backpressure**: the body is read only while `readable` is read.
 * - **Backoff**: after a stream that delivered bytes, the wait is the
 *   reconnection time; each failed attempt in a row doubles it, up to
 *   `maxRetryDelay` (never below the server's `retry`); each wait gets up
 *   to 25% random jitter.
 * - **Ends**: {@linkcode close} (or cancelling `readable`) ends the
 *   readable; the signal errors it with its reason; a response other than
 *   200 `text/event-stream` (but 502/503/504, retried), `maxRetries` failed
 *   attempts in a row, or an event over `maxEventSize` errors it with a
 *   {@linkcode WebSocketError}.
 *
 * @example Read events until done
 * ```ts
 * import { ServerSentEventClient, sseResponse } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
 *   sseResponse(ReadableStream.from([{ data: "a" }, { data: "b" }])),
 * );
 * const client = new ServerSentEventClient(`http://127.0.0.1:${server.addr.port}/`);
 * const seen: string[] = [];
 * for await (const event of client.readable) {
 *   seen.push(event.data);
 *   if (seen.length === 2) break; // cancels the readable: closes the client
 * }
 * assertEquals(seen, ["a", "b"]);
 * await server.shutdown();
 * ```
 */
export class ServerSentEventClient {
  /** The events, in order; it ends on {@linkcode close}. */
  readonly readable: ReadableStream<ServerSentEventMessage>;
  /** The URL the client connects to. */
  readonly url: string;

  #options: ServerSentEventClientOptions;
  #fetch: (input: string, init: RequestInit) => Promise<Response>;
  #parser: EventStreamParser;
  #decoder = new Utf8StreamDecoder();
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #queue: ServerSentEventMessage[] = [];
  #state: ServerSentEventClientState = "connecting";
  #attempted = false;
  #failures = 0;
  #bytesThisStream = 0;
  // Aborted by close(), a cancel or the caller's signal: it ends the
  // fetch, the body and the backoff wait at once.
  #abort = new AbortController();
  #controller!: ReadableStreamDefaultController<ServerSentEventMessage>;
  #onAbort: (() => void) | undefined;

  /**
   * Starts the client; the first request goes out when `readable` is
   * first read.
   *
   * @param url The event stream's URL.
   * @param options Headers, the signal, and the reconnection bounds.
   * @throws {RangeError | TypeError} For an option out of range, or a URL
   * that does not parse.
   */
  constructor(url: string | URL, options: ServerSentEventClientOptions = {}) {
    checkOptions("create event stream client", options, OPTIONS);
    try {
      this.url = new URL(url, globalThis.location?.href).href;
    } catch {
      throw new TypeError(
        `Cannot create event stream client: not a URL: ${show(String(url))}`,
      );
    }
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#parser = new EventStreamParser({
      lastEventId: options.lastEventId,
      maxEventSize: options.maxEventSize,
    });
    this.readable = new ReadableStream<ServerSentEventMessage>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#pull(),
      cancel: () => this.#finish(undefined),
    }, { highWaterMark: 0 });
    const signal = options.signal;
    if (signal) {
      this.#onAbort = () => this.#finish(signal.reason, true);
      if (signal.aborted) this.#onAbort();
      else signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /**
   * Where the client is: `"connecting"` (or waiting to reconnect),
   * `"open"` (a stream is being read) or `"closed"`.
   *
   * @returns The state.
   */
  get readyState(): ServerSentEventClientState {
    return this.#state;
  }

  /**
   * The last event id as of the last blank line: the `Last-Event-ID` the
   * next reconnection sends.
   *
   * @returns The id, `""` if none.
   */
  get lastEventId(): string {
    return this.#parser.lastEventId;
  }

  /**
   * The reconnection time in milliseconds: the server's last `retry`, or
   * `options.retry`.
   *
   * @returns The time in milliseconds.
   */
  get reconnectionTime(): number {
    return this.#parser.retry ?? this.#options.retry ??
      DEFAULT_RECONNECTION_TIME;
  }

  /**
   * Ends the client: aborts the request, stops reconnecting and closes
   * `readable` (events already queued there are still read). Calling it
   * again does nothing.
   */
  close(): void {
    this.#finish(undefined);
  }

  #finish(error: unknown, isError = false): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#onAbort) {
      this.#options.signal?.removeEventListener("abort", this.#onAbort);
    }
    this.#abort.abort(
      isError ? error : new DOMException("closed", "AbortError"),
    );
    this.#reader?.cancel().catch(() => {});
    this.#reader = undefined;
    try {
      if (isError) this.#controller.error(error);
      else this.#controller.close();
    } catch {
      // The readable was cancelled: it is already closed.
    }
  }

  async #pull(): Promise<void> {
    try {
      while (this.#queue.length === 0) {
        const reader = this.#reader ?? await this.#connect();
        let chunk: Uint8Array | undefined;
        try {
          const result = await reader.read();
          if (!result.done) chunk = result.value;
        } catch {
          // A network error mid-stream: reconnect, as at the end.
        }
        if (this.#state === "closed") return;
        if (chunk === undefined) {
          this.#drop();
          continue;
        }
        if (this.#bytesThisStream === 0) this.#failures = 0;
        this.#bytesThisStream += chunk.length;
        const text = this.#decoder.decode(chunk);
        const events = this.#parser.push(text);
        for (let i = 0; i < events.length; i++) this.#queue.push(events[i]!);
      }
      this.#controller.enqueue(this.#queue.shift()!);
    } catch (error) {
      if (this.#state === "closed") return;
      this.#finish(error, true);
    }
  }

  // The stream ended (or broke): HTML §9.2.6 discards an unfinished event.
  #drop(): void {
    this.#reader?.cancel().catch(() => {});
    this.#reader = undefined;
    this.#parser.end();
    this.#decoder = new Utf8StreamDecoder();
    if (this.#bytesThisStream === 0) this.#failures++;
    this.#state = "connecting";
  }

  async #connect(): Promise<ReadableStreamDefaultReader<Uint8Array>> {
    const maxRetries = this.#options.maxRetries ?? Infinity;
    const signal = this.#abort.signal;
    while (true) {
      if (this.#failures > maxRetries) {
        throw new WebSocketError(
          `Cannot reconnect to event stream: ${this.#failures} attempts in a row failed`,
          { code: "ERR_EVENT_STREAM" },
        );
      }
      if (this.#attempted) {
        await sleep(
          reconnectDelay(
            this.reconnectionTime,
            this.#failures,
            this.#options.maxRetryDelay ?? DEFAULT_MAX_RETRY_DELAY,
            Math.random(),
          ),
          signal,
        );
      }
      this.#attempted = true;
      const headers = new Headers(this.#options.headers);
      headers.set("accept", "text/event-stream");
      headers.set("cache-control", "no-cache");
      const lastEventId = this.#parser.lastEventId;
      if (lastEventId !== "") headers.set("last-event-id", lastEventId);
      const attempt = new AbortController();
      const timeout = this.#options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
      const timer = setTimeout(() => attempt.abort(), timeout);
      let response: Response;
      try {
        response = await this.#fetch(this.url, {
          headers,
          credentials: this.#options.credentials,
          cache: "no-store",
          signal: AbortSignal.any([signal, attempt.signal]),
        });
      } catch (error) {
        if (signal.aborted) throw error;
        this.#failures++;
        continue;
      } finally {
        clearTimeout(timer);
      }
      const type = response.headers.get("content-type") ?? "";
      if (
        response.status === 200 && response.body &&
        /^text\/event-stream\s*(;|$)/i.test(type)
      ) {
        this.#state = "open";
        this.#bytesThisStream = 0;
        this.#reader = response.body.getReader();
        return this.#reader;
      }
      await response.body?.cancel();
      if (RETRY_STATUSES.has(response.status)) {
        this.#failures++;
        continue;
      }
      throw new WebSocketError(
        `Cannot connect to event stream: the server answered ${response.status} with content type ${
          show(type)
        }, not 200 text/event-stream`,
        { code: "ERR_EVENT_STREAM" },
      );
    }
  }
}
