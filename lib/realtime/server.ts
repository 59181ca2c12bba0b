/**
 * {@linkcode realtime}: one fetch handler for the WebSocket and the four
 * Comet transports, handing the application one connection shape.
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { readBody } from "../_request_body.ts";
import { WebSocketError } from "../errors.ts";
import { isUpgradeRequest } from "../handshake/server.ts";
import {
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
} from "../net/upgrade.ts";
import type { MessageData } from "../codec/message.ts";
import { sseResponse } from "../sse/response.ts";
import type { ServerSentEvent } from "../sse/event.ts";
import { RealtimeSession, type SessionLimits } from "./_session.ts";
import { CALLBACK_NAME, ENDPOINTS, type WireItem } from "./_wire.ts";
import { iframeResponse } from "./iframe.ts";
import {
  REALTIME_TRANSPORTS,
  type RealtimeCloseInfo,
  type RealtimeConnection,
  type RealtimeTransport,
} from "./connection.ts";

/** The options of {@linkcode realtime}. */
export interface RealtimeOptions {
  /**
   * The path the endpoints live under: `${path}/ws`, `${path}/sse`,
   * `${path}/poll`, `${path}/iframe`, and `${path}/session`, `/send`,
   * `/close` for the Comet sessions. No trailing slash.
   *
   * @default {"/rt"}
   */
  path?: string;
  /**
   * The transports to accept; a request for another gets 404.
   *
   * @default {["websocket", "sse", "long-polling", "polling", "iframe"]}
   */
  transports?: readonly RealtimeTransport[];
  /**
   * The options of `upgradeWebSocket` for the WebSocket transport.
   *
   * @default {undefined}
   */
  upgrade?: UpgradeWebSocketOptions;
  /**
   * Milliseconds a Comet session lives without a request from its client
   * while no stream or held poll is open; then it fails with
   * `ERR_SESSION_TIMEOUT`.
   *
   * @default {30000}
   */
  sessionTimeout?: number;
  /**
   * Milliseconds the server holds a long poll that has nothing to send.
   * Keep it below `sessionTimeout` and below the idle timeouts of proxies
   * in between.
   *
   * @default {20000}
   */
  pollTimeout?: number;
  /**
   * The most Comet sessions open at once; a new one past it gets 503.
   *
   * @default {10000}
   */
  maxSessions?: number;
  /**
   * Bytes of messages written and not yet sent to a Comet client past
   * which `writer.write()` waits.
   *
   * @default {1048576}
   */
  writableHighWaterMark?: number;
  /**
   * Bytes of received messages that may wait unread in `readable`; the
   * client's messages past it are not acknowledged and it sends them again.
   *
   * @default {1048576}
   */
  maxQueuedBytes?: number;
  /**
   * Bytes of sent, unacknowledged messages kept to send again after a
   * broken stream or a lost poll answer; a poll answer carries at most this
   * much (or one message), so a lost one can always be sent again.
   *
   * @default {1048576}
   */
  maxReplayBytes?: number;
  /**
   * Milliseconds a write may wait for a Comet client to take messages
   * before the session fails with `ERR_SEND_TIMEOUT`.
   *
   * @default {30000}
   */
  sendTimeout?: number;
  /**
   * Milliseconds the server waits for a Comet client to answer its close
   * before the session fails with `ERR_CLOSE_TIMEOUT`.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * The largest request body accepted (`POST send`), in bytes; past it,
   * 413.
   *
   * @default {1048576}
   */
  maxRequestBytes?: number;
  /**
   * Bytes after which an iframe stream ends and the client loads a new
   * one: every `<script>` of a forever frame stays in its document.
   *
   * @default {262144}
   */
  iframeStreamBytes?: number;
  /**
   * Milliseconds without a message after which an SSE or iframe stream
   * sends a keep-alive; `0` turns it off.
   *
   * @default {15000}
   */
  keepAlive?: number;
}

/** What {@linkcode realtime} tells `onConnection` besides the connection. */
export interface RealtimeConnectionInfo {
  /** The transport the client connected with. */
  transport: RealtimeTransport;
  /** The request that opened the connection (the upgrade, or `POST session`). */
  request: Request;
}

/**
 * A fetch handler for `Deno.serve`, `deno serve` and Deno Deploy, with
 * what our `serve()` needs besides.
 */
