/**
 * {@linkcode connectRealtime}: the client of `realtime()`. It tries each
 * transport in order and falls back on failure or a timeout. Plain ESM with
 * no Deno API, so that the same module runs in a browser (bundled by
 * `deno bundle --platform browser`, as examples/techniques/main.ts does).
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { closeBodyFor } from "../codec/close.ts";
import type { MessageData } from "../codec/message.ts";
import { WebSocketError } from "../errors.ts";
import { before, deadline } from "../_deadline.ts";
import { ServerSentEventClient } from "../sse/client.ts";
import {
  ENDPOINTS,
  fromWire,
  toWire,
  type WireItem,
  type WireMessage,
  wireSize,
} from "./_wire.ts";
import {
  REALTIME_TRANSPORTS,
  type RealtimeCloseInfo,
  type RealtimeConnection,
  type RealtimeTransport,
} from "./connection.ts";

/** The default time one transport gets to open: 10 s. */
export const DEFAULT_TRANSPORT_TIMEOUT = 10_000;

/** The options of {@linkcode connectRealtime}. */
export interface ConnectRealtimeOptions {
  /**
   * The transports to try, in order; the first that opens within `timeout`
   * wins. `"iframe"` in a page uses a hidden iframe; elsewhere (Deno) it
   * reads the same HTML stream with `fetch` and runs no script.
   *
   * @default {["websocket", "sse", "long-polling", "polling", "iframe"]}
   */
  transports?: readonly RealtimeTransport[];
  /**
   * Milliseconds one transport gets to open (the WebSocket handshake, or
   * the session and the first answer of its downstream) before the next is
   * tried.
   *
   * @default {10000}
   */
  timeout?: number;
  /**
   * Milliseconds between two polls of short polling.
   *
   * @default {1000}
   */
  pollInterval?: number;
  /**
   * Failed requests in a row (a network error or a 5xx) after which the
   * connection fails with `ERR_ABNORMAL_CLOSURE`; each retry waits twice
   * as long, from 250 ms.
   *
   * @default {4}
   */
  maxRetries?: number;
  /**
   * Bytes of written messages not yet acknowledged by the server past
   * which `writer.write()` waits.
   *
   * @default {1048576}
   */
  writableHighWaterMark?: number;
  /**
   * The largest POST body the Comet transports send, in bytes of JSON: a
   * batch of messages is cut to fit; a single message that cannot fit
   * fails its write with `ERR_MESSAGE_TOO_LARGE`. The server's
   * `maxRequestBytes`, which it sends when the session opens, caps it.
   *
   * @default {the server's maxRequestBytes (1048576 if it does not say)}
   */
  maxRequestBytes?: number;
  /**
   * Bytes of received messages that may wait unread in `readable`. The
   * Comet transports stop asking for more past it; a WebSocket (the
   * browser's, which cannot pause) fails with 1008 `ERR_INBOUND_QUEUE_FULL`.
   * The SSE transport reads events of up to 6 × this many characters (a
   * message as JSON, escapes included); a longer one fails it with
   * `ERR_EVENT_TOO_LARGE`.
   *
   * @default {16777216}
   */
  maxQueuedBytes?: number;
  /**
   * Milliseconds `close()` waits, on the Comet transports, for the server
   * to take what was written before it (a server whose application reads
   * nothing takes nothing), then for the server's close to come back down
   * after the messages its application wrote before it heard ours (they
   * are enqueued in `readable`, read or not). Past it the client ends the
   * session anyway, and `closed` rejects with `ERR_CLOSE_TIMEOUT`: what
   * was not delivered is lost.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * Aborting it stops the attempts, or closes the connection.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

const DELAY = { min: 1, max: 2 ** 31 - 1, unit: "milliseconds" } as const;
const OPTIONS: Rules = [
  ["timeout", DELAY],
  ["closeTimeout", DELAY],
  ["pollInterval", { ...DELAY, min: 0 }],
  ["maxRetries", { min: 0 }],
  ["writableHighWaterMark", { min: 0 }],
  ["maxQueuedBytes", { min: 1 }],
  ["maxRequestBytes", { min: 64 }],
];
// `{"seq":<up to 16 digits>,"m":[]}`: a body's bytes besides its messages'.
const ENVELOPE = JSON.stringify({ seq: 1, m: [] }).length + 15;
const utf8 = new TextEncoder();

/**
 * Connects to a `realtime()` handler at `url` (its `path`, e.g.
 * `http://host/rt`), trying `options.transports` in order: a transport
 * that fails or does not open within `options.timeout` gives way to the
 * next. The connection is the same shape whichever wins;
 * `connection.transport` says which.
 *
 * @param url The handler's base URL, `http(s):` (or relative, in a page).
 * @param options The transports, the timeout and the bounds.
 * @returns The open connection.
 * @throws {WebSocketError} `ERR_NO_TRANSPORT` when every transport failed;
 * its `cause` is the list of their errors.
 * @throws {RangeError | TypeError} For an option out of range, an unknown
 * transport or a URL that does not parse.
 *
 * @example Fall back from a refused WebSocket to server-sent events
 * ```ts
 * import { connectRealtime, realtime } from "@seed/websocket-streams/realtime";
 * import { assertEquals } from "@std/assert";
 *
 * const handler = realtime({ transports: ["sse"] }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
 * const connection = await connectRealtime(`http://127.0.0.1:${server.addr.port}/rt`);
 * assertEquals(connection.transport, "sse");
 * const writer = connection.writable.getWriter();
 * const reader = connection.readable.getReader();
 * await writer.write("over sse");
 * assertEquals((await reader.read()).value, "over sse");
 * reader.releaseLock();
 * writer.releaseLock();
 * connection.close();
 * await connection.closed;
 * handler.close();
 * await server.shutdown();
 * ```
 */
export async function connectRealtime(
  url: string | URL,
  options: ConnectRealtimeOptions = {},
): Promise<RealtimeConnection> {
  checkOptions("connect", options, OPTIONS);
  let base: URL;
  try {
    base = new URL(url, globalThis.location?.href);
  } catch {
    throw new TypeError(`Cannot connect: not a URL: ${show(String(url))}`);
  }
  const transports = options.transports ?? REALTIME_TRANSPORTS;
  for (const transport of transports) {
    if (!REALTIME_TRANSPORTS.includes(transport)) {
      throw new TypeError(
        `Cannot connect: unknown transport ${show(transport)}`,
      );
    }
  }
  const href = base.href.replace(/\/+$/, "");
  const errors: unknown[] = [];
  for (const transport of transports) {
    options.signal?.throwIfAborted();
    const attempt = new AbortController();
    const timeout = options.timeout ?? DEFAULT_TRANSPORT_TIMEOUT;
    const timer = setTimeout(
      () =>
        attempt.abort(
          new WebSocketError(
            `Cannot connect: ${transport} did not open in ${timeout} ms`,
            { code: "ERR_HANDSHAKE_TIMEOUT" },
          ),
        ),
      timeout,
    );
    const onAbort = () => attempt.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort);
    try {
      return transport === "websocket"
        ? await openWebSocket(href, options, attempt.signal)
        : await CometClient.open(href, transport, options, attempt.signal);
    } catch (error) {
      errors.push(error);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }
  options.signal?.throwIfAborted();
  throw new WebSocketError(
    `Cannot connect: every transport failed (${transports.join(", ")})`,
    { code: "ERR_NO_TRANSPORT", cause: errors },
  );
}

// Rejects when the signal aborts; the listener goes with the promise.
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), {
      once: true,
    });
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

