/**
 * {@linkcode upgradeWebSocket}: the same stream API over `Deno.serve` and
 * Deno Deploy, where the runtime owns the socket after the 101.
 *
 * @module
 */

import type {
  WebSocketCloseInfo,
  WebSocketCloseOptions,
} from "./connection.ts";
import type {
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./websocket_connection.ts";
import {
  closeBodyFor,
  closeRequestFor,
  isValidCloseCode,
} from "../codec/close.ts";
import { WebSocketError, WebSocketHandshakeError } from "../errors.ts";
import { messageSize, WRITE_QUEUE_BYTES } from "./_message_size.ts";
import {
  checkOrigin,
  HandshakeRejection,
  isUpgradeRequest,
  type OriginOptions,
  validateUpgradeRequest,
} from "../handshake/server.ts";
import type { MessageData } from "../codec/message.ts";
import { checkAllowedOrigins, checkOptions, UPGRADE } from "../_options.ts";

/** Options for {@linkcode upgradeWebSocket}. */
export interface UpgradeWebSocketOptions extends OriginOptions {
  /**
   * The subprotocol to answer with; it must be one the client offered.
   *
   * @default {none}
   */
  protocol?: string;
  /**
   * Seconds without a pong before Deno closes the socket (Deno's own
   * heartbeat), from 0 (off) to 2147483.
   *
   * @default {120}
   */
  idleTimeout?: number;
  /**
   * The bytes of unread messages that may wait in `readable`. Deno's socket
   * cannot be paused, so when the application reads slower than the peer
   * sends, the connection is failed with 1008 (`ERR_INBOUND_QUEUE_FULL`)
   * rather than buffer without bound. A single message is always accepted
   * when nothing else waits. A non-negative integer, or `Infinity` for no
   * bound (memory then grows with a slow reader).
   *
   * @default {16777216 (16 MiB)}
   */
  maxQueuedBytes?: number;
  /**
   * The largest message accepted, in bytes; a larger one fails the
   * connection with 1009 (`ERR_MESSAGE_TOO_LARGE`). Deno has already
   * received it whole by then: this bounds what reaches the application,
   * not Deno's own buffering. A non-negative integer, or `Infinity` for no
   * limit.
   *
   * @default {33554432 (32 MiB)}
   */
  maxMessageSize?: number;
  /**
   * `writer.write()` waits while Deno's `bufferedAmount` is above this many
   * bytes: a non-negative integer (0 makes every write wait until Deno has
   * sent everything).
   *
   * @default {1048576 (1 MiB)}
   */
  writableHighWaterMark?: number;
  /**
   * Milliseconds a write may wait for `bufferedAmount` to fall before the
   * connection is failed with `ERR_ABNORMAL_CLOSURE`: a peer that stops
   * reading must not hold the sender forever. From 0 to 2147483647.
   *
   * @default {30000}
   */
  sendTimeout?: number;
  /**
   * Milliseconds, after the connection fails (`sendTimeout`, a message over
   * a bound), to wait for Deno to finish its close handshake before
   * `closed` rejects with the failure anyway: a peer that reads nothing
   * never lets it finish, and Deno gives up only after `idleTimeout` (or
   * never, with 0). From 0 to 2147483647.
   *
   * @default {5000}
   */
  closeTimeout?: number;
}

/** What {@linkcode upgradeWebSocket} returns. */
export interface UpgradeWebSocketResult {
  /** The 101 response: return it from the `Deno.serve` handler. */
  response: Response;
  /** The connection, usable at once: writes wait until it opens. */
  connection: WebSocketConnection;
}

const DEFAULT_MAX_QUEUED = 16 * 1024 * 1024;
const DEFAULT_MAX_MESSAGE = 32 * 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DEFAULT_SEND_TIMEOUT = 30_000;
const DEFAULT_CLOSE_TIMEOUT = 5000;
// Deno fires no event when bufferedAmount falls, so a waiting write polls;
// the interval doubles from 1 ms to this cap.
const MAX_DRAIN_POLL = 16;

/**
 * Upgrades a `Deno.serve` request to a WebSocket and wraps Deno's native
 * socket in the stream API of {@linkcode WebSocketConnection}: `readable`,
 * `writable`, `protocol`, `extensions`, `closed` and `close()`, plus the
 * `opened` of the WHATWG WebSocketStream.
 *
 * `Deno.serve` hands over no raw bytes after a 101, so the frames are Deno's.
 * What differs from a {@linkcode WebSocketConnection}, honestly:
 * - no frame access, no `ping()`, no heartbeat of ours (Deno pings on its
 *   own, see `idleTimeout`), and no permessage-deflate (Deno has none);
 * - no inbound backpressure: Deno reads on whether or not `readable` is
 *   read, so unread messages are bounded by `maxQueuedBytes` and past it the
 *   connection fails with 1008;
 * - `maxMessageSize` is checked after Deno has received a message whole;
 * - outbound backpressure polls Deno's `bufferedAmount`.
 *
 * @param request The upgrade request given to the `Deno.serve` handler.
 * @param options The subprotocol and the bounds.
 * A request that is not a WebSocket upgrade (a browser opening the URL, a
 * health check) is refused with a {@linkcode WebSocketHandshakeError}
 * (`ERR_UPGRADE_REQUIRED`, status 426, `Upgrade: websocket`), and a
 * malformed upgrade with one of status 400 or 426 (`ERR_HANDSHAKE`); its
 * `toResponse()` is the answer to return, so that the client learns what
 * was wrong rather than getting a 500:
 *
 * ```ts ignore
 * try {
 *   const { response, connection } = upgradeWebSocket(request);
 *   // … use connection …
 *   return response;
 * } catch (error) {
 *   if (error instanceof WebSocketHandshakeError) return error.toResponse();
 *   throw error;
 * }
 * ```
 *
 * @returns The 101 response to return, and the connection.
 * @throws {WebSocketHandshakeError} When the request is not a WebSocket
 * upgrade (426), a malformed one (400, or 426 for a version other than
 * 13), or comes from a browser origin that `allowedOrigins` does not allow
 * (403, before Deno upgrades anything); `toResponse()` is the answer to
 * give.
 * @throws {RangeError | TypeError} For an option out of its range, or not
 * a number, before the request is upgraded.
 *
 * @example Echo on Deno.serve
 * ```ts
 * import { connect, upgradeWebSocket } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
 *   const { response, connection } = upgradeWebSocket(request);
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 *   return response;
 * });
 * const client = await connect(`ws://127.0.0.1:${server.addr.port}`);
 * const writer = client.writable.getWriter();
 * await writer.write("hi");
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, "hi");
 * reader.releaseLock();
 * writer.releaseLock();
 * client.close({ closeCode: 1000 });
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeWebSocketOptions = {},
): UpgradeWebSocketResult {
  if (!isUpgradeRequest(request)) {
    // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
    throw new WebSocketHandshakeError(
      "Cannot upgrade: the request is not a WebSocket upgrade (GET with Upgrade: websocket); answer it with error.toResponse(), a 426",
      {
        status: 426,
        statusText: "Upgrade Required",
        headers: {
          upgrade: "websocket",
          connection: "Upgrade",
          "sec-websocket-version": "13",
        },
        code: "ERR_UPGRADE_REQUIRED",
      },
    );
  }
  checkOptions("upgrade", options, UPGRADE);
  checkAllowedOrigins("upgrade", options.allowedOrigins);
  const version = request.headers.get("sec-websocket-version");
  if (version?.trim() !== "13") {
    // RFC 6455 §4.4: answer another version with 426 and the one we speak.
    // Deno.upgradeWebSocket does not check it (it upgraded version 8).
    throw malformedUpgrade(request, undefined);
  }
  try {
    checkOrigin(request, options.allowedOrigins);
  } catch (rejection) {
    if (!(rejection instanceof HandshakeRejection)) throw rejection;
    // A hijacking page: refused before Deno makes any WebSocket state.
    throw new WebSocketHandshakeError(rejection.message, {
      status: 403,
      statusText: "Forbidden",
    });
  }
  let upgraded;
  try {
    upgraded = Deno.upgradeWebSocket(request, {
      protocol: options.protocol,
      idleTimeout: options.idleTimeout,
    });
  } catch (error) {
    throw malformedUpgrade(request, error);
  }
  return {
    response: upgraded.response,
    connection: new UpgradedWebSocket(upgraded.socket, options, request.url),
  };
}

// Deno refused an upgrade request: say why, with the status to answer.
function malformedUpgrade(
  request: Request,
  cause: unknown,
): WebSocketHandshakeError {
  let status = 400;
  let message = `Cannot upgrade: ${
    cause instanceof Error ? cause.message : "the request is malformed"
  }`;
  let headers: Record<string, string> = {};
  try {
    // Which rule failed; the origin, if asked, has passed already.
    validateUpgradeRequest(request, { allowedOrigins: ["*"] });
  } catch (rejection) {
    if (rejection instanceof HandshakeRejection) {
      ({ status, message, headers } = rejection);
    }
  }
  return new WebSocketHandshakeError(message, {
    status,
    statusText: status === 426 ? "Upgrade Required" : "Bad Request",
    headers,
    cause,
  });
}

/**
 * A native Deno `WebSocket` seen as a {@linkcode WebSocketConnection}; made
 * by {@linkcode upgradeWebSocket}, whose documentation lists how it differs
 * from the connections the library runs itself. Not exported from the
 * package: users hold it as a `WebSocketConnection`.
 */
export class UpgradedWebSocket implements WebSocketConnection {
  /** Received messages: a string per text message, a `Uint8Array` per binary one. */
  readonly readable: ReadableStream<string | Uint8Array>;
  /** Messages to send: a string as text, bytes as binary. */
  readonly writable: WritableStream<MessageData>;
  /** Resolves when the socket opens; rejects if it never does. */
  readonly opened: Promise<WebSocketOpenInfo>;
  /**
   * Resolves with the peer's close code and reason after a clean close;
   * rejects with a {@linkcode WebSocketError} otherwise.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /** The URL of the upgrade request, when the socket came with one. */
  readonly url: string | undefined;

  #socket: WebSocket;
  #protocol: string | undefined;
  #readController!: ReadableStreamDefaultController<string | Uint8Array>;
  #writeController!: WritableStreamDefaultController;
  #readableOpen = true;
  #maxQueued: number;
  #maxMessage: number;
  #highWaterMark: number;
  #sendTimeout: number;
  #failure: WebSocketError | undefined;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #drainDone: (() => void) | undefined;
  #closeTimeout: number;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #rejectClosed!: (error: WebSocketError) => void;

  /**
   * Wraps a native socket. {@linkcode upgradeWebSocket} is the usual way in.
   *
   * @param socket A socket from `Deno.upgradeWebSocket`, not yet open.
   * @param options The bounds.
   * @param url The URL of the upgrade request.
   * @throws {RangeError | TypeError} For an option out of its range, or not
   * a number.
   */
  constructor(
    socket: WebSocket,
    options: UpgradeWebSocketOptions = {},
    url?: string,
  ) {
    checkOptions("create UpgradedWebSocket", options, UPGRADE);
    this.#socket = socket;
    this.url = url;
    // Deno's server-side socket reports no protocol; the option is the truth.
    this.#protocol = options.protocol;
    this.#maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
    this.#maxMessage = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
    this.#highWaterMark = options.writableHighWaterMark ??
      DEFAULT_HIGH_WATER_MARK;
    this.#sendTimeout = options.sendTimeout ?? DEFAULT_SEND_TIMEOUT;
    this.#closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    socket.binaryType = "arraybuffer";

    this.opened = new Promise((resolve, reject) => {
      socket.addEventListener("open", () =>
        resolve({
          readable: this.readable,
          writable: this.writable,
          protocol: this.protocol,
          extensions: socket.extensions,
        }), { once: true });
      socket.addEventListener(
        "close",
        () =>
          reject(
            new WebSocketError(
              "Cannot open: the socket closed before it opened",
              { code: "ERR_HANDSHAKE" },
            ),
          ),
        { once: true },
      );
    });
    this.opened.catch(() => {});

    this.closed = new Promise((resolve, reject) => {
      this.#rejectClosed = reject;
      socket.addEventListener("close", (event) => {
        clearTimeout(this.#closeTimer);
        this.#stopDrain();
        const failure = this.#failure ??
          (event.wasClean ? undefined : new WebSocketError(
            "Cannot close cleanly: the connection ended without a close frame",
            { code: "ERR_ABNORMAL_CLOSURE" },
          ));
        if (this.#readableOpen) {
          this.#readableOpen = false;
          if (failure) this.#readController.error(failure);
          else this.#readController.close();
        }
        // A clean close leaves the writable open, as the interface says:
        // `readable.pipeTo(writable)` then closes it and resolves; a later
        // write is refused by #sendLater with a TypeError.
        if (failure) {
          try {
            this.#writeController.error(failure);
          } catch {
            // Already errored.
          }
        }
        if (failure) reject(failure);
        else resolve({ closeCode: event.code, reason: event.reason });
      }, { once: true });
    });
    this.closed.catch(() => {});

    socket.addEventListener("message", (event) => this.#onMessage(event));

    this.readable = new ReadableStream<string | Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
      },
      cancel: (reason) => {
        this.#readableOpen = false;
        this.#closeWith(reason);
      },
    }, { highWaterMark: this.#maxQueued, size: messageSize });

    this.writable = new WritableStream<MessageData>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk) => this.#send(chunk),
      close: () => this.close(),
      abort: (reason) => this.#closeWith(reason),
    }, {
      // Counted in bytes, with room for many small messages: with the
      // default (one chunk), every write turned backpressure on and off and
      // made a fresh `ready` promise. Deno's own buffer, bounded by
      // writableHighWaterMark, holds the rest.
      highWaterMark: Math.max(
        1,
        Math.min(this.#highWaterMark, WRITE_QUEUE_BYTES),
      ),
      size: messageSize,
    });
  }

  /**
   * The subprotocol settled on, or `""`.
   *
   * @returns The subprotocol.
   */
  get protocol(): string {
    return this.#protocol ?? this.#socket.protocol;
  }

  /**
   * The extensions settled on: always `""`, Deno negotiates none.
   *
   * @returns The extensions.
   */
  get extensions(): string {
    return this.#socket.extensions;
  }

  /**
   * Always `undefined`: the upgrade request does not carry the peer's
   * address. The `Deno.serve` handler's `info.remoteAddr` has it.
   *
   * @returns `undefined`.
   */
  get remoteAddr(): Deno.Addr | undefined {
    return undefined;
  }

  /**
   * Rejects with a `TypeError`: Deno's native server socket gives no ping
   * API. Deno pings on its own (`idleTimeout`); to measure a round trip,
   * use `serve()`, whose connections have `ping()`.
   *
   * @param _data Unused.
   * @returns A promise rejected with a `TypeError`.
   */
  ping(_data?: Uint8Array): Promise<number> {
    return Promise.reject(
      new TypeError(
        "Cannot ping: Deno's native WebSocket under Deno.serve gives no ping API; Deno pings on its own (the idleTimeout option), or use serve() for ping()",
      ),
    );
  }

  /**
   * The bytes Deno has queued and not yet sent.
   *
   * @returns The count of bytes.
   */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /**
   * Starts the close handshake; Deno finishes it. Calling it again does
   * nothing. Await {@linkcode closed} for the outcome.
   *
   * @param options The close code and reason.
   * @throws {TypeError} For an argument that is not `{ closeCode, reason }`
   * (the browser's `close(code, reason)` or `{ code }`).
   * @throws {RangeError} For a code not allowed on the wire, or a reason
   * over 123 bytes.
   */
  close(options: WebSocketCloseOptions = {}): void {
    const { closeCode, reason } = closeBodyFor(options);
    const socket = this.#socket;
    if (socket.readyState >= WebSocket.CLOSING) return;
    if (socket.readyState === WebSocket.CONNECTING) {
      // Deno refuses close() before open; close as soon as it opens.
      this.opened.then(() => this.close(options), () => {});
      return;
    }
    // Deno sends 1000 for a missing code only when no reason is given.
    if (closeCode === undefined) socket.close();
    else socket.close(closeCode, reason);
  }

  #onMessage(event: MessageEvent): void {
    if (!this.#readableOpen) return;
    const data: string | Uint8Array = typeof event.data === "string"
      ? event.data
      : new Uint8Array(event.data as ArrayBuffer);
    const size = typeof data === "string"
      // A UTF-16 length bounds UTF-8 bytes from below by a factor of 3.
      ? data.length
      : data.byteLength;
    if (size > this.#maxMessage) {
      this.#fail(
        new WebSocketError(
          `Cannot receive message: ${size} bytes is over maxMessageSize ${this.#maxMessage}`,
          { code: "ERR_MESSAGE_TOO_LARGE" },
        ),
      );
      return;
    }
    const desired = this.#readController.desiredSize ?? 0;
    // The queue is empty when desiredSize is the high-water mark.
    if (desired < size && desired < this.#maxQueued) {
      this.#fail(
        new WebSocketError(
          `Cannot receive message: over ${this.#maxQueued} bytes wait unread`,
          { code: "ERR_INBOUND_QUEUE_FULL" },
        ),
      );
      return;
    }
    this.#readController.enqueue(data);
  }

  // The usual case (open, below the mark) returns no promise: an async
  // function here was a generator and a promise per message.
  #send(chunk: MessageData): Promise<void> | undefined {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) return this.#sendLater(chunk);
    socket.send(chunk as string | Uint8Array<ArrayBuffer>);
    return socket.bufferedAmount > this.#highWaterMark
      ? this.#drain()
      : undefined;
  }

  // Before open: wait for it, then send as usual.
  async #sendLater(chunk: MessageData): Promise<void> {
    if (this.#socket.readyState === WebSocket.CONNECTING) await this.opened;
    if (this.#socket.readyState !== WebSocket.OPEN) {
      throw new TypeError(
        `Cannot send message: the connection is ${
          this.#socket.readyState === WebSocket.CLOSED ? "closed" : "closing"
        }`,
      );
    }
    await this.#send(chunk);
  }

  #drain(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const deadline = performance.now() + this.#sendTimeout;
      let delay = 1;
      this.#drainDone = resolve;
      const check = () => {
        const socket = this.#socket;
        if (
          socket.readyState !== WebSocket.OPEN ||
          socket.bufferedAmount <= this.#highWaterMark
        ) {
          this.#drainDone = undefined;
          resolve();
        } else if (performance.now() >= deadline) {
          this.#drainDone = undefined;
          const error = new WebSocketError(
            `Cannot send message: the peer took nothing for ${this.#sendTimeout} ms`,
            { code: "ERR_ABNORMAL_CLOSURE" },
          );
          reject(error);
          this.#fail(error);
        } else {
          delay = Math.min(delay * 2, MAX_DRAIN_POLL);
          this.#drainTimer = setTimeout(check, delay);
        }
      };
      this.#drainTimer = setTimeout(check, delay);
    });
  }

  #stopDrain(): void {
    clearTimeout(this.#drainTimer);
    this.#drainDone?.();
    this.#drainDone = undefined;
  }

  #closeWith(reason: unknown): void {
    this.close(closeRequestFor(reason));
  }

  #fail(error: WebSocketError): void {
    if (this.#failure) return;
    this.#failure = error;
    if (this.#readableOpen) {
      this.#readableOpen = false;
      this.#readController.error(error);
    }
    try {
      this.#writeController.error(error);
    } catch {
      // Already errored.
    }
    if (isValidCloseCode(error.closeCode)) {
      this.close({ closeCode: error.closeCode, reason: error.reason });
    } else {
      this.close({ closeCode: 1011, reason: error.reason });
    }
    // Deno's close handshake needs a peer that reads (or idleTimeout, which
    // may be off): `closed` does not wait past closeTimeout for it.
    this.#closeTimer = setTimeout(() => {
      this.#stopDrain();
      this.#rejectClosed(error);
    }, this.#closeTimeout);
  }
}
