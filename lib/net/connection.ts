/**
 * {@linkcode TransportWebSocket}: the {@linkcode WebSocketConnection} that
 * runs the protocol itself, over a `Deno.Conn` or any byte pair, after the
 * opening handshake.
 *
 * @module
 */

import {
  READ_BUFFER_SIZE,
  releaseReadBuffer,
  takeReadBuffer,
} from "../_pools.ts";
import { checkConnectionOptions, checkNegotiatedDeflate } from "../_options.ts";
import { messageSize, WRITE_QUEUE_BYTES } from "./_message_size.ts";
import type { Outbox } from "../codec/_outbox.ts";
import { OutboxWriter, type WriterHost } from "./_writer.ts";
import { opSettled, opStarted } from "./_turns.ts";
import {
  type ByteDuplex,
  ConnTransport,
  isConnectionGone,
  StreamTransport,
  toTransport,
  type Transport,
} from "./_transport.ts";
import { NodeSocketTransport } from "./_node_transport.ts";
import { closeBodyFor, closeRequestFor } from "../codec/close.ts";
import { Deflater, Inflater } from "../deflate/zlib.ts";
import { WebSocketError } from "../errors.ts";
import type { Opcode, Role } from "../codec/frame.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../codec/assembler.ts";
import type { MessageData } from "../codec/message.ts";
import { Protocol, type ProtocolEvents } from "../protocol.ts";

import type {
  HeartbeatOptions,
  WebSocketCloseInfo,
  WebSocketCloseOptions,
  WebSocketConnectionOptions,
} from "./connection_options.ts";