// The platform's WebSocket (the browser's, or Deno's) behind the streams.
async function openWebSocket(
  href: string,
  options: ConnectRealtimeOptions,
  signal: AbortSignal,
): Promise<RealtimeConnection> {
  const target = new URL(`${href}/${ENDPOINTS.websocket}`);
  target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(target.href);
  socket.binaryType = "arraybuffer";
  const maxQueued = options.maxQueuedBytes ?? 1 << 24;
  const highWaterMark = options.writableHighWaterMark ?? 1 << 20;
  let resolveClosed!: (info: RealtimeCloseInfo) => void;
  let rejectClosed!: (error: unknown) => void;
  const closed = new Promise<RealtimeCloseInfo>((resolve, reject) => {
    resolveClosed = resolve;
    rejectClosed = reject;
  });
  closed.catch(() => {});
  let controller!: ReadableStreamDefaultController<string | Uint8Array>;
  const readable = new ReadableStream<string | Uint8Array>({
    start: (c) => {
      controller = c;
    },
    cancel: () => socket.close(1000),
  }, { highWaterMark: maxQueued, size: (chunk) => Math.max(1, chunk.length) });
  socket.onmessage = (event) => {
    const data = typeof event.data === "string"
      ? event.data
      : new Uint8Array(event.data as ArrayBuffer);
    if ((controller.desiredSize ?? 0) < data.length) {
      // The browser's socket cannot pause: bound what waits unread.
      socket.close(1008, "inbound queue full");
      const error = new WebSocketError(
        `Cannot receive message: more than ${maxQueued} bytes wait unread`,
        { code: "ERR_INBOUND_QUEUE_FULL" },
      );
      controller.error(error);
      rejectClosed(error);
      return;
    }
    controller.enqueue(data);
  };
  let open = false;
  let rejectOpened!: (error: unknown) => void;
  socket.onclose = (event) => {
    if (!open) {
      rejectOpened(
        new WebSocketError(
          `Cannot connect: the WebSocket closed before it opened (${event.code})`,
          { code: "ERR_HANDSHAKE" },
        ),
      );
      return;
    }
    if (event.wasClean) {
      try {
        controller.close();
      } catch { /* cancelled or errored */ }
      resolveClosed({ closeCode: event.code, reason: event.reason });
    } else {
      const error = new WebSocketError(
        "Cannot read: the connection ended without a close handshake",
        { code: "ERR_ABNORMAL_CLOSURE" },
      );
      try {
        controller.error(error);
      } catch { /* cancelled */ }
      rejectClosed(error);
    }
  };
  // The handlers are in place before the socket opens: a message may come
  // in the same turn as the open event.
  const opened = new Promise<void>((resolve, reject) => {
    rejectOpened = reject;
    socket.onopen = () => {
      open = true;
      resolve();
    };
  });
  try {
    await Promise.race([opened, aborted(signal)]);
  } catch (error) {
    socket.onclose = null;
    socket.close();
    throw error;
  }
  const writable = new WritableStream<MessageData>({
    async write(data) {
      if (socket.readyState !== WebSocket.OPEN) {
        throw new WebSocketError("Cannot send: the connection is closed", {
          code: "ERR_ABNORMAL_CLOSURE",
        });
      }
      socket.send(data as string | ArrayBufferView<ArrayBuffer>);
      // The browser fires no event when bufferedAmount falls: poll it.
      for (let wait = 1; socket.bufferedAmount > highWaterMark; wait *= 2) {
        if (socket.readyState !== WebSocket.OPEN) return;
        await sleep(Math.min(wait, 16));
      }
    },
    close: () => socket.close(1000),
  });
  return {
    readable,
    writable,
    closed,
    transport: "websocket",
    close(options = {}) {
      const { closeCode, reason } = closeBodyFor(options);
      socket.close(closeCode ?? 1000, reason);
    },
  };
}

