// Plain HTTP beside WebSocket on serve()'s port. serve() reads each
// connection's first head itself (the WebSocket fast path, on Deno.Conn);
// any other request goes, with the bytes already read pushed back, to a
// node:http Server through `emit("connection", duplex)`. node:http then
// owns the connection: keep-alive, pipelining, chunked bodies both ways,
// HEAD, Expect: 100-continue. This file adapts its (req, res) to a
// fetch-style Request in and a streamed Response out.
//
// Why not node:http for every request, upgrades included: measured on the
// small-message scenario (bench/e2e/ab.ts, issue #15), a WebSocket over
// node:http's upgraded socket cost 40% of the throughput and 70% more CPU
// per message than over the Deno.Conn read directly.

import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { WebSocketError } from "../errors.ts";
import type { ConnDuplex } from "./_conn_duplex.ts";

/** The default limit on a plain request's body: 1 MiB. */
export const DEFAULT_MAX_BODY_SIZE = 1024 * 1024;
// How long shutdown() gives a cut-short response to be flushed before the
// socket is destroyed.
const SHUTDOWN_FLUSH = 1000;

export interface PlainHttpOptions {
  fetch: (request: Request) => Response | Promise<Response>;
  scheme: "http" | "https";
  fallbackHost: string;
  maxBodySize: number;
  maxHeaderSize: number;
  /**
   * Milliseconds for a request head to arrive once its first byte has, and
   * the longest wait for the next bytes of a body being read (handshakeTimeout).
   */
  headTimeout: number;
  /** Milliseconds a response may wait with the client taking no bytes. */
  sendTimeout: number;
  /** Errors of handlers: logged by default. */
  report: (error: unknown) => void;
  /** Errors of clients (malformed requests, resets): ignored by default. */
  reportClient: (error: unknown) => void;
  /** An upgrade request on a connection node:http already serves. */
  upgrade: (request: Request, socket: Duplex, head: Uint8Array) => void;
}

// A connection node:http serves, and the timers node:http does not run for
// it (its headersTimeout and requestTimeout need a server that listens).
interface Connection {
  exchanges: Set<Exchange>;
  /** Requests whose body is still arriving. */
  receiving: number;
  /** Runs from a head's first byte until node:http has parsed the head. */
  headTimer: ReturnType<typeof setTimeout> | undefined;
  /** An upgrade held until the exchanges before it have ended. */
  idle?: () => void;
}

interface Exchange {
  response: ServerResponse;
  reader?: ReadableStreamDefaultReader<Uint8Array>;
  abort: AbortController;
}

/** The node:http side of serve(): made on the first plain request. */
export class PlainHttp {
  #options: PlainHttpOptions;
  #server:
    | Promise<{ server: Server; Socket: typeof ConnDuplex }>
    | undefined;
  #sockets = new Set<ConnDuplex>();
  #connections = new Map<ConnDuplex, Connection>();
  #stopping = false;

  constructor(options: PlainHttpOptions) {
    this.#options = options;
  }

  /** Connections open now (for tests and shutdown). */
  get size(): number {
    return this.#sockets.size;
  }

