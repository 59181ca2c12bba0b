/**
 * {@linkcode serve}: a WebSocket server on `Deno.listen` / `Deno.listenTls`.
 *
 * @module
 */

import {
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_MAX_HEADER_SIZE,
  readHttpHead,
} from "./_http.ts";
import { ConnTransport, type Transport } from "./_transport.ts";
import { NodeSocketTransport } from "./_node_transport.ts";
import { DEFAULT_MAX_BODY_SIZE, PlainHttp } from "./_http_server.ts";
import {
  checkAllowedOrigins,
  checkConnectionOptions,
  checkDeflateChoice,
  checkOptions,
  HANDSHAKE,
  PORT,
} from "../_options.ts";
import { acceptOn, type AcceptOptions, rejectOn } from "./accept.ts";
import {
  DEFAULT_SEND_TIMEOUT,
  finishListeners,
  type WebSocketConnection,
} from "./connection.ts";
import {
  HandshakeRejection,
  validateUpgradeRequest,
} from "../handshake/server.ts";
import { hasToken } from "../handshake/extensions.ts";

/**
 * What `onUpgrade` decides for one request: accept (with a subprotocol and
 * response headers), or refuse with a status from 300 to 599, a short body
 * and headers (`WWW-Authenticate` with 401, `Location` with a redirect,
 * `Retry-After` with 429 or 503). A refusal with any other status is the
 * handler's fault: the client gets 500 and `onError` the reason.
 */
export type UpgradeDecision =
  | { protocol?: string; headers?: HeadersInit }
  | { reject: number; body?: string; headers?: HeadersInit };

/** Options for {@linkcode serve}. */
export interface ServeOptions extends Omit<AcceptOptions, "head"> {
  /**
   * The port to listen on, an integer from 0 to 65535; 0 picks a free one.
   *
   * @default {8080}
   */
  port?: number;
  /**
   * The address to listen on.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /** PEM certificate and key: serve `wss://` with `Deno.listenTls`. */
  tls?: { cert: string; key: string };
  /** Aborting it shuts the server down, as {@linkcode WebSocketServer.shutdown}. */
  signal?: AbortSignal;
  /**
   * The most WebSocket connections open at once. An upgrade past it gets
   * `503 Service Unavailable` with `Retry-After: 1`, before any WebSocket
   * state is made; the count goes down as connections end.
   *
   * @default {Infinity}
   */
  maxConnections?: number;
  /**
   * Called once the server listens.
   *
   * @default {logs "Listening on ws://host:port/"}
   */
  onListen?: (addr: Deno.NetAddr) => void;
  /**
   * The largest request head accepted, in bytes (a positive integer); a
   * larger one gets 431.
   *
   * @default {16384 (16 KiB)}
   */
  maxHeaderSize?: number;
  /**
   * Milliseconds a client has to send its whole request head (against
   * slowloris), from 1 to 2147483647 (2^31 - 1, the longest timer); past it
   * the socket is closed. On a kept-alive plain HTTP connection it bounds
   * each later head too, from its first byte (the idle wait before that
   * byte is node:http's keep-alive timeout, 5 s), and each wait for the
   * next bytes of a request body that `fetch` is reading: past it the body
   * stream errors with `ERR_BODY_TIMEOUT`, the client gets
   * `408 Request Timeout` (if no response has started) and the connection
   * closes.
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * Milliseconds that bytes may wait for the client to take any of them (a
   * peer that stops reading). For a WebSocket, past it the transport is
   * closed and `closed` rejects with `ERR_SEND_TIMEOUT`. For a plain HTTP
   * response, past it the connection is closed, the response's stream is
   * cancelled and the request's `signal` aborts.
   *
   * @default {30000}
   */
  sendTimeout?: number;
  /**
   * Decides each valid upgrade request before it is answered: accept with a
   * subprotocol and response headers, or reject with a status and headers
   * (see {@linkcode UpgradeDecision}). This is where authentication goes.
   * If it throws, the client gets 500 and `onError` the error.
   *
   * @default {accept every request}
   */
  onUpgrade?: (
    request: Request,
    info: { protocols: string[]; remoteAddr: Deno.NetAddr },
  ) => UpgradeDecision | void | Promise<UpgradeDecision | void>;
  /**
   * Answers requests that are not WebSocket upgrades, on the same port:
   * a fetch-style `Request` in (its body streamed, up to `maxBodySize`),
   * a `Response` out (its body streamed as it is produced, with
   * backpressure). A real HTTP/1.1 server (`node:http`) runs these
   * connections: keep-alive, pipelining, chunked bodies both ways, and a
   * WebSocket upgrade later on the same connection. The request's
   * `signal` aborts when the client goes away or the server shuts down.
   * Without `fetch`, such requests get 426 Upgrade Required.
   *
   * @default {none}
   */
  fetch?: (request: Request) => Response | Promise<Response>;
  /**
   * The largest request body `fetch` is given, in bytes (a non-negative
   * integer, or `Infinity` for none). A larger `Content-Length` gets
   * `413 Payload Too Large` before `fetch` is called; a chunked body that
   * grows past it errors the request's body stream
   * (`ERR_BODY_TOO_LARGE`) and gets 413 if no response has started.
   * Either way the connection then closes.
   *
   * @default {1048576 (1 MiB)}
   */
  maxBodySize?: number;
  /**
   * Called with errors of handlers and handshakes that have no caller to
   * reach. Clients' failures (a refused or timed-out handshake, a plain
   * request node:http cannot parse, a body or head that stops arriving, a
   * client that resets or stops reading) are handshake failures here;
   * errors thrown by `handler` or `fetch`, or by a response's stream, are
   * handler errors.
   *
   * @default {ignore handshake failures; log handler errors}
   */
  onError?: (error: unknown) => void;
}