// The little of the DOM the iframe transport uses; Deno's types have none.
interface PageFrame {
  src: string;
  style: { display: string };
  onload: (() => void) | null;
  remove(): void;
}
interface PageDocument {
  createElement(name: "iframe"): PageFrame;
  body: { appendChild(node: PageFrame): void };
}

function pageDocument(): PageDocument | undefined {
  return (globalThis as { document?: PageDocument }).document;
}

interface Outgoing {
  message: WireMessage;
  size: number;
  // Its bytes in a POST body: its JSON and a comma.
  bytes: number;
}

/** A Comet connection on the client: a session, a downstream, POSTs up. */
class CometClient implements RealtimeConnection {
  readonly readable: ReadableStream<string | Uint8Array>;
  readonly writable: WritableStream<MessageData>;
  readonly closed: Promise<RealtimeCloseInfo>;
  readonly transport: RealtimeTransport;

  #href: string;
  #sid = "";
  // The server's sessionTimeout (older servers do not say: their default).
  #sessionTimeout = 30_000;
  // The largest request body the server takes (it says so when the session
  // opens); the option caps it.
  #maxRequest: number;
  #options: ConnectRealtimeOptions;
  #controller!: ReadableStreamDefaultController<string | Uint8Array>;
  #lastId = 0;
  #seq = 0; // the seq of #outbox[0]
  #outbox: Outgoing[] = [];
  #outboxBytes = 0;
  #sending = false;
  // close() waits on these until the outbox is empty (or the client ended).
  #flushed: (() => void)[] = [];
  #drained: (() => void) | undefined;
  #room: (() => void) | undefined;
  #stop = new AbortController();
  #ended = false;
  #closing = false;
  // Our close went out (`/close` with `w: 1`): its code, and the signal
  // that the downstream reads on past the reader's bound.
  #closeInfo: RealtimeCloseInfo | undefined;
  #draining = new AbortController();
  #hello: (() => void) | undefined;
  #hellos = 0;
  #resolveClosed!: (info: RealtimeCloseInfo) => void;
  #rejectClosed!: (error: unknown) => void;
  #sse: ServerSentEventClient | undefined;
  #iframe: { remove(): void } | undefined;