  // node:http and node:stream load with the first plain request: a server
  // of WebSockets alone never loads them.
  #start(): Promise<{ server: Server; Socket: typeof ConnDuplex }> {
    return this.#server ??= Promise.all([
      import("node:http"),
      import("./_conn_duplex.ts"),
    ]).then(([http, { ConnDuplex }]) => {
      const server = http.createServer({
        maxHeaderSize: this.#options.maxHeaderSize,
        // Node checks headersTimeout and requestTimeout only for a server
        // that listens itself (its connections interval); the keep-alive
        // idle timeout does apply (ConnDuplex.setTimeout).
      }, (req, res) => {
        this.#serve(req, res).catch((error) => this.#options.report(error));
      });
      // The server listens on nothing of its own (serve() hands it each
      // connection), and node:http closes a kept-alive connection after a
      // response when its server is not listening. It is listening, through
      // serve(), until shutdown.
      Object.defineProperty(server, "listening", {
        get: () => !this.#stopping,
      });
      // node:http emits "upgrade" from its socket's "data" handler: a throw
      // here would be an unhandled rejection, and end the process.
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head) => {
        if (!(socket instanceof ConnDuplex)) return;
        socket.upgraded = true;
        const connection = this.#connections.get(socket);
        if (connection) {
          clearTimeout(connection.headTimer);
          connection.headTimer = undefined;
        }
        const go = () => {
          if (socket.destroyed) return;
          // node:http re-arms its keep-alive timer as an earlier response
          // finishes; the WebSocket has timers of its own.
          socket.setTimeout(0);
          let request;
          try {
            request = this.#request(req, null);
          } catch (error) {
            // A Host or target that makes no URL, or a method Request
            // refuses (TRACE): malformed for us (RFC 9110 §15.5.1).
            refuse(socket, 400, "the request target or Host makes no URL");
            this.#options.reportClient(error);
            return;
          }
          this.#options.upgrade(request, socket, head);
        };
        // node:http parses a pipelined upgrade while the responses before
        // it are still under way: the 101 (or a refusal) goes out once
        // they have all been written, not in the middle of them.
        this.#whenIdle(socket, connection, go);
      });
      // With a listener here node:http answers nothing itself: a request
      // it cannot parse gets the status node:http would give it (after the
      // responses before it), then the connection ends. A reset or a
      // closed socket gets nothing.
      server.on("clientError", (error: unknown, socket: Duplex) => {
        const code = (error as { code?: unknown } | null)?.code;
        // A client's failure, not the server's: onError, quiet by default.
        this.#options.reportClient(error);
        if (
          !(socket instanceof ConnDuplex) || !socket.writable ||
          typeof code !== "string" || !code.startsWith("HPE_")
        ) {
          socket.destroy();
          return;
        }
        // After the responses to the requests before it, in order.
        this.#whenIdle(socket, this.#connections.get(socket), () => {
          if (code === "HPE_HEADER_OVERFLOW") {
            refuse(socket, 431, "the request head is too large");
          } else refuse(socket, 400, "the request could not be parsed");
        });
      });
      return { server, Socket: ConnDuplex };
    });
  }

  /**
   * Hands a connection to node:http, with the bytes already read from it.
   * Resolves once the connection has closed.
   */
  async serve(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
    let started;
    try {
      started = await this.#start();
    } catch (error) {
      conn.close();
      throw error;
    }
    if (this.#stopping) {
      conn.close();
      return;
    }
    const socket = new started.Socket(conn, bytes);
    this.#sockets.add(socket);
    const connection: Connection = {
      exchanges: new Set(),
      receiving: 0,
      headTimer: undefined,
    };
    this.#connections.set(socket, connection);
    socket.onRead = () => this.#bytesIn(socket, connection);
    const closed = new Promise<void>((resolve) =>
      socket.once("close", () => {
        clearTimeout(connection.headTimer);
        this.#sockets.delete(socket);
        this.#connections.delete(socket);
        resolve();
      })
    );
    started.server.emit("connection", socket);
    await closed;
  }

  // Runs `then` once every response on the connection has been written,
  // for answers written straight to the socket, which node:http no longer
  // orders; the connection ends if that takes longer than headTimeout.
  #whenIdle(
    socket: ConnDuplex,
    connection: Connection | undefined,
    then: () => void,
  ): void {
    const go = () => {
      if (socket.destroyed) return;
      then();
    };
    if (!connection || connection.exchanges.size === 0) return go();
    const limit = this.#options.headTimeout;
    const timer = setTimeout(() => {
      connection.idle = undefined;
      socket.destroy();
      this.#options.reportClient(
        new WebSocketError(
          `Cannot answer request: the responses before it took longer than handshakeTimeout (${limit} ms)`,
          { code: "ERR_HANDSHAKE_TIMEOUT" },
        ),
      );
    }, limit);
    socket.once("close", () => clearTimeout(timer));
    connection.idle = () => {
      clearTimeout(timer);
      go();
    };
  }

  // Bytes with no request whose body is arriving start a head: it has
  // headTimeout to be whole. node:http bounds only the idle wait before a
  // head's first byte (keepAliveTimeout), and disarms it on that byte.
  #bytesIn(socket: ConnDuplex, connection: Connection): void {
    if (
      connection.headTimer !== undefined || connection.receiving > 0 ||
      socket.upgraded
    ) return;
    const limit = this.#options.headTimeout;
    const expire = () => {
      connection.headTimer = undefined;
      if (socket.upgraded || socket.destroyed) return;
      // Pipelined behind responses under way (each bounded itself): node:http
      // may not parse it until they are done.
      if (connection.exchanges.size > 0) {
        connection.headTimer = setTimeout(expire, limit);
        return;
      }
      socket.destroy();
      this.#options.reportClient(
        new WebSocketError(
          `Cannot read request head: it took longer than handshakeTimeout (${limit} ms)`,
          { code: "ERR_HANDSHAKE_TIMEOUT" },
        ),
      );
    };
    connection.headTimer = setTimeout(expire, limit);
  }

  #request(req: IncomingMessage, body: ReadableStream<Uint8Array> | null) {
    const headers = new Headers();
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      try {
        headers.append(raw[i]!, raw[i + 1]!);
      } catch {
        // node:http has checked the grammar; a value Headers refuses is
        // dropped rather than failing the request.
      }
    }
    const host = req.headers.host ?? this.#options.fallbackHost;
    return new Request(requestUrl(this.#options.scheme, host, req.url), {
      method: req.method,
      headers,
      body,
      // A streamed request body (fetch's half duplex).
      ...(body ? { duplex: "half" } : {}),
    } as RequestInit);
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as unknown as ConnDuplex;
    const connection = this.#connections.get(socket)!;
    clearTimeout(connection.headTimer);
    connection.headTimer = undefined;
    // Every response, those answered here too: a held upgrade waits for
    // them all.
    const exchange: Exchange = { response: res, abort: new AbortController() };
    const exchanges = connection.exchanges;
    exchanges.add(exchange);
    // The client went away, or shutdown() cut the response: stop the
    // application's stream and tell its handler.
    res.once("close", () => {
      exchanges.delete(exchange);
      const idle = connection.idle;
      if (exchanges.size === 0 && idle) {
        connection.idle = undefined;
        idle();
      }
      exchange.abort.abort();
      exchange.reader?.cancel().catch(() => {});
    });
    if (this.#stopping) {
      res.writeHead(503, { connection: "close", "retry-after": "1" });
      res.end("Service Unavailable: the server is shutting down\n");
      return;
    }
    const limit = this.#options.maxBodySize;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      tooLarge(res, limit);
      return;
    }
    const hasBody = req.headers["transfer-encoding"] !== undefined ||
      declared > 0;
    let body = null;
    if (hasBody) {
      connection.receiving++;
      const { stream, discard } = bodyStream(req, {
        limit,
        timeout: this.#options.headTimeout,
        onTooLarge: () => {
          if (!res.headersSent) tooLarge(res, limit);
        },
        onTimeout: (error) => {
          // RFC 9110 §15.5.9: 408, and the connection closes.
          if (res.headersSent) res.destroy();
          else {
            res.writeHead(408, {
              "content-type": "text/plain; charset=utf-8",
              connection: "close",
            });
            res.end(`Request Timeout: ${error.message}\n`);
          }
          this.#options.reportClient(error);
        },
        onDone: () => connection.receiving--,
      });
      body = stream;
      res.once("finish", discard);
    }
    if (!hasBody) req.resume();
    let request;
    try {
      request = this.#request(req, body);
    } catch {
      res.writeHead(400, { connection: "close" });
      res.end("Bad Request: the request target or Host makes no URL\n");
      return;
    }
    let response: Response;
    try {
      response = await this.#options.fetch(
        new Request(request, { signal: exchange.abort.signal }),
      );
      if (!(response instanceof Response)) {
        throw new TypeError(
          `Cannot answer request: fetch returned ${typeof response}, not a Response`,
        );
      }
    } catch (error) {
      if (res.headersSent || res.destroyed) return; // 413 answered, or gone
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("Internal Server Error\n");
      this.#options.report(error);
      return;
    }
    if (res.headersSent || res.destroyed) {
      // Answered already (413), or the client has gone.
      response.body?.cancel().catch(() => {});
      return;
    }
    await this.#respond(exchange, response, socket);
  }

  async #respond(
    exchange: Exchange,
    response: Response,
    socket: ConnDuplex,
  ): Promise<void> {
    const res = exchange.response;
    const head: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => {
      if (name !== "set-cookie") head[name] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) head["set-cookie"] = cookies;
    res.writeHead(response.status, response.statusText || undefined, head);
    if (response.body === null) {
      res.end();
      return;
    }
    // Out now, not with the first chunk: a stream of events may send its
    // first one much later.
    res.flushHeaders();
    const reader = response.body.getReader();
    exchange.reader = reader;
    if (res.destroyed) reader.cancel().catch(() => {});
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        if (res.destroyed) return;
        // Backpressure: no next chunk until the socket has taken this one.
        if (!res.write(value)) await this.#sent(res, socket, "drain");
      }
      if (!res.destroyed) res.end();
      if (!res.writableFinished) await this.#sent(res, socket, "finish");
    } catch (error) {
      // The stream failed part-way: the client must not take a truncated
      // body for a whole one, so the connection ends without the last chunk.
      res.destroy();
      if (!res.destroyed || !this.#stopping) this.#options.report(error);
    }
  }

  // Waits for the socket to take what res holds ("drain"), or all of it
  // ("finish"). A client that takes no bytes for sendTimeout is cut off:
  // the close cancels the response's stream.
  #sent(
    res: ServerResponse,
    socket: ConnDuplex,
    event: "drain" | "finish",
  ): Promise<void> {
    const limit = this.#options.sendTimeout;
    const since = Date.now();
    if (res.destroyed || res.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        const idle = Date.now() - Math.max(since, socket.writtenAt);
        if (idle < limit) {
          timer = setTimeout(check, limit - idle);
          return;
        }
        done();
        res.destroy();
        this.#options.reportClient(
          new WebSocketError(
            `Cannot send response: the client took no bytes for sendTimeout (${limit} ms)`,
            { code: "ERR_SEND_TIMEOUT" },
          ),
        );
      };
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        res.off(event, done);
        res.off("close", done);
        resolve();
      };
      res.on(event, done);
      res.on("close", done);
      timer = setTimeout(check, limit);
    });
  }

  /**
   * Ends every exchange: idle connections at once; responses under way are
   * cut (their streams cancelled, the chunked body ended cleanly where it
   * can be) and their connections closed. Resolves when all are closed.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    (await this.#server)?.server.close();
    const closing: Promise<unknown>[] = [];
    for (const socket of this.#sockets) {
      if (socket.upgraded) continue; // a WebSocket: serve() closes it
      closing.push(new Promise((resolve) => socket.once("close", resolve)));
      const exchanges = this.#connections.get(socket)?.exchanges;
      if (!exchanges || exchanges.size === 0) {
        socket.destroy();
        continue;
      }
      for (const { response, reader, abort } of exchanges) {
        abort.abort();
        reader?.cancel().catch(() => {});
        // A chunked body gets its last chunk: the client sees an end.
        if (response.headersSent && !response.writableEnded) response.end();
      }
      const timer = setTimeout(() => socket.destroy(), SHUTDOWN_FLUSH);
      socket.once("close", () => clearTimeout(timer));
      socket.end();
    }
    await Promise.all(closing);
  }
}

/**
 * The URL of a request from its target and Host. Only origin-form
 * (`/path?query`) and absolute-form (`http://host/path`, whose authority
 * then wins over Host: RFC 9112 §3.2.2) make one: anything else pasted
 * after the Host would change the URL's authority (`@evil.example/x`
 * makes `http://a@evil.example/x`, `.evil.example/x` makes
 * `http://a.evil.example/x`).
 *
 * @throws {TypeError} For another form of target, or a Host or target
 * that makes no URL.
 */