export interface RealtimeHandler {
  /**
   * Answers one request: a WebSocket upgrade, a Comet endpoint, or 404.
   *
   * @param request The request.
   * @returns The response.
   */
  (request: Request): Promise<Response>;
  /**
   * Hands a WebSocket connection made by our `serve()` to `onConnection`:
   * pass it as `serve()`'s handler, and this handler as its `fetch`.
   *
   * @param connection The open connection.
   * @param request The upgrade request.
   */
  accept(
    connection: Pick<
      RealtimeConnection,
      "readable" | "writable" | "closed" | "close"
    >,
    request: Request,
  ): void;
  /** The Comet sessions open now. */
  readonly sessions: number;
  /**
   * Fails every Comet session with 1001 (going away) and refuses new
   * ones. WebSocket connections belong to the server that upgraded them.
   */
  close(): void;
}

const DELAY = { min: 1, max: 2 ** 31 - 1, unit: "milliseconds" } as const;
const SIZE = { min: 1 } as const;
const OPTIONS: Rules = [
  ["sessionTimeout", DELAY],
  ["pollTimeout", { ...DELAY, min: 0 }],
  ["maxSessions", { min: 0 }],
  ["writableHighWaterMark", { min: 0 }],
  ["maxQueuedBytes", SIZE],
  ["maxReplayBytes", SIZE],
  ["sendTimeout", DELAY],
  ["closeTimeout", DELAY],
  ["maxRequestBytes", SIZE],
  ["iframeStreamBytes", SIZE],
  ["keepAlive", { ...DELAY, min: 0 }],
];
// Ended sessions remembered, so that a client's next request learns the
// close instead of a 404.
const MAX_TOMBSTONES = 1024;
const HELLO: WireItem = { h: 1 };
const LOST: WireItem = { c: 1006, r: "messages were lost" };

/**
 * Makes one fetch handler that accepts WebSocket upgrades at `${path}/ws`
 * and the four Comet transports beside it (`${path}/sse`, `/poll`,
 * `/iframe`, with `/session`, `/send` and `/close`), and calls
 * `onConnection` with the same {@linkcode RealtimeConnection} shape for
 * each; `info.transport` says which. `connectRealtime()` is its client.
 *
 * Under `Deno.serve` (and `deno serve`, Deno Deploy) the WebSocket goes
 * through `upgradeWebSocket`. Under our `serve()`, pass the handler as its
 * `fetch` and `handler.accept` as its connection handler.
 *
 * @param options The path, the transports and the sessions' bounds.
 * @param onConnection Called with each new connection.
 * @returns The fetch handler.
 * @throws {RangeError | TypeError} For an option out of range, a path that
 * does not start with `/`, or an unknown transport.
 *
 * @example An echo on every transport
 * ```ts
 * import { connectRealtime, realtime } from "@seed/websocket-streams/realtime";
 * import { assertEquals } from "@std/assert";
 *
 * const handler = realtime({ path: "/rt" }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
 * const connection = await connectRealtime(
 *   `http://127.0.0.1:${server.addr.port}/rt`,
 *   { transports: ["long-polling"] },
 * );
 * assertEquals(connection.transport, "long-polling");
 * const writer = connection.writable.getWriter();
 * const reader = connection.readable.getReader();
 * await writer.write("hello");
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 * writer.releaseLock();
 * connection.close({ closeCode: 1000 });
 * await connection.closed;
 * handler.close();
 * await server.shutdown();
 * ```
 */