/** A running server. */
export interface WebSocketServer {
  /** The address the server listens on. */
  readonly addr: Deno.NetAddr;
  /** Resolves once the server has shut down and every connection ended. */
  readonly finished: Promise<void>;
  /** The number of open WebSocket connections. */
  readonly connections: number;
  /**
   * Stops accepting, closes every connection with 1001 (going away), and
   * resolves when they have all ended.
   */
  shutdown(): Promise<void>;
}

/**
 * Serves WebSocket connections on TCP (or TLS). For each TCP connection it
 * reads the request head (bounded: `maxHeaderSize`, `handshakeTimeout`),
 * validates the handshake and the `Origin` (`allowedOrigins`), asks
 * `onUpgrade`, answers 101 and calls `handler(connection, request)`.
 * Requests that are not upgrades go to `fetch` through a real HTTP/1.1
 * server (`node:http`: keep-alive, pipelining, streamed bodies both ways),
 * or get 426.
 *
 * @param options Where to listen, TLS, the handshake hooks and limits, and
 * the connection options.
 * @param handler Called with each open connection.
 * @returns The running server.
 * @throws {RangeError | TypeError} For an option out of its range, or not
 * a number, before listening.
 *
 * @example An echo server
 * ```ts
 * import { connect, serve } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const client = await connect(`ws://127.0.0.1:${server.addr.port}/`);
 * const writer = client.writable.getWriter();
 * await writer.write("ping?");
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "ping?");
 * reader.releaseLock();
 * writer.releaseLock();
 * client.close();
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export function serve(
  options: ServeOptions,
  handler: (
    connection: WebSocketConnection,
    request: Request,
  ) => void | Promise<void>,
): WebSocketServer {
  checkOptions("serve", options, PORT);
  checkOptions("serve", options, [["maxConnections", {
    min: 0,
    infinity: true,
  }]]);
  checkOptions("serve", options, HANDSHAKE);
  checkConnectionOptions("serve", options);
  checkOptions("serve", options, [["maxBodySize", {
    min: 0,
    infinity: true,
  }]]);
  checkDeflateChoice("serve", options.perMessageDeflate);
  checkAllowedOrigins("serve", options.allowedOrigins);
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8080;
  const listener = options.tls
    ? Deno.listenTls({
      hostname,
      port,
      cert: options.tls.cert,
      key: options.tls.key,
    })
    : Deno.listen({ hostname, port });
  const addr = listener.addr as Deno.NetAddr;
  const scheme = options.tls ? "wss" : "ws";
  (options.onListen ??
    ((a) => console.log(`Listening on ${scheme}://${a.hostname}:${a.port}/`)))(
      addr,
    );
  // The user's onError may throw: that must neither skip what follows it
  // nor become an unhandled rejection that ends the process.
  const report = (error: unknown, fallback: (error: unknown) => void) => {
    try {
      (options.onError ?? fallback)(error);
    } catch (failure) {
      console.error(failure);
    }
  };
  const onError = (error: unknown) => report(error, () => {});
  const live = new Set<WebSocketConnection>();
  // One listener for all connections: no closure or promise per connection.
  const forget = (connection: object) =>
    live.delete(connection as WebSocketConnection);
  const pending = new Set<Transport>();
  const maxConnections = options.maxConnections ?? Infinity;
  // Upgrades past the cap check whose connection is not live yet.
  let accepting = 0;
  const tasks = new Set<Promise<void>>();
  let stopping = false;

  const track = (task: Promise<void>) => {
    tasks.add(task);
    // Never rejects: handle() reports its errors; this is the last guard.
    task.catch((error) => report(error, console.error))
      .finally(() => tasks.delete(task));
  };

  // The decision and the 101 on a transport whose request head has been
  // read: a Deno.Conn (the fast path), or a node:http connection that asks
  // to upgrade after plain requests. Refusals are answered here.
  const upgradeOn = async (
    transport: Transport,
    request: Request,
    rest: Uint8Array,
    remoteAddr: Deno.NetAddr,
  ): Promise<WebSocketConnection | void> => {
    pending.add(transport);
    try {
      // 400, 426, and 403 for a browser origin that is not allowed, before
      // onUpgrade: no application code runs for a hijacking page.
      const info = validateUpgradeRequest(request, options);
      let decision: UpgradeDecision | void;
      try {
        decision = await options.onUpgrade?.(request, {
          protocols: info.protocols,
          remoteAddr,
        });
        if (decision && "reject" in decision) throw refusal(decision);
      } catch (error) {
        if (error instanceof HandshakeRejection) throw error;
        // The application's fault, not the client's: 500 (RFC 9110
        // §15.6.1), and onError hears why.
        onError(error);
        throw new HandshakeRejection(500, "Cannot upgrade: internal error");
      }
      if (stopping) {
        throw new HandshakeRejection(
          503,
          "Cannot upgrade: the server is shutting down",
        );
      }
      // Counted with the handshakes under way past this point, so that a
      // burst cannot overshoot the cap.
      if (live.size + accepting >= maxConnections) {
        throw new HandshakeRejection(
          503,
          `Cannot upgrade: the server has ${maxConnections} connections open`,
          { "Retry-After": "1" },
        );
      }
      accepting++;
      try {
        const connection = await acceptOn(transport, request, {
          ...options,
          protocol: decision?.protocol ?? options.protocol,
          headers: decision?.headers ?? options.headers,
          head: rest,
        });
        // Live from here, in the same turn as the cap check's count.
        live.add(connection);
        finishListeners.set(connection, forget);
        return connection;
      } finally {
        accepting--;
      }
    } catch (error) {
      if (error instanceof HandshakeRejection) await rejectOn(transport, error);
      else transport.close();
      onError(error);
    } finally {
      pending.delete(transport);
    }
  };

  const plain = options.fetch
    ? new PlainHttp({
      fetch: options.fetch,
      scheme: options.tls ? "https" : "http",
      fallbackHost: `${addr.hostname}:${addr.port}`,
      maxBodySize: options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE,
      maxHeaderSize: options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
      headTimeout: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
      sendTimeout: options.sendTimeout ?? DEFAULT_SEND_TIMEOUT,
      report: (error) => report(error, console.error),
      reportClient: onError,
      upgrade: (request, socket, head) => {
        const remote = socket as {
          remoteAddress?: string;
          remotePort?: number;
        };
        track(
          (async () => {
            const connection = await upgradeOn(
              new NodeSocketTransport(socket),
              request,
              head,
              {
                transport: "tcp",
                hostname: remote.remoteAddress ?? "",
                port: remote.remotePort ?? 0,
              },
            );
            if (connection) await run(connection, request);
          })(),
        );
      },
    })
    : undefined;

  // The first request head of a connection, read by us: an upgrade takes
  // the fast path, anything else goes to the HTTP server (or gets 426).
  // Apart from the connection's life: its locals (the request, its
  // headers, the head) are then not pinned for as long as the connection
  // lives by a suspended frame.
  const upgrade = async (
    conn: Deno.Conn,
  ): Promise<{ connection: WebSocketConnection; request: Request } | void> => {
    if (!options.tls) {
      try {
        // Nagle's algorithm meeting delayed ACKs costs tens of ms per round
        // trip (../shared/notes/peers.md).
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not a TCP socket.
      }
    }
    const transport = new ConnTransport(conn);
    pending.add(transport);
    let head;
    let request: Request;
    try {
      head = await readHttpHead(
        transport,
        options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
        options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
      );
      if (!hasToken(head.headers.get("upgrade"), "websocket")) {
        pending.delete(transport);
        if (plain) await plain.serve(conn, head.bytes);
        else await rejectOn(transport, UPGRADE_REQUIRED);
        return;
      }
      const [method, target, version] = head.start;
      if (version !== "HTTP/1.1") {
        throw new HandshakeRejection(
          400,
          `Cannot upgrade: the protocol is ${version}, not HTTP/1.1`,
        );
      }
      const host = head.headers.get("host") ?? addr.hostname;
      try {
        // An upgrade's target is origin-form (RFC 6455 §4.1: the path
        // and query), never pasted after the Host unchecked.
        if (!target?.startsWith("/")) throw new TypeError("not origin-form");
        request = new Request(
          `${options.tls ? "https" : "http"}://${host}${target}`,
          {
            method,
            headers: head.headers,
          },
        );
      } catch {
        // A Host or a request target that makes no URL, or a method that
        // is no token: the request is malformed (RFC 7230 §5.4), not ours.
        throw new HandshakeRejection(
          400,
          `Cannot upgrade: the request target or Host makes no URL`,
        );
      }
    } catch (error) {
      if (error instanceof HandshakeRejection) await rejectOn(transport, error);
      else transport.close();
      onError(error);
      return;
    } finally {
      pending.delete(transport);
    }
    const connection = await upgradeOn(
      transport,
      request,
      head.rest,
      conn.remoteAddr as Deno.NetAddr,
    );
    if (connection) return { connection, request };
  };

  const run = async (connection: WebSocketConnection, request: Request) => {
    try {
      await handler(connection, request);
    } catch (error) {
      // RFC 6455 §7.4.1: 1011, an unexpected condition on our side.
      connection.close({ closeCode: 1011, reason: "internal error" });
      report(error, console.error);
    }
  };

  const handle = async (conn: Deno.Conn) => {
    let accepted = await upgrade(conn);
    if (!accepted) return;
    const connection = accepted.connection;
    try {
      const handling = handler(connection, accepted.request);
      // The request is the handler's now.
      accepted = undefined;
      await handling;
    } catch (error) {
      // RFC 6455 §7.4.1: 1011, an unexpected condition on our side.
      connection.close({ closeCode: 1011, reason: "internal error" });
      report(error, console.error);
    }
    // Not awaiting `closed` here: an idle connection then keeps no frame
    // of ours alive; shutdown() waits on the live set instead.
  };

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // The listener was closed.
      }
      track(handle(conn));
    }
  })();

  let finishing: Promise<void> | undefined;
  const shutdown = () => {
    finishing ??= (async () => {
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await acceptLoop;
      for (const transport of pending) transport.close();
      if (plain) track(plain.shutdown());
      for (const connection of live) {
        connection.close({ closeCode: 1001, reason: "server shutting down" });
      }
      while (tasks.size > 0 || live.size > 0) {
        await Promise.allSettled([
          ...tasks,
          ...[...live].map((connection) => connection.closed),
        ]);
      }
    })();
    return finishing;
  };
  options.signal?.addEventListener("abort", () => shutdown(), { once: true });
  if (options.signal?.aborted) shutdown();

  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  acceptLoop.then(() => shutdown()).then(resolveFinished);

  return {
    addr,
    finished,
    get connections() {
      return live.size;
    },
    shutdown: () => shutdown().then(() => finished),
  };
}

const UPGRADE_REQUIRED = new HandshakeRejection(
  426,
  "Upgrade Required: this is a WebSocket endpoint",
  {
    upgrade: "websocket",
    "sec-websocket-version": "13",
  },
);

// onUpgrade's refusal as a response. A status that is no refusal (a 1xx or
// 2xx would read as an answer to the upgrade) is the handler's error: 500.
function refusal(
  decision: { reject: number; body?: string; headers?: HeadersInit },
): HandshakeRejection {
  const status = decision.reject;
  if (!Number.isInteger(status) || status < 300 || status > 599) {
    throw new RangeError(
      `Cannot refuse the upgrade: onUpgrade's reject must be an integer from 300 to 599, not ${status}`,
    );
  }
  // new Headers() refuses names and values that would split the response.
  const headers: Record<string, string> = {};
  new Headers(decision.headers).forEach((value, name) => {
    headers[name] = value;
  });
  return new HandshakeRejection(
    status,
    decision.body ?? "Cannot upgrade: refused by the server",
    headers,
  );
}