export function requestUrl(
  scheme: string,
  host: string,
  target: string | undefined,
): string {
  if (target?.startsWith("/")) return `${scheme}://${host}${target}`;
  if (target !== undefined && /^https?:\/\//i.test(target)) {
    return new URL(target).href;
  }
  throw new TypeError(
    `Cannot make a URL: the request target ${
      JSON.stringify(target)
    } is neither origin-form nor absolute-form`,
  );
}

// An answer written straight to a socket node:http has let go of (an
// upgrade), then the end of the connection.
function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${STATUS_TEXT[status]}: ${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
  );
  // A client that does not read gets no longer than a shutdown would.
  const timer = setTimeout(() => socket.destroy(), SHUTDOWN_FLUSH);
  socket.once("close", () => clearTimeout(timer));
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
};

function tooLarge(res: ServerResponse, limit: number): void {
  res.writeHead(413, {
    "content-type": "text/plain; charset=utf-8",
    connection: "close",
  });
  res.end(`Payload Too Large: the request body exceeds ${limit} bytes\n`);
}

// The request body as a byte stream, read only as fast as it is consumed
// (the socket pauses past one chunk), and bounded by `limit` in total and
// by `timeout` for each wait for bytes that are wanted (not while paused).
function bodyStream(
  req: IncomingMessage,
  options: {
    limit: number;
    timeout: number;
    onTooLarge: () => void;
    onTimeout: (error: WebSocketError) => void;
    onDone: () => void;
  },
): { stream: ReadableStream<Uint8Array>; discard: () => void } {
  const { limit, timeout } = options;
  let received = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  const disarm = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const finish = () => {
    disarm();
    if (done) return;
    done = true;
    options.onDone();
  };
  let expire = () => {};
  const arm = () => {
    clearTimeout(timer);
    if (!done) timer = setTimeout(() => expire(), timeout);
  };
  // What the handler left unread once its response has been sent: read
  // and dropped (node:http's req._dump(), which our "data" listener has
  // turned off), so that the next request on the connection is parsed.
  // Past `limit` in all, or `timeout` with no bytes, the connection ends.
  const discard = () => {
    if (done) return;
    req.removeAllListeners("data");
    expire = () => {
      finish();
      req.socket.destroy();
    };
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) expire();
      else arm();
    });
    arm();
    req.resume();
  };
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      expire = () => {
        req.pause();
        req.removeAllListeners("data");
        finish();
        const error = new WebSocketError(
          `Cannot read request body: no bytes came for handshakeTimeout (${timeout} ms)`,
          { code: "ERR_BODY_TIMEOUT" },
        );
        try {
          controller.error(error);
        } catch {
          // Closed already.
        }
        options.onTimeout(error);
      };
      req.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > limit) {
          req.pause();
          req.removeAllListeners("data");
          finish();
          controller.error(
            new WebSocketError(
              `Cannot read request body: it exceeds maxBodySize (${limit} bytes)`,
              { code: "ERR_BODY_TOO_LARGE" },
            ),
          );
          options.onTooLarge();
          return;
        }
        controller.enqueue(
          new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length),
        );
        if ((controller.desiredSize ?? 0) <= 0) {
          req.pause();
          disarm();
        } else arm();
      });
      arm();
      req.once("end", () => {
        finish();
        try {
          controller.close();
        } catch {
          // Errored already.
        }
      });
      req.once("close", finish);
      req.once("error", (error) => {
        finish();
        try {
          controller.error(error);
        } catch {
          // Closed already.
        }
      });
      req.once("aborted", () => {
        finish();
        try {
          controller.error(
            new WebSocketError(
              "Cannot read request body: the client closed the connection",
              { code: "ERR_ABNORMAL_CLOSURE" },
            ),
          );
        } catch {
          // Closed already.
        }
      });
    },
    pull() {
      arm();
      req.resume();
    },
    cancel() {
      discard(); // The connection may serve another request.
    },
  }, { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength });
  return { stream, discard };
}