import type {
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./websocket_connection.ts";

export type { ByteDuplex } from "./_transport.ts";
export type {
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./websocket_connection.ts";
export type {
  HeartbeatOptions,
  WebSocketCloseInfo,
  WebSocketCloseOptions,
  WebSocketConnectionOptions,
} from "./connection_options.ts";

/**
 * @internal Who wants to hear that a connection has finished, without a
 * promise reaction per connection: `serve()` keeps its live set with it
 * (`closed.then(forget, forget)` cost each idle connection a promise, two
 * reactions and a closure). The connection calls and drops its own.
 */
export const finishListeners: WeakMap<object, (connection: object) => void> =
  new WeakMap();

/**
 * @internal How a connection takes frames encoded once for many
 * (`lib/topics.ts`): what it needs to know to share them, and the way in.
 */
export interface SharedFrameTarget {
  /** Which end this is: only a server's frames can be shared (§5.1). */
  role: Role;
  /** The largest frame it sends (`fragmentSize`). */
  fragmentSize: number;
  /**
   * The negotiated deflate settings when every message is compressed on
   * its own (server_no_context_takeover, RFC 7692 §7.1.1.1), so that one
   * compressed payload fits every connection with the same settings;
   * otherwise `undefined` (no compression, or a context kept between
   * messages, which only this connection's deflater can continue).
   */
  deflate:
    | { windowBits: number; level: number; memLevel: number; threshold: number }
    | undefined;
  /** The bytes queued and not yet taken by the transport. */
  bufferedAmount(): number;
  /**
   * Queues whole frames after what is queued (see `Outbox.pushEncoded`).
   *
   * @returns `false`, and queues nothing, once our close frame is queued
   * or the connection has ended (RFC 6455 §5.5.1: no data after it).
   */
  pushEncoded(frames: Uint8Array): boolean;
}

/** @internal The {@linkcode SharedFrameTarget} of a connection. */
export let sharedFrameTarget: (
  connection: TransportWebSocket,
) => SharedFrameTarget;

// Reads start in a small buffer of the connection's own, so that an idle
// connection (whose pending read holds its buffer) costs little; a read that
// fills it moves the next reads to 64 KiB buffers from the shared pool
// (_pools.ts), until a read comes back small again.
const SMALL_READ_SIZE = 2 * 1024;
// Inside a frame with at least this much payload still to come, reads go
// straight into the message's own buffer (MessageAssembler.reserve): no
// copy out of a read buffer, and one read can take all that the kernel
// holds (measured: the read op was 20% of the server's CPU on 1 MiB echoes
// in 64 KiB reads).
const DIRECT_READ_FROM = 4 * READ_BUFFER_SIZE;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DEFAULT_CLOSE_TIMEOUT = 5000;
/** sendTimeout's default: 30 s. */
export const DEFAULT_SEND_TIMEOUT = 30_000;
// How long a protocol failure waits for the application to take the
// messages received before it, and to answer them (#endInOrder).
const FAIL_WAIT = 1000;
// After failing the connection, bytes the peer still sends are read and
// dropped, up to this many (and for closeTimeout at most), so that closing
// TCP with unread bytes does not make the kernel send RST, which would
// make the peer's kernel discard our close frame unread (the lingering
// close of nginx and ws).
const LINGER_BYTES = 64 * 1024 * 1024;

function ignore(): void {}

// A received message's size in the readable's queue: one more than its
// bytes (or UTF-16 units), so that an empty message still counts and an
// empty queue shows as the whole high-water mark free (#checkEnding).
function queuedSize(chunk: string | Uint8Array): number {
  return chunk.length + 1;
}

interface PendingPing {
  key: string;
  start: number;
  resolve(rtt: number): void;
  reject(error: unknown): void;
}

/** Options for {@linkcode TransportWebSocket}: the public ones, and what the faces know. */
export interface TransportWebSocketOptions extends WebSocketConnectionOptions {
  /** The URL dialed (`connect`) or requested (`acceptWebSocket`, `serve`). */
  url?: string;
}

/**
 * The {@linkcode WebSocketConnection} that runs the protocol itself, over a
 * byte transport whose opening handshake is done: what `connect()`,
 * `serve()`, `acceptWebSocket()` and `WebSocketDuplex` hand out. Not
 * exported from the package: users hold it as a `WebSocketConnection`.
 *
 * - **Inbound backpressure**: the transport is read only while `readable`
 *   wants more (pull-driven). A reader that stops reading stops the reads
 *   from TCP, and the peer's sends then stall in the kernel.
 * - **Outbound backpressure**: `writer.write()` resolves once the frame is
 *   handed to the socket, or queued while {@linkcode bufferedAmount} is
 *   within `writableHighWaterMark`. Frames written in one turn go out in one
 *   socket write.
 * - **Control frames**: pings are answered with pongs at once; `ping()`
 *   measures a round trip; a close frame is echoed with its code (RFC 6455
 *   §5.5.1) and ends `readable`.
 * - **Errors**: a protocol violation, after the messages before it (see
 *   {@linkcode readable}), sends a close frame with its code (1002, 1007,
 *   1009), errors `readable` and `writable`, half-closes TCP, and reads and
 *   drops what the peer still sends (at most 64 MiB, for at most
 *   `closeTimeout`) so that the peer reads the close frame instead of a
 *   reset; then `closed` rejects with the {@linkcode WebSocketError}. A
 *   transport that ends with no close handshake rejects `closed` with 1006.
 * - **Timeouts end the transport at once**, whatever is still being
 *   written: `closeTimeout`, the heartbeat's, and `sendTimeout` (a peer
 *   that stops reading).
 *
 * Most code gets one from `connect()`, `serve()`, or `acceptWebSocket()`.
 *
 * @example Talk over an in-memory pipe
 * ```ts
 * import { TransportWebSocket } from "./connection.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const a = new TransformStream<Uint8Array, Uint8Array>();
 * const b = new TransformStream<Uint8Array, Uint8Array>();
 * const client = new TransportWebSocket({ readable: a.readable, writable: b.writable }, { role: "client" });
 * const server = new TransportWebSocket({ readable: b.readable, writable: a.writable }, { role: "server" });
 *
 * const writer = client.writable.getWriter();
 * await writer.write("hello");
 * const reader = server.readable.getReader();
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 *
 * client.close({ closeCode: 1000, reason: "done" });
 * assertEquals(await server.closed, { closeCode: 1000, reason: "done" });
 * assertEquals(await client.closed, { closeCode: 1000, reason: "done" });
 * ```
 */
export class TransportWebSocket implements WebSocketConnection {
  /**
   * Received messages: a string per text message, a `Uint8Array` per binary
   * one.
   *
   * Events keep their order: a failure takes effect after the messages
   * before it. When a protocol error (or the peer's close) follows valid
   * messages, this readable yields those messages first, and a reply that
   * the application writes as soon as it reads one (a `pipeTo` echo, or a
   * loop that writes each message it reads) goes out before our close
   * frame. Only then does the readable error (or end). The application gets
   * at most 1 s for a failure, `closeTimeout` for the peer's close; past it
   * the readable errors and drops what is still queued. Reading stops while
   * it waits.
   */
  readonly readable: ReadableStream<string | Uint8Array>;
  /**
   * Messages to send: a string as text, an `ArrayBuffer` or a view as
   * binary. A clean close does not error it, so `readable.pipeTo(writable)`
   * resolves when the peer closes cleanly (and rejects when the connection
   * fails). A message written after our close frame is refused with a
   * `TypeError` ("is closing", or "is closed" once `closed` has settled),
   * which leaves the writable errored with it; a value that is not a
   * message fails the connection with 1011 (`ERR_INVALID_MESSAGE`). The
   * bytes of a message are the application's again once its `write()` has
   * resolved: a server's binary message over 16 KiB, sent uncopied,
   * resolves only once the socket has taken it.
   */
  readonly writable: WritableStream<MessageData>;
  /** The subprotocol the handshake settled on, or `""`. */
  readonly protocol: string;
  /** The extensions the handshake settled on, or `""`. */
  readonly extensions: string;
  /**
   * Resolves with the peer's close code and reason after a clean close
   * handshake; rejects with a {@linkcode WebSocketError} otherwise.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /**
   * The URL dialed (`connect`) or requested (`serve`, `acceptWebSocket`);
   * `undefined` when the connection was made without one
   * (`WebSocketDuplex`).
   */
  readonly url: string | undefined;

  #transport: Transport;
  #opened: Promise<WebSocketOpenInfo> | undefined;
  #role: Role;
  // The protocol rules, with no I/O; this class does the I/O around it.
  #protocol: Protocol;
  #smallBuffer: Uint8Array | undefined;
  #bigReads = false;
  #head: Uint8Array | undefined;
  #readController!: ReadableStreamDefaultController<string | Uint8Array>;
  #writeController!: WritableStreamDefaultController;
  #readableOpen = true;
  #readableHighWaterMark: number;
  #reading: Promise<void> | undefined;
  #readLoopRunning = false;
  #bytesReceived = 0;

  // Outbound: the engine's frames, and the writer that sends them.
  #outbox: Outbox;
  #writer: OutboxWriter;
  // Chunks the application has written that write() has not yet taken.
  #writesComing = 0;

  // A failure or the peer's close found in the input, waiting for the
  // application to take the messages before it (#endInOrder).
  #ending: (() => void) | undefined;
  #endingSoon = false;
  #endingTimer: ReturnType<typeof setTimeout> | undefined;
  // Set when the connection fails: from then on, what is read is dropped.
  #failure: WebSocketError | undefined;
  #lingered = 0;
  #done = false;
  #closeTimeout: number;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed!: (info: WebSocketCloseInfo) => void;
  #rejectClosed!: (error: WebSocketError) => void;

  // permessage-deflate: the engines, and the chain that keeps inflated
  // messages in order with the ones that follow them.
  #inflater: Inflater | undefined;
  #deflater: Deflater | undefined;
  #maxMessageSize: number;
  #inbound: Promise<void> | undefined;
  #inboundDepth = 0;
  // Messages being compressed (the writable hands over one at a time), and
  // the body of a close() that waits for them: a message written before
  // close() goes out before the close frame (RFC 6455 §5.5.1 allows no data
  // after it), and nothing written after close() is taken.
  #compressing = 0;
  #closeAfter: Uint8Array | undefined;

  // For topics: made on first use (see sharedFrameTarget).
  #shared: SharedFrameTarget | undefined;
  #fragmentSize: number;
  #sharedDeflate: SharedFrameTarget["deflate"];

  #pings: PendingPing[] | undefined;
  #heartbeat: HeartbeatOptions | undefined;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps a transport whose handshake is done.
   *
   * @param transport A `Deno.Conn` (read and written directly, the fast
   * path) or any `{ readable, writable }` byte pair.
   * @param options The role, the handshake's outcome, and the limits.
   * @throws {RangeError | TypeError} For an option out of its range, or
   * not a number.
   */
  constructor(
    transport: Deno.Conn | ByteDuplex,
    options: TransportWebSocketOptions,
  ) {
    const role = (options as Partial<WebSocketConnectionOptions> | undefined)
      ?.role;
    if (role !== "client" && role !== "server") {
      throw new TypeError(
        `Cannot create connection: role must be "client" or "server", not ${
          JSON.stringify(role) ?? "undefined"
        }`,
      );
    }
    this.#readableHighWaterMark = options.readableHighWaterMark ??
      DEFAULT_HIGH_WATER_MARK;
    this.#transport = transport instanceof ConnTransport ||
        transport instanceof StreamTransport ||
        transport instanceof NodeSocketTransport
      ? transport
      : toTransport(transport);
    this.#role = options.role;
    this.protocol = options.protocol ?? "";
    this.extensions = options.extensions ?? "";
    this.url = options.url;
    this.#head = options.head?.length ? options.head : undefined;
    this.#closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    const writableHighWaterMark = options.writableHighWaterMark ??
      DEFAULT_HIGH_WATER_MARK;
    this.#heartbeat = options.heartbeat;
    checkConnectionOptions("create connection", options);
    checkNegotiatedDeflate("create connection", options.perMessageDeflate);

    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    const deflate = options.perMessageDeflate;
    if (deflate) {
      const server = options.role === "server";
      this.#deflater = new Deflater(
        server ? deflate.serverMaxWindowBits : deflate.clientMaxWindowBits,
        server
          ? deflate.serverNoContextTakeover
          : deflate.clientNoContextTakeover,
        deflate.level,
        deflate.memLevel,
      );
      this.#inflater = new Inflater(
        server ? deflate.clientMaxWindowBits : deflate.serverMaxWindowBits,
        server
          ? deflate.clientNoContextTakeover
          : deflate.serverNoContextTakeover,
      );
    }
    this.#fragmentSize = options.fragmentSize ?? Infinity;
    this.#sharedDeflate = deflate && options.role === "server" &&
        deflate.serverNoContextTakeover
      ? {
        windowBits: deflate.serverMaxWindowBits,
        level: deflate.level,
        memLevel: deflate.memLevel,
        threshold: deflate.threshold,
      }
      : undefined;
    // The callbacks below are methods of small objects, not arrow functions:
    // each arrow was a closure per connection, kept while it idles.
    const glue = new TransportWebSocket.#Glue(this);
    this.#protocol = new Protocol({
      ...options,
      threshold: deflate ? deflate.threshold : undefined,
      pongLimit: writableHighWaterMark,
    }, glue);
    this.#outbox = this.#protocol.outbox;
    this.#writer = new OutboxWriter(
      this.#outbox,
      this.#transport,
      glue,
      writableHighWaterMark,
      options.sendTimeout ?? DEFAULT_SEND_TIMEOUT,
    );

    const { promise, resolve, reject } = Promise.withResolvers<
      WebSocketCloseInfo
    >();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#rejectClosed = reject;

    this.readable = new ReadableStream<string | Uint8Array>(glue, {
      highWaterMark: options.readableHighWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      size: queuedSize,
    });

    const sink = new TransportWebSocket.#Sink(this);
    this.writable = new WritableStream<MessageData>(sink, {
      // Counted in bytes, with room for many small messages: with the
      // default (one chunk), every write turned backpressure on and off
      // again and made a fresh `ready` promise (272 B of garbage per
      // message, measured with bench/pipeline.ts).
      highWaterMark: Math.max(
        1,
        Math.min(writableHighWaterMark, WRITE_QUEUE_BYTES),
      ),
      // Bound, not an arrow: the strategy calls it with no `this`.
      size: sink.size.bind(sink),
    });

    if (this.#heartbeat) this.#scheduleHeartbeat();
  }

  static {
    sharedFrameTarget = (connection) => {
      const target = connection.#shared;
      if (target) return target;
      return connection.#shared = {
        role: connection.#role,
        fragmentSize: connection.#fragmentSize,
        deflate: connection.#sharedDeflate,
        bufferedAmount: () => connection.#outbox.size,
        pushEncoded: (frames) => {
          if (
            connection.#done || connection.#protocol.closeSent ||
            connection.#closeAfter
          ) return false;
          connection.#outbox.pushEncoded(frames);
          connection.#writer.schedule();
          return true;
        },
      };
    };
  }

  // The readable's source and the assembler's handler.
  static #Glue = class
    implements
      UnderlyingDefaultSource<string | Uint8Array>,
      ProtocolEvents,
      WriterHost {
    connection: TransportWebSocket;
    constructor(connection: TransportWebSocket) {
      this.connection = connection;
    }
    start(controller: ReadableStreamDefaultController<string | Uint8Array>) {
      this.connection.#readController = controller;
    }
    pull(): Promise<void> | undefined {
      const connection = this.connection;
      if (connection.#ending) {
        connection.#checkEnding();
        return;
      }
      return connection.#startReading();
    }
    cancel(reason: unknown): void {
      const connection = this.connection;
      connection.#readableOpen = false;
      // Nobody will take the messages a pending end waits on.
      if (connection.#ending) connection.#endSoon();
      else connection.#closeWith(reason);
    }
    message(data: string | Uint8Array): void {
      this.connection.#onMessage(data);
    }
    compressed(opcode: number, payload: Uint8Array): void {
      this.connection.#onCompressed(opcode, payload);
    }
    pong(payload: Uint8Array): void {
      this.connection.#onPong(payload);
    }
    close(_info: WebSocketCloseInfo, body: Uint8Array): void {
      this.connection.#onPeerClose(body);
    }
    output(): void {
      this.connection.#writer.schedule();
    }
    compress(opcode: Opcode, payload: Uint8Array): Promise<void> {
      return this.connection.#sendCompressed(opcode, payload);
    }
    answersComing(draining: boolean): boolean {
      return this.connection.#answersComing(draining);
    }
    writeFailed(error: WebSocketError): void {
      this.connection.#fail(error, true);
    }
    drained(): void {
      this.connection.#protocol.sendPendingPong();
    }
    pongWaits(): void {
      this.connection.#writer.notifyDrained = true;
    }
  };

  // The writable's sink.
  static #Sink = class implements UnderlyingSink<MessageData> {
    connection: TransportWebSocket;
    constructor(connection: TransportWebSocket) {
      this.connection = connection;
    }
    start(controller: WritableStreamDefaultController): void {
      this.connection.#writeController = controller;
    }
    // The queue's size of a chunk, called as the application writes it:
    // counts the chunks on their way to write() (see #deferFlush).
    size(chunk: MessageData): number {
      this.connection.#writesComing++;
      return messageSize(chunk);
    }
    write(chunk: MessageData): Promise<void> | undefined {
      return this.connection.#send(chunk);
    }
    close(): Promise<void> {
      this.connection.close();
      return this.connection.#writer.flushed();
    }
    abort(reason: unknown): void {
      this.connection.#closeWith(reason);
    }
  };

  /**
   * Already resolved: the connection is open when it is handed out. Made on
   * first use, so that an idle connection that never asks holds no promise.
   *
   * @returns The streams, the subprotocol and the extensions.
   */
  get opened(): Promise<WebSocketOpenInfo> {
    return this.#opened ??= Promise.resolve({
      readable: this.readable,
      writable: this.writable,
      protocol: this.protocol,
      extensions: this.extensions,
    });
  }

  /**
   * The peer's address when the transport is a `Deno.Conn`; `undefined`
   * over a byte pair.
   *
   * @returns The address, or `undefined`.
   */
  get remoteAddr(): Deno.Addr | undefined {
    return this.#transport.remoteAddr;
  }

  /**
   * The bytes queued for the transport and not yet taken by it.
   *
   * @returns The count of bytes.
   */
  get bufferedAmount(): number {
    return this.#outbox.size;
  }

  /**
   * The bytes read from the transport so far, handshake excluded.
   *
   * @returns The count of bytes.
   */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /**
   * Starts the close handshake (RFC 6455 §7.1.2): sends a close frame, after
   * which no data frame is sent, and waits up to `closeTimeout` for the
   * peer's. A message the writable has taken goes out before it, even while
   * it is being compressed; a write after this is refused. Calling it again does nothing, and so does calling it once the
   * peer's close or a failure is being acted on. Await {@linkcode closed}
   * for the outcome.
   *
   * Messages the peer sent before its close frame are all delivered, in
   * order, with backpressure: reading from TCP goes on only as fast as
   * `readable` is read, and `closeTimeout` bounds the whole handshake (past
   * it `closed` rejects with `ERR_CLOSE_TIMEOUT` and `readable` errors,
   * dropping what it still holds). To close without reading what is still
   * coming, cancel `readable`: what arrives is then read and dropped.
   *
   * @param options The close code and reason, as `{ closeCode, reason }`.
   * @default {{} (no code: the peer sees 1005)}
   * @throws {RangeError} For a code not allowed on the wire, or a reason
   * over 123 bytes.
   * @throws {TypeError} For an argument in another shape (the browser's
   * `close(1000, "bye")` or `{ code }`).
   */
  close(options: WebSocketCloseOptions = {}): void {
    const { body } = closeBodyFor(options);
    if (this.#protocol.closeSent || this.#done || this.#closeAfter) return;
    if (this.#ending) {
      // The peer's close or a failure is pending: it decides the code, and
      // the application, closing, has no more replies to wait for.
      this.#endSoon();
      return;
    }
    if (this.#compressing > 0) this.#closeAfter = body;
    else this.#sendClose(body);
    this.#closeTimer = setTimeout(
      TransportWebSocket.#closeTimedOut,
      this.#closeTimeout,
      this,
    );
    // Read on while the readable wants more: after our close, reading
    // keeps its backpressure (or reads freely once readable is cancelled).
    this.#startReading();
  }

  // Timer callbacks are static and take the connection as an argument: a
  // bound method or an arrow would be a closure kept by every connection.
  static #closeTimedOut(connection: TransportWebSocket): void {
    connection.#fail(
      new WebSocketError(
        `Cannot close cleanly: the peer did not finish the close handshake in ${connection.#closeTimeout} ms`,
        { code: "ERR_CLOSE_TIMEOUT" },
      ),
      true,
    );
  }

  /**
   * Sends a ping and resolves with the round-trip time in milliseconds when
   * the matching pong comes back (RFC 6455 §5.5.2).
   *
   * @param data At most 125 bytes of payload.
   * @default {8 random bytes}
   * @returns The round-trip time in milliseconds.
   * @throws {RangeError} For a payload over 125 bytes.
   * @throws {TypeError} When the connection is closing.
   */
  ping(data?: Uint8Array): Promise<number> {
    const payload = data ?? crypto.getRandomValues(new Uint8Array(8));
    if (payload.length > 125) {
      return Promise.reject(
        new RangeError(
          `Cannot ping: a ping carries at most 125 bytes, not ${payload.length}`,
        ),
      );
    }
    if (this.#protocol.closeSent || this.#done || this.#closeAfter) {
      return Promise.reject(
        new TypeError(
          `Cannot ping: the connection is ${this.#done ? "closed" : "closing"}`,
        ),
      );
    }
    return new Promise<number>((resolve, reject) => {
      (this.#pings ??= []).push({
        key: payload.join(),
        start: performance.now(),
        resolve,
        reject,
      });
      this.#protocol.ping(payload);
    });
  }

  // --- inbound ---------------------------------------------------------

  #startReading(): Promise<void> {
    if (!this.#readLoopRunning) this.#reading = this.#readLoop();
    return this.#reading!;
  }

  async #readLoop(): Promise<void> {
    // A flag, not a `.finally()` on the loop's promise: one promise and one
    // closure less per connection (the loop may also end before its first
    // await, where a finally would run before the promise is stored).
    this.#readLoopRunning = true;
    // A pooled buffer goes back once its bytes are parsed, on every way out.
    let pooled: Uint8Array | undefined;
    try {
      while (!this.#done && !this.#ending) {
        // Read while the application wants messages. After our close, too,
        // only then: messages that arrive after it are delivered in order,
        // with backpressure, and closeTimeout bounds the wait. Read freely
        // when nobody will take them: the readable was cancelled or has
        // ended, or the connection has failed (then to drop them).
        const wanted = this.#failure !== undefined || !this.#readableOpen ||
          this.#protocol.closeReceived !== undefined ||
          (this.#readController.desiredSize ?? 0) > 0;
        if (!wanted) return;
        let bytes: Uint8Array;
        let end: number;
        if (this.#head) {
          bytes = this.#head;
          end = bytes.length;
          this.#head = undefined;
        } else {
          const protocol = this.#protocol;
          const remaining = protocol.payloadRemaining;
          // Only once the frame's first piece is in: the assembler has then
          // checked the frame against maxMessageSize.
          const direct = remaining >= DIRECT_READ_FROM &&
              protocol.payloadReceived > 0 && this.#failure === undefined
            ? protocol.reserve(remaining)
            : undefined;
          let buffer: Uint8Array;
          if (direct) buffer = direct;
          else if (this.#bigReads) buffer = pooled = takeReadBuffer();
          else buffer = this.#smallBuffer ??= new Uint8Array(SMALL_READ_SIZE);
          let n: number | null;
          // A read (a Deno op) that settles late shows the writers where
          // this turn of the event loop began (see _turns.ts).
          const mark = this.#transport.polledOps ? opStarted(false) : -1;
          try {
            n = await this.#transport.read(buffer);
          } catch (cause) {
            if (!isConnectionGone(cause)) {
              this.#fail(this.#abnormal(cause), true);
              return;
            }
            // A reset peer, or our own close racing the read: EOF.
            n = null;
          }
          if (mark >= 0) opSettled(mark);
          if (n === null) {
            this.#onEnd();
            return;
          }
          this.#bytesReceived += n;
          bytes = buffer;
          end = n;
          this.#bigReads = n > SMALL_READ_SIZE >>> 1;
        }
        if (this.#failure) {
          // Failed: drop what comes, within bounds (see LINGER_BYTES).
          this.#lingered += end;
          if (this.#lingered > LINGER_BYTES) {
            this.#finish(this.#failure);
            return;
          }
        } else {
          // The engine ignores what follows the peer's close frame (RFC 6455
          // §5.5.1); a client then only waits for the server to end TCP.
          try {
            this.#protocol.receive(bytes, end);
          } catch (error) {
            // Bytes after the close frame are not data: not a failure.
            if (!this.#protocol.closeReceived) {
              const failure = this.#asFailure(error);
              this.#endInOrder(() => this.#fail(failure), FAIL_WAIT);
            }
          }
        }
        if (pooled) {
          releaseReadBuffer(pooled);
          pooled = undefined;
        }
        // Inflation is asynchronous: finish this read's messages before the
        // next read, so that what waits stays bounded by one read.
        if (this.#inbound) await this.#inbound;
      }
    } finally {
      if (pooled) releaseReadBuffer(pooled);
      this.#readLoopRunning = false;
    }
  }

  #asFailure(error: unknown): WebSocketError {
    return error instanceof WebSocketError
      ? error
      : new WebSocketError(String(error), {
        code: "ERR_ABNORMAL_CLOSURE",
        closeCode: 1011,
        cause: error,
      });
  }

  #onMessage(data: string | Uint8Array): void {
    if (!this.#readableOpen) return;
    if (this.#inbound) {
      // Behind an inflating message: keep the order.
      this.#chain(() => this.#deliver(data));
      return;
    }
    this.#deliver(data);
  }

  #onCompressed(opcode: number, payload: Uint8Array): void {
    if (!this.#readableOpen) return;
    const inflater = this.#inflater!;
    this.#chain(async () => {
      this.#deliver(
        await inflater.inflateMessage(opcode, payload, this.#maxMessageSize),
      );
    });
  }

  /** Runs `step` after every step chained before it; a failure fails all. */
  #chain(step: () => void | Promise<void>): void {
    this.#inboundDepth++;
    const next = (this.#inbound ?? Promise.resolve()).then(() => {
      // Nothing is delivered past a pending end.
      if (this.#done || this.#ending) return;
      return step();
    }).catch((error) => {
      const failure = error instanceof WebSocketError
        ? error
        : new WebSocketError(`Cannot inflate message: ${error}`, {
          code: "ERR_INVALID_COMPRESSED_DATA",
          cause: error,
        });
      this.#endInOrder(() => this.#fail(failure), FAIL_WAIT, true);
    }).finally(() => {
      if (--this.#inboundDepth === 0) this.#inbound = undefined;
    });
    this.#inbound = next;
  }

  #deliver(data: string | Uint8Array): void {
    // After our close too: the read loop keeps the backpressure.
    if (this.#readableOpen) this.#readController.enqueue(data);
  }

  #onPong(payload: Uint8Array): void {
    const key = payload.join();
    const index = this.#pings?.findIndex((ping) => ping.key === key) ?? -1;
    // A pong answers its ping and every earlier one (§5.5.3 allows a pong
    // for only the latest ping).
    if (index >= 0) {
      const now = performance.now();
      for (const ping of this.#pings!.splice(0, index + 1)) {
        ping.resolve(now - ping.start);
      }
    }
  }

  #onPeerClose(payload: Uint8Array): void {
    if (this.#protocol.closeSent) {
      // Our close went first: nothing to answer, but messages still
      // inflating are delivered before the readable ends.
      if (this.#inbound) {
        const body = payload.slice();
        this.#chain(() => this.#onClose(body));
      } else this.#onClose(payload);
    } else {
      // Our echo goes after the replies to the messages before it, as long
      // as closeTimeout allows.
      const body = payload.slice();
      this.#endInOrder(() => this.#onClose(body), this.#closeTimeout);
    }
  }

  /**
   * Ends what came in with a failure or the peer's close, in order: after
   * the messages before it have been inflated, taken by the application,
   * and one more macrotask has let its replies to them be written (so a
   * `pipeTo` echo, or a loop that writes each message it reads, answers
   * them before our close frame). Reading stops meanwhile. `wait` bounds
   * how long the application may take.
   */
  #endInOrder(act: () => void, wait: number, chained = false): void {
    if (this.#ending || this.#done || this.#failure) return;
    if (this.#inbound && !chained) {
      // Messages still inflating come first.
      this.#chain(() => this.#endInOrder(act, wait, true));
      return;
    }
    this.#ending = act;
    this.#endingTimer = setTimeout(TransportWebSocket.#runEnding, wait, this);
    this.#checkEnding();
  }

  /** Acts on the pending end once every message before it has been taken. */
  #checkEnding(): void {
    if (this.#endingSoon || !this.#ending) return;
    // Each message counts at least 1 in the queue (see queuedSize): the
    // queue is empty when the desired size is the whole high-water mark.
    if (
      this.#readableOpen &&
      (this.#readController.desiredSize ?? 0) < this.#readableHighWaterMark
    ) return;
    this.#endSoon();
  }

  /** Acts on the pending end after one macrotask (for the last replies). */
  #endSoon(): void {
    if (this.#endingSoon || !this.#ending) return;
    this.#endingSoon = true;
    clearTimeout(this.#endingTimer);
    this.#endingTimer = setTimeout(TransportWebSocket.#runEnding, 0, this);
  }

  static #runEnding(connection: TransportWebSocket): void {
    const act = connection.#ending;
    if (!act || connection.#done) return;
    clearTimeout(connection.#endingTimer);
    connection.#ending = undefined;
    connection.#endingSoon = false;
    act();
  }

  #onClose(body: Uint8Array): void {
    if (this.#readableOpen) {
      this.#readableOpen = false;
      this.#readController.close();
    }
    // RFC 6455 §5.5.1: echo the close, keeping its code (and reason).
    if (!this.#protocol.closeSent) this.#sendClose(body);
    clearTimeout(this.#closeTimer);
    if (this.#role === "server") {
      // RFC 6455 §7.1.1: the server ends TCP first, once its close frame is
      // out; a peer that does not take it gets closeTimeout.
      this.#closeTimer = setTimeout(
        TransportWebSocket.#closeTimedOut,
        this.#closeTimeout,
        this,
      );
      this.#writer.flushed().then(() => this.#finish());
    } else {
      // The client waits for the server to end TCP, but not forever.
      this.#closeTimer = setTimeout(() => this.#finish(), this.#closeTimeout);
    }
    // Reading stopped while the close waited: read on, to see TCP end.
    this.#startReading();
  }

  #onEnd(): void {
    if (this.#protocol.closeReceived) {
      // The peer has ended TCP after its close: what we still have queued
      // (replies, our close echo) goes out first; the close timer set by
      // #onClose bounds the wait. Messages still inflating come before.
      const end = () => {
        this.#writer.flushed().then(() => this.#finish());
      };
      if (this.#inbound) this.#chain(end);
      else end();
      return;
    }
    if (this.#failure) {
      // The peer has ended TCP while we linger: end ours once our close
      // frame is out (closeTimeout bounds the wait).
      const failure = this.#failure;
      this.#writer.flushed().then(() => this.#finish(failure));
      return;
    }
    // The messages before the end are the application's still.
    const failure = new WebSocketError(
      "Cannot read: the connection ended without a close frame",
      { code: "ERR_ABNORMAL_CLOSURE" },
    );
    this.#endInOrder(() => this.#fail(failure), FAIL_WAIT);
  }

  #abnormal(cause: unknown): WebSocketError {
    return new WebSocketError(`Cannot read: the transport failed (${cause})`, {
      code: "ERR_ABNORMAL_CLOSURE",
      cause,
    });
  }

  // --- outbound --------------------------------------------------------

  #send(chunk: MessageData): Promise<void> | undefined {
    if (this.#writesComing > 0) this.#writesComing--;
    if (this.#done || this.#closeAfter) throw this.#closingError();
    let compressing: Promise<void> | undefined;
    try {
      compressing = this.#protocol.send(chunk);
    } catch (error) {
      // A value that is not a message: the application's bug, so the
      // connection fails with 1011 (RFC 6455 §7.4.1) and the peer hears
      // it, rather than the writable alone erroring while the connection
      // stays open with nobody writing.
      if (error instanceof WebSocketError) this.#fail(error);
      throw error;
    }
    if (compressing) return compressing;
    if (this.#outbox.byReference) {
      // The payload goes to the socket uncopied: write() resolves once the
      // socket has it, so that the application may reuse its buffer then.
      this.#outbox.byReference = false;
      return this.#writer.flushed();
    }
    // No promise on the fast path: the stream resolves the write itself.
    return this.#writer.full ? this.#writer.drained() : undefined;
  }

  #closingError(): TypeError {
    return new TypeError(
      `Cannot send message: the connection is ${
        this.#done ? "closed" : "closing"
      }`,
    );
  }

  async #sendCompressed(opcode: Opcode, payload: Uint8Array): Promise<void> {
    this.#compressing++;
    try {
      const compressed = await this.#deflater!.deflate(payload);
      if (this.#done) throw this.#closingError();
      this.#protocol.sendCompressed(opcode, compressed);
    } finally {
      // A close() that came meanwhile goes out behind this message (its
      // timer, set by close(), bounds the wait).
      if (
        --this.#compressing === 0 && this.#closeAfter && !this.#done &&
        !this.#protocol.closeSent
      ) this.#sendClose(this.#closeAfter);
    }
    // The deflater's output is ours: no need to wait for the socket.
    this.#outbox.byReference = false;
    if (this.#writer.full) await this.#writer.drained();
  }

  #sendClose(body: Uint8Array): void {
    // A ping that waited for the outbox to drain is answered first.
    this.#protocol.sendPendingPong();
    this.#protocol.close(body);
    // The heartbeat's pongs no longer count (its pings are rejected):
    // closeTimeout bounds the rest.
    clearTimeout(this.#heartbeatTimer);
    this.#rejectPings(new TypeError("Cannot ping: the connection is closing"));
    // The writable is not errored here: a pipe into it (the echo pattern
    // `readable.pipeTo(writable)`) then closes it when the readable ends,
    // and resolves. A message written after this is refused by #send.
  }

  /** The writer's question: see `WriterHost.answersComing`. */
  #answersComing(draining: boolean): boolean {
    return this.#readableOpen && !this.#protocol.closeSent &&
      ((this.#readController.desiredSize ?? 0) < this.#readableHighWaterMark ||
        (this.#writesComing > 0 && !draining));
  }

  // --- ending ----------------------------------------------------------

  /** Closes for a reason given to `cancel` or `abort`. */
  #closeWith(reason: unknown): void {
    this.close(closeRequestFor(reason));
  }

  /** Fails the connection (RFC 6455 §7.1.7). */
  /**
   * Fails the connection (RFC 6455 §7.1.7): sends a close frame with the
   * error's code when it has one that may go on the wire, lets the bytes
   * queued before it go out, half-closes, and drops what the peer still
   * sends until it ends TCP (see LINGER_BYTES). `closeTimeout` bounds all
   * of that. With `now`, for the timeouts and a broken transport, the
   * transport is closed at once, whatever is still being written.
   */
  #fail(error: WebSocketError, now = false): void {
    if (this.#done) return;
    if (this.#failure) {
      // Already failing: a timeout still ends it at once.
      if (now) this.#finish(this.#failure);
      return;
    }
    this.#failure = error;
    // It supersedes a pending end (the peer's close waiting for the
    // application): the failure decides the close code and the outcome.
    clearTimeout(this.#endingTimer);
    this.#ending = undefined;
    this.#endingSoon = false;
    if (this.#readableOpen) {
      this.#readableOpen = false;
      this.#readController.error(error);
    }
    this.#rejectPings(error);
    this.#protocol.fail(error);
    try {
      this.#writeController.error(error);
    } catch {
      // Already errored.
    }
    if (now) {
      this.#finish(error);
      return;
    }
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(
      () => this.#finish(error),
      this.#closeTimeout,
    );
    // Read (and drop) what the peer sends meanwhile: a peer blocked on a
    // write may read our close frame only once its write is through.
    this.#startReading();
    this.#writer.flushed().then(() => {
      // FIN after our close frame; the read loop sees the peer's end.
      if (!this.#done) this.#transport.closeWrite();
    });
  }

  #finish(error?: WebSocketError): void {
    if (this.#done) return;
    this.#done = true;
    const listener = finishListeners.get(this);
    if (listener) {
      finishListeners.delete(this);
      listener(this);
    }
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#endingTimer);
    this.#ending = undefined;
    this.#transport.close();
    this.#inflater?.close();
    this.#deflater?.close();
    // A write may still hold bytes of a block the outbox has: that block
    // is not pooled again (it goes back, if at all, when the write settles).
    this.#writer.stop();
    this.#smallBuffer = undefined;
    const failure = error ?? this.#failure ??
      (this.#protocol.closeReceived ? undefined : new WebSocketError(
        "Cannot close cleanly: the connection ended without a close frame",
        { code: "ERR_ABNORMAL_CLOSURE" },
      ));
    this.#rejectPings(
      failure ?? new TypeError("Cannot ping: the connection is closed"),
    );
    if (this.#readableOpen) {
      this.#readableOpen = false;
      if (failure) this.#readController.error(failure);
      else this.#readController.close();
    }
    if (failure) {
      // `closed` may go unobserved; its rejection is not an unhandled
      // error. Marked here, not at construction: a handler attached there
      // was a promise and a reaction kept by every idle connection.
      this.closed.catch(ignore);
      this.#rejectClosed(failure);
    } else this.#resolveClosed(this.#protocol.closeReceived!);
  }

  #rejectPings(error: unknown): void {
    for (const ping of this.#pings?.splice(0) ?? []) ping.reject(error);
  }

  #scheduleHeartbeat(): void {
    const { interval, timeout } = this.#heartbeat!;
    this.#heartbeatTimer = setTimeout(() => {
      if (this.#done || this.#protocol.closeSent) return;
      this.#heartbeatTimer = setTimeout(() => {
        this.#fail(
          new WebSocketError(
            `Cannot keep connection: no pong within ${timeout} ms`,
            { code: "ERR_HEARTBEAT_TIMEOUT" },
          ),
          true,
        );
      }, timeout);
      this.ping().then(() => {
        clearTimeout(this.#heartbeatTimer);
        if (!this.#done) this.#scheduleHeartbeat();
      }, () => {});
    }, interval);
  }
}