export function realtime(
  options: RealtimeOptions,
  onConnection: (
    connection: RealtimeConnection,
    info: RealtimeConnectionInfo,
  ) => void,
): RealtimeHandler {
  checkOptions("create realtime handler", options, OPTIONS);
  const path = options.path ?? "/rt";
  if (typeof path !== "string" || !path.startsWith("/") || path.endsWith("/")) {
    throw new TypeError(
      `Cannot create realtime handler: path must start with "/" and not end with one, not ${
        show(path)
      }`,
    );
  }
  const transports = new Set(options.transports ?? REALTIME_TRANSPORTS);
  for (const transport of transports) {
    if (!REALTIME_TRANSPORTS.includes(transport)) {
      throw new TypeError(
        `Cannot create realtime handler: unknown transport ${show(transport)}`,
      );
    }
  }
  if (typeof onConnection !== "function") {
    throw new TypeError(
      `Cannot create realtime handler: onConnection must be a function, not ${
        show(onConnection)
      }`,
    );
  }
  const limits: SessionLimits = {
    sessionTimeout: options.sessionTimeout ?? 30_000,
    writableHighWaterMark: options.writableHighWaterMark ?? 1 << 20,
    maxQueuedBytes: options.maxQueuedBytes ?? 1 << 20,
    maxReplayBytes: options.maxReplayBytes ?? 1 << 20,
    sendTimeout: options.sendTimeout ?? 30_000,
    closeTimeout: options.closeTimeout ?? 5000,
  };
  const pollTimeout = options.pollTimeout ?? 20_000;
  const maxSessions = options.maxSessions ?? 10_000;
  const maxRequestBytes = options.maxRequestBytes ?? 1 << 20;
  const iframeStreamBytes = options.iframeStreamBytes ?? 256 * 1024;
  const keepAlive = options.keepAlive ?? 15_000;
  const sessions = new Map<string, RealtimeSession>();
  const tombstones = new Map<string, WireItem>();
  let closing = false;

  const onEnd = (session: RealtimeSession) => {
    sessions.delete(session.id);
    session.closed.then(
      (info) => bury(session.id, { c: info.closeCode, r: info.reason }),
      (error) =>
        bury(session.id, {
          c: error instanceof WebSocketError ? error.closeCode ?? 1006 : 1006,
          r: error instanceof WebSocketError ? error.reason : "",
        }),
    );
  };
  const bury = (id: string, item: WireItem) => {
    tombstones.set(id, item);
    if (tombstones.size > MAX_TOMBSTONES) {
      tombstones.delete(tombstones.keys().next().value!);
    }
  };

  const call = (
    connection: RealtimeConnection,
    info: RealtimeConnectionInfo,
  ) => {
    try {
      onConnection(connection, info);
    } catch (error) {
      connection.close({ closeCode: 1011 });
      console.error(error);
    }
  };

  const handler = (async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(path + "/")) return status(404);
    const endpoint = url.pathname.slice(path.length + 1);
    if (endpoint === ENDPOINTS.websocket) {
      if (!transports.has("websocket")) return status(404);
      if (!isUpgradeRequest(request)) {
        return status(426, { upgrade: "websocket" });
      }
      const { response, connection } = upgradeWebSocket(
        request,
        options.upgrade,
      );
      call(withTransport(connection, "websocket"), {
        transport: "websocket",
        request,
      });
      return response;
    }
    if (endpoint === ENDPOINTS.session && request.method === "POST") {
      const transport = url.searchParams.get("transport") as RealtimeTransport;
      if (!transports.has(transport) || transport === "websocket") {
        return status(404);
      }
      if (closing || sessions.size >= maxSessions) return status(503);
      const id = crypto.randomUUID();
      const session = new RealtimeSession(
        id,
        transport,
        limits,
        onEnd,
      );
      sessions.set(id, session);
      call(session.connection, { transport, request });
      // sessionTimeout: a client held back by its reader keeps the session
      // alive with requests that often; maxRequestBytes: the client cuts
      // its batches to fit.
      return json({
        sid: id,
        pollTimeout,
        sessionTimeout: limits.sessionTimeout,
        maxRequestBytes,
      });
    }
    const id = url.searchParams.get("sid") ?? "";
    const session = sessions.get(id);
    const tombstone = session ? undefined : tombstones.get(id);
    if (!session && !tombstone) return status(404);
    switch (endpoint) {
      case ENDPOINTS.sse: {
        if (request.method !== "GET") return status(405);
        const ack = Number(
          request.headers.get("last-event-id") || url.searchParams.get("ack") ||
            0,
        );
        return sseResponse(
          downstream(session, tombstone, ack, Infinity).pipeThrough(
            new TransformStream<WireItem, ServerSentEvent>({
              transform(item, controller) {
                controller.enqueue(
                  "i" in item
                    ? { id: String(item.i), data: JSON.stringify(item.m) }
                    // An event with empty data is never dispatched (HTML
                    // §9.2.6), so the hello carries one.
                    : {
                      event: "c" in item ? "close" : "open",
                      data: JSON.stringify(item),
                    },
                );
              },
            }),
          ),
          { keepAlive },
        );
      }
      case ENDPOINTS.iframe: {
        if (request.method !== "GET") return status(405);
        const callback = url.searchParams.get("cb") ?? "";
        if (!CALLBACK_NAME.test(callback)) return status(400);
        const ack = Number(url.searchParams.get("ack") ?? 0);
        return iframeResponse(
          downstream(session, tombstone, ack, iframeStreamBytes),
          { callback, keepAlive },
        );
      }
      case ENDPOINTS.poll: {
        if (request.method !== "GET") return status(405);
        if (!session) return json({ items: [tombstone] });
        const ack = Number(url.searchParams.get("ack") ?? 0);
        const token = session.attach(ack);
        if (token === "lost") return status(410);
        try {
          const wait = url.searchParams.get("wait") === "0" ? 0 : pollTimeout;
          // Not request.signal: Deno.serve aborts it after every response.
          // A poll whose client left ends at pollTimeout, or when the next
          // poll replaces it.
          const taken = await session.take(token, wait, undefined, true);
          return json({ items: taken === "lost" ? [] : taken.items });
        } finally {
          session.release();
        }
      }
      case ENDPOINTS.send: {
        if (request.method !== "POST") return status(405);
        if (!session) return status(404);
        const body = await readJson(request, maxRequestBytes);
        if (body === TOO_LARGE) return status(413);
        const { seq, m } = (body ?? {}) as { seq?: unknown; m?: unknown };
        if (!Number.isSafeInteger(seq) || !Array.isArray(m)) {
          return status(400);
        }
        return json({ ack: session.receive(seq as number, m) });
      }
      case ENDPOINTS.close: {
        if (request.method !== "POST") return status(405);
        const body = await readJson(request, 4096);
        const { c, r, w } = (body ?? {}) as {
          c?: unknown;
          r?: unknown;
          w?: unknown;
        };
        const closeCode = typeof c === "number" ? c : 1005;
        const reason = typeof r === "string" ? r : "";
        // `w: 1`: the client reads on until our close item, as after a
        // WebSocket's close (RFC 6455 §1.4): what the application wrote
        // before this still goes down first. An older client sends no
        // `w` and is gone: the session ends now.
        if (w === 1) session?.closeRequested(closeCode, reason);
        else session?.closeReceived(closeCode, reason);
        return status(204);
      }
    }
    return status(404);
  }) as RealtimeHandler;

  // The items after `ack` as a pull-based stream, for SSE and iframe; it
  // ends after the close item, or after `maxBytes` (the client reconnects).
  function downstream(
    session: RealtimeSession | undefined,
    tombstone: WireItem | undefined,
    ack: number,
    maxBytes: number,
  ): ReadableStream<WireItem> {
    if (!session) return ReadableStream.from([HELLO, tombstone!]);
    const token = session.attach(ack);
    if (token === "lost") return ReadableStream.from([HELLO, LOST]);
    const abort = new AbortController();
    let bytes = 0;
    let detached = false;
    const detach = () => {
      if (detached) return;
      detached = true;
      session.release();
    };
    return new ReadableStream<WireItem>({
      start(controller) {
        controller.enqueue(HELLO);
      },
      async pull(controller) {
        while (true) {
          const taken = await session.take(token, 2 ** 31 - 1, abort.signal);
          if (taken === "lost") break;
          for (const item of taken.items) {
            controller.enqueue(item);
            bytes += "i" in item ? JSON.stringify(item.m).length : 0;
          }
          if (taken.done || bytes >= maxBytes) break;
          if (taken.items.length > 0) return;
        }
        detach();
        controller.close();
      },
      cancel() {
        abort.abort();
        detach();
      },
    }, { highWaterMark: 0 });
  }

  handler.accept = (connection, request) => {
    call(withTransport(connection, "websocket"), {
      transport: "websocket",
      request,
    });
  };
  Object.defineProperty(handler, "sessions", { get: () => sessions.size });
  handler.close = () => {
    closing = true;
    for (const session of [...sessions.values()]) {
      session.fail(
        new WebSocketError("Cannot keep session: the server is going away", {
          code: "ERR_ABNORMAL_CLOSURE",
          closeCode: 1001,
        }),
      );
    }
  };
  return handler;
}

// The WebSocket connection, with the transport's name beside it.
function withTransport(
  connection: Pick<
    RealtimeConnection,
    "readable" | "writable" | "closed" | "close"
  >,
  transport: RealtimeTransport,
): RealtimeConnection {
  return {
    readable: connection.readable,
    writable: connection.writable as WritableStream<MessageData>,
    closed: connection.closed as Promise<RealtimeCloseInfo>,
    transport,
    close: (options) => connection.close(options),
  };
}

function status(code: number, headers?: HeadersInit): Response {
  return new Response(null, { status: code, headers });
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
    },
  });
}

const TOO_LARGE = Symbol("too large");

// Reads a JSON body of at most `max` bytes; undefined when it does not parse.
async function readJson(
  request: Request,
  max: number,
): Promise<unknown | typeof TOO_LARGE> {
  const text = await readBody(request, max);
  if (text === undefined) return TOO_LARGE;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