  private constructor(
    href: string,
    transport: RealtimeTransport,
    options: ConnectRealtimeOptions,
  ) {
    this.#href = href;
    this.transport = transport;
    this.#options = options;
    this.#maxRequest = options.maxRequestBytes ?? 1 << 20;
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(() => {});
    this.readable = new ReadableStream<string | Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        this.#room?.();
      },
      cancel: () => this.close(),
    }, {
      highWaterMark: options.maxQueuedBytes ?? 1 << 24,
      size: (chunk) => Math.max(1, chunk.length),
    });
    this.writable = new WritableStream<MessageData>({
      write: (data) => this.#write(data),
      close: () => this.close(),
    });
  }

  static async open(
    href: string,
    transport: RealtimeTransport,
    options: ConnectRealtimeOptions,
    signal: AbortSignal,
  ): Promise<CometClient> {
    const client = new CometClient(href, transport, options);
    const stopOnAbort = () => client.#shutdown();
    signal.addEventListener("abort", stopOnAbort, { once: true });
    try {
      const response = await Promise.race([
        fetch(`${href}/${ENDPOINTS.session}?transport=${transport}`, {
          method: "POST",
          signal,
          cache: "no-store",
        }),
        aborted(signal),
      ]);
      if (!response.ok) {
        await response.body?.cancel();
        throw new WebSocketError(
          `Cannot connect: the server answered ${response.status} to ${transport}`,
          { code: "ERR_HANDSHAKE" },
        );
      }
      const opened = await response.json();
      client.#sid = opened.sid;
      // What the server says of itself (an older one says nothing).
      if (Number.isFinite(opened.sessionTimeout) && opened.sessionTimeout > 0) {
        client.#sessionTimeout = opened.sessionTimeout;
      }
      if (
        Number.isFinite(opened.maxRequestBytes) && opened.maxRequestBytes > 0
      ) {
        client.#maxRequest = Math.min(
          options.maxRequestBytes ?? Infinity,
          opened.maxRequestBytes,
        );
      }
      const hello = new Promise<void>((resolve) => client.#hello = resolve);
      client.#run();
      await Promise.race([hello, aborted(signal), client.closed]);
      return client;
    } catch (error) {
      client.#shutdown();
      throw error;
    } finally {
      signal.removeEventListener("abort", stopOnAbort);
    }
  }

  close(options: { closeCode?: number; reason?: string } = {}): void {
    const { closeCode, reason } = closeBodyFor(options);
    if (this.#closing || this.#ended) return;
    this.#closing = true;
    // Like WebSocket's close(), what was written first is delivered first:
    // the /close must not overtake the /send carrying the outbox, or the
    // server ends the session and that /send gets 404 (as connectPolling).
    // A server that takes nothing (its application reads nothing) would
    // hold that wait forever: closeTimeout bounds it, as it bounds a
    // WebSocket's closing handshake.
    const limit = this.#options.closeTimeout ?? 5000;
    const info = { closeCode: closeCode ?? 1005, reason };
    // One deadline for both steps: delivering the outbox, then the
    // handshake.
    const time = deadline(limit);
    const flushed = this.#outbox.length === 0 ? Promise.resolve(true) : before(
      new Promise<void>((resolve) => this.#flushed.push(resolve)),
      time.signal,
    );
    flushed
      .then((delivered): Promise<void> | undefined => {
        if (this.#ended) return;
        if (delivered) return this.#closeHandshake(info, time.signal);
        // Ended anyway, so that the server does not wait out its
        // sessionTimeout; the outbox goes with the session. The downstream
        // stops now (a close item it brings changes nothing), and `closed`
        // rejects once the server has the close.
        this.#fail(
          new WebSocketError(
            `Cannot close cleanly: the server had not taken the last ${this.#outbox.length} messages written before close() after ${limit} ms (closeTimeout)`,
            { code: "ERR_CLOSE_TIMEOUT" },
          ),
          this.#answer({ c: info.closeCode, r: reason }),
        );
        return undefined;
      })
      .finally(() => time.clear())
      .then(() => this.#finish(info), (error) => this.#fail(error));
  }

  // The close as a WebSocket's is (RFC 6455 §1.4, §7.1.2): what the server
  // wrote before it heard the close still arrives. `/close` says `w: 1`
  // (we read on), and the downstream runs, past the reader's bound, until
  // the server's close item, after the messages it had queued. An older
  // server ends the session at once: a downstream attached then (SSE, the
  // iframe) still gets what was queued, then the close, but a poll after
  // it gets only the close. The session ends when the close item is handed
  // out, not acknowledged: should that answer be lost, the retry gets the
  // close alone, and what it carried is lost. The close's deadline
  // (`expired`, closeTimeout from close()) bounds it; past it,
  // ERR_CLOSE_TIMEOUT.
  async #closeHandshake(
    info: RealtimeCloseInfo,
    expired: AbortSignal,
  ): Promise<void> {
    const limit = this.#options.closeTimeout ?? 5000;
    this.#closeInfo = info;
    // The downstream no longer waits for the reader, nor for the next poll.
    this.#draining.abort();
    this.#room?.();
    try {
      await this.#post(
        ENDPOINTS.close,
        { c: info.closeCode, r: info.reason, w: 1 },
        expired,
      );
      await Promise.race([this.closed, aborted(expired)]);
    } catch (error) {
      if (!expired.aborted) throw error;
      throw new WebSocketError(
        `Cannot close cleanly: the server did not answer the close in ${limit} ms (closeTimeout)`,
        { code: "ERR_CLOSE_TIMEOUT" },
      );
    }
  }

  #url(endpoint: string, query = ""): string {
    return `${this.#href}/${endpoint}?sid=${
      encodeURIComponent(this.#sid)
    }${query}`;
  }

  // The downstream loop of this transport.
  #run(): void {
    const done = this.transport === "sse"
      ? this.#runSse()
      : this.transport === "iframe"
      ? (pageDocument() ? this.#runIframe() : this.#runHtmlStream())
      : this.#runPolls(this.transport === "long-polling");
    done.catch((error) => this.#fail(error));
  }

  async #runPolls(long: boolean): Promise<void> {
    let failures = 0;
    // The first poll is answered at once: it shows the transport works.
    let first = true;
    while (!this.#ended) {
      await this.#waitForRoomAlive();
      let response: Response;
      try {
        response = await fetch(
          this.#url(
            ENDPOINTS.poll,
            `&ack=${this.#lastId}&wait=${long && !first ? 1 : 0}`,
          ),
          { signal: this.#stop.signal, cache: "no-store" },
        );
      } catch (error) {
        if (this.#ended) return;
        await this.#retry(++failures, error);
        continue;
      }
      if (response.status >= 500) {
        await response.body?.cancel();
        await this.#retry(++failures, response.status);
        continue;
      }
      this.#check(response);
      let items: WireItem[];
      try {
        ({ items } = await response.json() as { items: WireItem[] });
      } catch (error) {
        // A body cut short is a lost answer: the same ack asks the server
        // for the same messages again (it drops only acknowledged ones).
        if (this.#ended) return;
        await this.#retry(++failures, error);
        continue;
      }
      failures = 0;
      this.#hello?.();
      first = false;
      for (const item of items) this.#deliver(item);
      if (!long && !this.#ended && !this.#draining.signal.aborted) {
        await sleep(
          this.#options.pollInterval ?? 1000,
          AbortSignal.any([this.#stop.signal, this.#draining.signal]),
        );
      }
    }
  }

  async #runSse(): Promise<void> {
    const client = new ServerSentEventClient(this.#url(ENDPOINTS.sse), {
      signal: this.#stop.signal,
      maxRetries: this.#options.maxRetries ?? 4,
      retry: 250,
      // An event is one message as JSON: up to 6 characters for each of
      // its own (a control character is \u00XX), so every message the
      // readable can hold fits, as it does on the other transports.
      maxEventSize: 6 * (this.#options.maxQueuedBytes ?? 1 << 24) + 64,
    });
    this.#sse = client;
    for await (const event of client.readable) {
      if (this.#ended) return;
      await this.#waitForRoom();
      // A message event carries its id in the SSE id field; the hello and
      // the close carry their item as data.
      this.#deliver(
        event.event === "message"
          ? { i: Number(event.id), m: JSON.parse(event.data) }
          : JSON.parse(event.data),
      );
    }
  }

  // Deno (no document): the forever frame's HTML read with fetch; the
  // values are the JSON inside each `<script>f(...)</script>`, which holds
  // no "<" (scriptJson escapes it), so the first ")</script>" ends it.
  async #runHtmlStream(): Promise<void> {
    let failures = 0;
    while (!this.#ended) {
      let response: Response;
      try {
        response = await fetch(
          this.#url(ENDPOINTS.iframe, `&cb=f&ack=${this.#lastId}`),
          { signal: this.#stop.signal, cache: "no-store" },
        );
        this.#check(response);
        let text = "";
        const decoder = new TextDecoder();
        for await (const chunk of response.body!) {
          text += decoder.decode(chunk, { stream: true });
          let start: number;
          while ((start = text.indexOf("<script>f(")) !== -1) {
            const end = text.indexOf(")</script>", start);
            if (end === -1) break;
            failures = 0;
            await this.#waitForRoom();
            this.#deliver(JSON.parse(text.slice(start + 10, end)));
            text = text.slice(end + 10);
          }
        }
      } catch (error) {
        if (this.#ended) return;
        if (error instanceof WebSocketError) throw error;
        await this.#retry(++failures, error);
      }
    }
  }

  // A page: a hidden iframe loads the forever frame; its scripts call
  // window[callback]. When the document ends (the server's
  // iframeStreamBytes), `load` fires and a new one starts from the last id.
  #runIframe(): Promise<void> {
    const document = pageDocument()!;
    const name = `__realtime_${this.#sid.replace(/\W/g, "")}`;
    const global = globalThis as unknown as Record<string, unknown>;
    global[name] = (item: WireItem) => this.#deliver(item);
    const frame = document.createElement("iframe");
    frame.style.display = "none";
    // A document without its hello (an error page, a 404 for a session the
    // server forgot) is a failed request: retried with backoff, as polls.
    let hellos = this.#hellos;
    let failures = 0;
    return new Promise<void>((resolve) => {
      const load = () => {
        if (this.#ended) return resolve();
        hellos = this.#hellos;
        frame.src = this.#url(
          ENDPOINTS.iframe,
          `&cb=${name}&ack=${this.#lastId}`,
        );
      };
      frame.onload = () => {
        if (this.#ended) return;
        failures = this.#hellos === hellos ? failures + 1 : 0;
        this.#retry(failures, "the iframe document ended without a hello")
          .then(load, (error) => this.#fail(error));
      };
      this.#iframe = {
        remove: () => {
          frame.onload = null;
          frame.remove();
          delete global[name];
          resolve();
        },
      };
      load();
      document.body.appendChild(frame);
    });
  }

  #check(response: Response): void {
    if (response.ok) return;
    response.body?.cancel();
    throw new WebSocketError(
      `Cannot read: the server answered ${response.status}: the session is gone`,
      { code: "ERR_SESSION_CLOSED" },
    );
  }

  // Waits before the next try: nothing after a success (`failures` 0), then
  // 250 ms doubling; past maxRetries, fails.
  async #retry(failures: number, cause: unknown): Promise<void> {
    if (failures === 0) return;
    if (failures > (this.#options.maxRetries ?? 4)) {
      throw new WebSocketError(
        `Cannot reach the server: ${failures} requests in a row failed`,
        { code: "ERR_ABNORMAL_CLOSURE", cause },
      );
    }
    await sleep(250 * 2 ** (failures - 1), this.#stop.signal);
  }

  // A poll loop waits for its reader, but no request for sessionTimeout
  // would end the session: every third of it, an empty /send (it touches
  // the session, takes nothing) says the client is still here.
  async #waitForRoomAlive(): Promise<void> {
    const room = this.#waitForRoom();
    let ready = false;
    room.then(() => ready = true);
    while (!ready && !this.#ended) {
      const tick = new AbortController();
      await Promise.race([room, sleep(this.#sessionTimeout / 3, tick.signal)]);
      tick.abort();
      if (ready || this.#ended) return;
      await this.#post(ENDPOINTS.send, { seq: this.#seq, m: [] })
        .catch(() => {/* the next poll finds out */});
    }
  }

  // After our close, what the server sends is enqueued whatever the reader
  // takes: the server's queues bound it.
  #waitForRoom(): Promise<void> {
    if (
      (this.#controller.desiredSize ?? 1) > 0 || this.#ended ||
      this.#draining.signal.aborted
    ) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#room = () => {
        this.#room = undefined;
        resolve();
      };
    });
  }

  #deliver(item: WireItem): void {
    if (this.#ended) return;
    if ("h" in item) {
      this.#hellos++;
      this.#hello?.();
      return;
    }
    if ("c" in item) {
      // The server's close (or its failure): answer it, then end. `closed`
      // resolves once the answer is through (or closeTimeout has passed),
      // so that no request outlives it, as a WebSocket's close frame is
      // echoed before the connection counts as closed.
      if (!this.#closing) {
        this.#closing = true;
        this.#finish(
          { closeCode: item.c, reason: item.r },
          this.#answer({ c: item.c, r: item.r }),
        );
        return;
      }
      // After our /close, it is the answer: we end with our own code.
      this.#finish(this.#closeInfo ?? { closeCode: item.c, reason: item.r });
      return;
    }
    if (item.i <= this.#lastId) return; // sent again after a reconnection
    this.#lastId = item.i;
    const message = fromWire(item.m);
    if (message === undefined) {
      this.#fail(
        new WebSocketError("Cannot receive message: not a message", {
          code: "ERR_INVALID_MESSAGE",
          closeCode: 1007,
        }),
      );
      return;
    }
    this.#controller.enqueue(message);
  }

  async #write(data: MessageData): Promise<void> {
    if (this.#ended || this.#closing) {
      throw new WebSocketError("Cannot send: the connection is closing", {
        code: "ERR_ABNORMAL_CLOSURE",
      });
    }
    const message = toWire(data);
    if (message === undefined) {
      throw new TypeError(
        "Cannot send: a message is a string, an ArrayBuffer or a view",
      );
    }
    const size = wireSize(message);
    const bytes = utf8.encode(JSON.stringify(message)).length + 1;
    const limit = this.#maxRequest;
    if (ENVELOPE + bytes > limit) {
      throw new WebSocketError(
        `Cannot send: the message takes ${bytes} bytes of JSON, and a request holds at most ${limit} (maxRequestBytes)`,
        { code: "ERR_MESSAGE_TOO_LARGE", closeCode: 1009 },
      );
    }
    this.#outbox.push({ message, size, bytes });
    this.#outboxBytes += size;
    this.#flush();
    if (this.#outboxBytes > (this.#options.writableHighWaterMark ?? 1 << 20)) {
      await new Promise<void>((resolve) => this.#drained = resolve);
    }
  }

  // One POST in flight at a time, carrying everything unacknowledged: the
  // server drops what it already has (by seq), so a retry is safe.
  async #flush(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    let failures = 0;
    // Answers in a row that took nothing.
    let idle = 0;
    try {
      while (this.#outbox.length > 0 && !this.#ended) {
        const batch: WireMessage[] = [];
        // One body under the server's maxRequestBytes (a larger one gets
        // 413 on every retry); what does not fit goes in the next.
        const limit = this.#maxRequest;
        let size = ENVELOPE;
        for (const item of this.#outbox) {
          if (batch.length > 0 && size + item.bytes > limit) break;
          batch.push(item.message);
          size += item.bytes;
        }
        const taken = this.#seq;
        let ack: number;
        try {
          const answer = await this.#post(ENDPOINTS.send, {
            seq: this.#seq,
            m: batch,
          });
          ack = (answer as { ack: number }).ack;
          failures = 0;
        } catch (error) {
          if (this.#ended) return;
          if (error instanceof WebSocketError) throw error;
          await this.#retry(++failures, error);
          continue;
        }
        while (this.#seq < ack && this.#outbox.length > 0) {
          this.#outboxBytes -= this.#outbox.shift()!.size;
          this.#seq++;
        }
        // Nothing taken: the server's queue is full. The next attempt sends
        // the whole batch again, so wait longer after each that took
        // nothing (50 ms doubling, at most 1 s); any progress resets it.
        if (ack <= taken && this.#outbox.length > 0) {
          await sleep(Math.min(1000, 50 * 2 ** idle++), this.#stop.signal);
        } else idle = 0;
        if (
          this.#outboxBytes <= (this.#options.writableHighWaterMark ?? 1 << 20)
        ) {
          this.#drained?.();
          this.#drained = undefined;
        }
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#sending = false;
      if (this.#outbox.length === 0 || this.#ended) {
        for (const resolve of this.#flushed.splice(0)) resolve();
      }
    }
  }

  async #post(
    endpoint: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const response = await fetch(this.#url(endpoint), {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      signal: endpoint === ENDPOINTS.close ? signal : this.#stop.signal,
      cache: "no-store",
    });
    if (response.status === 404 || response.status === 410) {
      await response.body?.cancel();
      throw new WebSocketError(
        `Cannot send: the server answered ${response.status}: the session is gone`,
        { code: "ERR_SESSION_CLOSED" },
      );
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`the server answered ${response.status}`);
    }
    return response.status === 204 ? undefined : await response.json();
  }

  /**
   * Ends cleanly: the downstream stops and `readable` closes at once;
   * `closed` resolves with `info` once `answered` (our answer to the
   * server's close) has settled.
   */
  #finish(info: RealtimeCloseInfo, answered?: Promise<unknown>): void {
    if (this.#ended) return;
    this.#shutdown();
    try {
      this.#controller.close();
    } catch { /* cancelled */ }
    if (answered) answered.then(() => this.#resolveClosed(info));
    else this.#resolveClosed(info);
  }

  /**
   * Fails: the downstream stops and `readable` errors at once; `closed`
   * rejects with `error` once `answered` (a close sent on the way out) has
   * settled.
   */
  #fail(error: unknown, answered?: Promise<unknown>): void {
    if (this.#ended) return;
    this.#shutdown();
    try {
      this.#controller.error(error);
    } catch { /* cancelled */ }
    if (answered) answered.then(() => this.#rejectClosed(error));
    else this.#rejectClosed(error);
  }

  /**
   * Sends a `/close` on the way out (no `w`: we read nothing more), within
   * closeTimeout; settles, never rejects, once it is through or abandoned.
   */
  #answer(body: { c: number; r: string }): Promise<unknown> {
    const time = deadline(this.#options.closeTimeout ?? 5000);
    return this.#post(ENDPOINTS.close, body, time.signal)
      .catch(() => {})
      .finally(() => time.clear());
  }

  #shutdown(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stop.abort();
    this.#sse?.close();
    this.#iframe?.remove();
    this.#drained?.();
    this.#room?.();
    for (const resolve of this.#flushed.splice(0)) resolve();
  }
}
