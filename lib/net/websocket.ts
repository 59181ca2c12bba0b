/**
 * {@linkcode WebSocket}: the browser's `WebSocket` (an `EventTarget`) over
 * {@linkcode connect}, for code written for browsers.
 *
 * It follows the WHATWG WebSockets Standard (websockets.spec.whatwg.org):
 * the constructor's URL and protocol checks, `readyState`, `send()`,
 * `close()`, `bufferedAmount`, and the events in the order the standard's
 * "feedback from the protocol" gives. Underneath it is `connect()`, so it
 * has permessage-deflate, the limits, extra headers, TLS CAs and `dial`.
 *
 * @module
 */

import {
  checkProtocols,
  checkRequestHeaders,
  connect,
  type ConnectOptions,
} from "./connect.ts";
import type { WebSocketConnection } from "./connection.ts";
import type { MessageData } from "../codec/message.ts";
import { checkConnectOptions, checkOptions } from "../_options.ts";

/** Options for {@linkcode WebSocket}, its third argument (not in browsers). */
export interface WebSocketOptions
  extends Omit<ConnectOptions, "protocols" | "shareBuffers"> {
  /**
   * The bytes `send()` may have queued and not yet written (what
   * `bufferedAmount` counts). A `send()` past it is not sent: as the
   * standard says for data that "would need to be buffered but the buffer
   * is full", the socket is flagged full and closed (code 1008), and
   * `error` fires before `close`. `send()` cannot wait; watch
   * `bufferedAmount` to stay below it.
   *
   * @default {67108864 (64 MiB)}
   */
  maxBufferedAmount?: number;
}

/** The default of {@linkcode WebSocketOptions.maxBufferedAmount}. */
const DEFAULT_MAX_BUFFERED_AMOUNT = 64 * 1024 * 1024;

const CONNECTING = 0 as const;
const OPEN = 1 as const;
const CLOSING = 2 as const;
const CLOSED = 3 as const;

/** What `binaryType` may be. */
export type WebSocketBinaryType = "blob" | "arraybuffer";

/** The events a {@linkcode WebSocket} fires, by name, as the DOM's map. */
export interface WebSocketEventMap {
  /** The handshake is done. */
  open: Event;
  /** A message: `data` is a string, a `Blob` or an `ArrayBuffer`. */
  message: MessageEvent;
  /** The connection failed or was closed uncleanly; `close` follows. */
  error: Event;
  /** The connection is closed: `code`, `reason`, `wasClean`. */
  close: CloseEvent;
}

/** An `on<event>` handler: called with the socket as `this`. */
export type WebSocketEventHandler<E extends Event = Event> =
  | ((this: WebSocket, event: E) => unknown)
  | null;

// Deno has a global CloseEvent; this stands in where a runtime has none.
class FallbackCloseEvent extends Event {
  #wasClean: boolean;
  #code: number;
  #reason: string;
  constructor(type: string, init: CloseEventInit = {}) {
    super(type, init);
    this.#wasClean = init.wasClean ?? false;
    this.#code = init.code ?? 0;
    this.#reason = init.reason ?? "";
  }
  get wasClean(): boolean {
    return this.#wasClean;
  }
  get code(): number {
    return this.#code;
  }
  get reason(): string {
    return this.#reason;
  }
}

const CloseEventClass: typeof CloseEvent =
  (globalThis as { CloseEvent?: typeof CloseEvent }).CloseEvent ??
    (FallbackCloseEvent as unknown as typeof CloseEvent);

type Outgoing =
  | { kind: "data"; data: MessageData; size: number }
  | { kind: "blob"; blob: Blob; size: number }
  | { kind: "close"; closeCode?: number; reason: string };

interface Handler {
  callback: (this: WebSocket, event: Event) => unknown;
  listener: (event: Event) => void;
}

/**
 * A client WebSocket with the browser's API: an `EventTarget` that fires
 * `open`, `message`, `error` and `close`, with `send()`, `close()`,
 * `readyState`, `bufferedAmount` and `binaryType`, as the WHATWG WebSockets
 * Standard defines them. It is {@linkcode connect} underneath, with all its
 * options (the third argument, which browsers do not have).
 *
 * Importing it shadows the runtime's global `WebSocket` in the importing
 * module only; `globalThis.WebSocket` is still Deno's. `instanceof` tells
 * them apart.
 *
 * Receiving: a read loop takes one message at a time from the connection
 * and dispatches its `message` event before it reads the next, so a slow
 * listener slows reading from TCP. Events are dispatched from promise jobs,
 * not one task each as in browsers: their order is the standard's, but a
 * chain of microtasks a listener starts may run past the next message's
 * dispatch. An `EventTarget` cannot push back on
 * work a listener starts and does not finish: what waits between TCP and
 * the listeners is the connection's queue, bounded by
 * `readableHighWaterMark` (1 MiB), plus the one message being dispatched.
 * Each message's data owns its bytes (an `ArrayBuffer` of exactly the
 * message, or a `Blob`): nothing is written over them later.
 *
 * Sending: `send()` cannot wait either. `bufferedAmount` says how much is
 * still queued; past `maxBufferedAmount` (64 MiB) the socket closes.
 *
 * @example Echo a message, then close
 * ```ts
 * import { serve, WebSocket } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
 * socket.onopen = () => socket.send("hello");
 * const echoed = await new Promise((resolve) => {
 *   socket.onmessage = (event) => resolve(event.data);
 * });
 * assertEquals(echoed, "hello");
 * const closed = new Promise<CloseEvent>((resolve) => {
 *   socket.addEventListener("close", resolve);
 * });
 * socket.close(1000, "done");
 * const event = await closed;
 * assertEquals([event.code, event.reason, event.wasClean], [1000, "done", true]);
 * await server.shutdown();
 * ```
 */
export class WebSocket extends EventTarget {
  /** The socket is connecting. */
  static readonly CONNECTING: 0 = CONNECTING;
  /** The socket is open: messages flow. */
  static readonly OPEN: 1 = OPEN;
  /** The closing handshake has started. */
  static readonly CLOSING: 2 = CLOSING;
  /** The connection is closed, or could not be opened. */
  static readonly CLOSED: 3 = CLOSED;
  /** The socket is connecting (on the prototype too, as in browsers). */
  declare readonly CONNECTING: 0;
  /** The socket is open (on the prototype too). */
  declare readonly OPEN: 1;
  /** The closing handshake has started (on the prototype too). */
  declare readonly CLOSING: 2;
  /** The connection is closed (on the prototype too). */
  declare readonly CLOSED: 3;

  #url: string;
  #origin: string;
  #readyState: number = CONNECTING;
  #binaryType: WebSocketBinaryType = "blob";
  #protocol = "";
  #extensions = "";
  #connection: WebSocketConnection | undefined;
  #writer: WritableStreamDefaultWriter<MessageData> | undefined;
  #abort = new AbortController();
  #maxBufferedAmount: number;
  // bufferedAmount's parts: bytes sent after the closing handshake started
  // (counted, never sent, never taken back), bytes not yet taken by the
  // connection's writable, and bytes in its outbox.
  #neverSent = 0;
  #queued = 0;
  #inOutbox = 0;
  // Sends waiting behind a Blob being read, to keep their order.
  #outgoing: Outgoing[] = [];
  #readingBlob = false;
  // The last send handed to the writer, settled either way: the close
  // frame waits for it.
  #lastWrite: Promise<void> | undefined;
  #full = false;
  #handlers = new Map<string, Handler>();

  /**
   * Starts connecting, as the standard's constructor does.
   *
   * @param url A `ws:` or `wss:` URL (`http:` and `https:` are taken as
   * `ws:` and `wss:`), absolute or relative to `location` when Deno has one.
   * @param protocols A subprotocol or a list of them to offer.
   * @default {[]}
   * @param options What {@linkcode connect} takes, and `maxBufferedAmount`.
   * @default {{}}
   * @throws {DOMException} A `SyntaxError` for a URL that does not parse, a
   * scheme other than ws/wss/http/https, a fragment, or a protocol that is
   * repeated or not a token (RFC 6455 §4.1).
   * @throws {RangeError | TypeError} For an option out of its range, or not
   * a number, or a header in `headers` that the handshake writes itself.
   */
  constructor(
    url: string | URL,
    protocols: string | Iterable<string> = [],
    options: WebSocketOptions = {},
  ) {
    super();
    // WebSockets Standard, the constructor: "get a URL record", then the
    // protocols' checks; both throw a SyntaxError DOMException.
    const record = urlRecord(url);
    const list = protocolList(protocols);
    checkConnectOptions("create WebSocket", options);
    checkRequestHeaders("create WebSocket", options.headers);
    checkOptions("create WebSocket", options, [[
      "maxBufferedAmount",
      { min: 0, infinity: true },
    ]]);
    this.#maxBufferedAmount = options.maxBufferedAmount ??
      DEFAULT_MAX_BUFFERED_AMOUNT;
    this.#url = record.href;
    this.#origin = record.origin;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    connect(record, {
      ...options,
      protocols: list,
      signal,
      // A message handed to a listener owns its ArrayBuffer (see #data).
      shareBuffers: false,
    }).then(
      (connection) => this.#established(connection),
      () => this.#closed(1006, "", false),
    );
  }

  /**
   * The URL, serialized, after http/https became ws/wss.
   *
   * @returns The URL.
   */
  get url(): string {
    return this.#url;
  }

  /**
   * CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3).
   *
   * @returns The state.
   */
  get readyState(): number {
    return this.#readyState;
  }

  /**
   * Bytes of application data (UTF-8 text, binary) given to `send()` and
   * not yet written to the socket. It grows on `send()` and shrinks as the
   * bytes are written; a `send()` after the closing handshake started adds
   * its bytes and sends nothing, so it then only grows (as the standard
   * says). Once a message is framed, what it counts is at most the bytes
   * still in the outbox (compressed, with framing). A message that finds
   * the outbox past `writableHighWaterMark` (1 MiB) counts whole until the
   * outbox has drained below that mark.
   *
   * @returns The count of bytes.
   */
  get bufferedAmount(): number {
    this.#settle();
    const outbox = this.#connection?.bufferedAmount ?? 0;
    return this.#neverSent + this.#queued + Math.min(this.#inOutbox, outbox);
  }

  // The outbox has been written out: what it held is no longer buffered.
  // Checked on every send, close, received message and read of
  // bufferedAmount, so that the outbox's later frames (a close frame, new
  // messages) are not counted against messages written long before.
  #settle(): void {
    if (this.#inOutbox > 0 && (this.#connection?.bufferedAmount ?? 0) === 0) {
      this.#inOutbox = 0;
    }
  }

  /**
   * The subprotocol the server chose, or `""`.
   *
   * @returns The subprotocol.
   */
  get protocol(): string {
    return this.#protocol;
  }

  /**
   * The extensions the server accepted (`permessage-deflate`, by default
   * offered), or `""`.
   *
   * @returns The extensions header's value.
   */
  get extensions(): string {
    return this.#extensions;
  }

  /**
   * What a binary message's `data` is: a `Blob` or an `ArrayBuffer`. Other
   * values are ignored, as the standard's enumeration attribute says.
   *
   * @returns The binary type.
   * @default {"blob"}
   */
  get binaryType(): WebSocketBinaryType {
    return this.#binaryType;
  }

  set binaryType(value: WebSocketBinaryType) {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  /** Called for `open`, in order with the listeners. */
  get onopen(): WebSocketEventHandler {
    return this.#getHandler("open");
  }
  set onopen(value: WebSocketEventHandler) {
    this.#setHandler("open", value);
  }
  /** Called for `message` with a `MessageEvent`. */
  get onmessage(): WebSocketEventHandler<MessageEvent> {
    return this.#getHandler("message");
  }
  set onmessage(value: WebSocketEventHandler<MessageEvent>) {
    this.#setHandler("message", value as WebSocketEventHandler);
  }
  /** Called for `error`, a plain `Event`, fired before `close`. */
  get onerror(): WebSocketEventHandler {
    return this.#getHandler("error");
  }
  set onerror(value: WebSocketEventHandler) {
    this.#setHandler("error", value);
  }
  /** Called for `close` with a `CloseEvent`. */
  get onclose(): WebSocketEventHandler<CloseEvent> {
    return this.#getHandler("close");
  }
  set onclose(value: WebSocketEventHandler<CloseEvent>) {
    this.#setHandler("close", value as WebSocketEventHandler);
  }

  /**
   * Sends a message: a string as text, an `ArrayBuffer`, a view or a
   * `Blob` as binary. The bytes are copied at once (a Blob is read first,
   * and the sends after it wait for it, to keep their order). After the
   * closing handshake has started it sends nothing and adds the bytes to
   * `bufferedAmount`, as the standard says.
   *
   * @param data The message.
   * @throws {DOMException} `InvalidStateError` while connecting.
   */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): void {
    if (arguments.length === 0) {
      throw new TypeError("Cannot send: no data given");
    }
    if (this.#readyState === CONNECTING) {
      throw new DOMException(
        "Cannot send: the WebSocket is still connecting",
        "InvalidStateError",
      );
    }
    this.#settle();
    let item: Outgoing;
    if (data instanceof Blob) {
      item = { kind: "blob", blob: data, size: data.size };
    } else if (data instanceof ArrayBuffer) {
      item = { kind: "data", data: data.slice(0), size: data.byteLength };
    } else if (ArrayBuffer.isView(data)) {
      // A copy: the caller may change its buffer as soon as send() returns.
      const bytes = new Uint8Array(
        data.buffer,
        data.byteOffset,
        data.byteLength,
      )
        .slice();
      item = { kind: "data", data: bytes, size: bytes.byteLength };
    } else {
      const text = String(data).toWellFormed();
      item = { kind: "data", data: text, size: utf8Length(text) };
    }
    if (this.#readyState !== OPEN) {
      // "Any invocation of this method ... that does not throw an exception
      // must increase the bufferedAmount attribute": sent or not.
      this.#neverSent += item.size;
      return;
    }
    if (this.bufferedAmount + item.size > this.#maxBufferedAmount) {
      // The standard: data that would need to be buffered when the buffer
      // is full flags the socket full and closes the connection.
      this.#neverSent += item.size;
      this.#full = true;
      this.#readyState = CLOSING;
      this.#enqueue({
        kind: "close",
        closeCode: 1008,
        reason: "send buffer full",
      });
      return;
    }
    this.#queued += item.size;
    this.#enqueue(item);
  }

  /**
   * Starts the closing handshake, as the standard's `close()` does: while
   * connecting it abandons the attempt (`error`, then `close` with 1006);
   * while open it sends a close frame after every message sent before it;
   * once closing or closed it does nothing.
   *
   * @param code 1000 or 3000–4999 (clamped to an integer, as WebIDL's
   * `[Clamp] unsigned short`).
   * @default {none (the server sees 1005), or 1000 when a reason is given}
   * @param reason At most 123 bytes of UTF-8.
   * @default {""}
   * @throws {DOMException} `InvalidAccessError` for another code,
   * `SyntaxError` for a reason over 123 bytes.
   */
  close(code?: number, reason?: string): void {
    let closeCode: number | undefined;
    if (code !== undefined) {
      closeCode = clampUnsignedShort(code);
      if (closeCode !== 1000 && (closeCode < 3000 || closeCode > 4999)) {
        throw new DOMException(
          `Cannot close: the code must be 1000 or from 3000 to 4999, not ${code}`,
          "InvalidAccessError",
        );
      }
    }
    let text = "";
    if (reason !== undefined) {
      text = String(reason).toWellFormed();
      const bytes = utf8Length(text);
      if (bytes > 123) {
        throw new DOMException(
          `Cannot close: the reason takes ${bytes} bytes of UTF-8, over 123`,
          "SyntaxError",
        );
      }
    }
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
    this.#settle();
    if (this.#readyState === CONNECTING) {
      // "Fail the WebSocket connection": error, then close with 1006.
      this.#readyState = CLOSING;
      this.#abort.abort();
      return;
    }
    this.#readyState = CLOSING;
    // A reason with no code means 1000; neither means a close frame with no
    // body (the standard's close(), and closeBodyFor).
    this.#enqueue({ kind: "close", closeCode, reason: text });
  }

  /**
   * Adds a listener, as `EventTarget` does; typed by event name.
   *
   * @param type The event's name.
   * @param listener Called with the event.
   * @param options As `EventTarget.addEventListener`'s.
   */
  override addEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (this: WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Adds a listener for any event name, as `EventTarget` does.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As `EventTarget.addEventListener`'s.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Removes a listener, as `EventTarget` does; typed by event name.
   *
   * @param type The event's name.
   * @param listener The listener added.
   * @param options As `EventTarget.removeEventListener`'s.
   */
  override removeEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (this: WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener for any event name, as `EventTarget` does.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As `EventTarget.removeEventListener`'s.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  // --- events --------------------------------------------------------

  #getHandler<E extends Event>(type: string): WebSocketEventHandler<E> {
    return (this.#handlers.get(type)?.callback ??
      null) as WebSocketEventHandler<E>;
  }

  // DOM, event handler attributes: the first non-null value adds one
  // listener, in order with addEventListener's; a new value keeps its
  // place; null removes it. A value that is not a function is null.
  #setHandler(type: string, value: WebSocketEventHandler): void {
    const entry = this.#handlers.get(type);
    if (typeof value !== "function") {
      if (entry) {
        this.removeEventListener(type, entry.listener);
        this.#handlers.delete(type);
      }
      return;
    }
    if (entry) {
      entry.callback = value;
      return;
    }
    const handler: Handler = {
      callback: value,
      listener: (event) => {
        // The event handler processing algorithm: false cancels.
        if (handler.callback.call(this, event) === false) {
          event.preventDefault();
        }
      },
    };
    this.#handlers.set(type, handler);
    this.addEventListener(type, handler.listener);
  }

  #established(connection: WebSocketConnection): void {
    this.#connection = connection;
    this.#writer = connection.writable.getWriter();
    this.#writer.closed.catch(() => {});
    if (this.#readyState !== CONNECTING) {
      // close() came while connecting and the abort lost the race: fail.
      connection.close();
      connection.closed.then(
        () => this.#closed(1006, "", false),
        () => this.#closed(1006, "", false),
      );
      return;
    }
    // "When the WebSocket connection is established": OPEN, extensions,
    // protocol, then open.
    this.#readyState = OPEN;
    this.#extensions = connection.extensions;
    this.#protocol = connection.protocol;
    this.dispatchEvent(new Event("open"));
    this.#readLoop(connection);
  }

  async #readLoop(connection: WebSocketConnection): Promise<void> {
    const reader = connection.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#settle();
        // "When a WebSocket message has been received": if readyState is
        // not OPEN, return. Messages after our close() are read (the
        // connection keeps reading until the server's close) and dropped.
        if (this.#readyState !== OPEN) continue;
        this.dispatchEvent(
          new MessageEvent("message", {
            data: this.#data(value),
            origin: this.#origin,
          }),
        );
      }
    } catch {
      // The connection failed: `closed` says so.
    }
    // The readable ends at the server's close frame: the closing handshake
    // has started (RFC 6455 §7.1.3).
    if (this.#readyState === OPEN) this.#readyState = CLOSING;
    try {
      const info = await connection.closed;
      this.#closed(info.closeCode, info.reason, true);
    } catch {
      // RFC 6455 §7.1.5: no close frame received means 1006.
      this.#closed(1006, "", false);
    }
  }

  #data(value: string | Uint8Array): string | Blob | ArrayBuffer {
    if (typeof value === "string") return value;
    if (this.#binaryType === "blob") return new Blob([value as BlobPart]);
    // The message's own buffer when it is exactly the message; a copy when
    // it is a view into a larger one, so that the listener's ArrayBuffer
    // holds this message alone and nothing writes over it.
    const buffer = value.buffer;
    return buffer instanceof ArrayBuffer && value.byteOffset === 0 &&
        value.byteLength === buffer.byteLength
      ? buffer
      : value.slice().buffer;
  }

  // "When the WebSocket connection is closed": CLOSED, error when it failed
  // (or was flagged full), then close.
  #closed(code: number, reason: string, wasClean: boolean): void {
    this.#readyState = CLOSED;
    if (!wasClean || this.#full) this.dispatchEvent(new Event("error"));
    this.dispatchEvent(
      new CloseEventClass("close", { code, reason, wasClean }),
    );
  }

  // --- sending -------------------------------------------------------

  #enqueue(item: Outgoing): void {
    this.#outgoing.push(item);
    if (!this.#readingBlob) this.#flush();
  }

  // Hands sends to the connection in order; stops at a Blob until it has
  // been read.
  #flush(): void {
    const outgoing = this.#outgoing;
    while (outgoing.length > 0) {
      const item = outgoing[0]!;
      if (item.kind === "blob") {
        this.#readingBlob = true;
        item.blob.arrayBuffer().then((buffer) => {
          outgoing[0] = { kind: "data", data: buffer, size: item.size };
        }, () => {
          // An unreadable Blob: close as for an internal error (1011).
          outgoing.splice(0, outgoing.length, {
            kind: "close",
            closeCode: 1011,
            reason: "could not read a Blob",
          });
          this.#queued = 0;
          this.#full = true;
          if (this.#readyState === OPEN) this.#readyState = CLOSING;
        }).finally(() => {
          this.#readingBlob = false;
          this.#flush();
        });
        return;
      }
      outgoing.shift();
      if (item.kind === "close") {
        const connection = this.#connection!;
        const close = () => {
          try {
            connection.close({
              closeCode: item.closeCode,
              reason: item.reason,
            });
          } catch {
            // The codes were checked; 1008 and 1011 may go on the wire.
          }
        };
        // The sends before close() go out first (the standard queues the
        // close after them): the writable refuses a write that it still
        // holds once the close frame is queued, so wait until the last one
        // has reached the connection (sendTimeout bounds that wait).
        if (this.#lastWrite) this.#lastWrite.then(close);
        else close();
        continue;
      }
      const size = item.size;
      this.#lastWrite = this.#writer!.write(item.data).then(() => {
        this.#queued -= size;
        this.#inOutbox += size;
      }, () => {
        // The connection ended: `close` tells the application.
      });
    }
  }
}

Object.defineProperties(WebSocket.prototype, {
  CONNECTING: { value: CONNECTING, enumerable: true },
  OPEN: { value: OPEN, enumerable: true },
  CLOSING: { value: CLOSING, enumerable: true },
  CLOSED: { value: CLOSED, enumerable: true },
});

// WebSockets Standard, "get a URL record".
function urlRecord(url: string | URL): URL {
  let base: string | undefined;
  try {
    base = (globalThis as { location?: Location }).location?.href;
  } catch {
    // Deno throws when run without --location.
  }
  let record: URL;
  try {
    record = new URL(String(url), base);
  } catch {
    throw new DOMException(
      `Cannot create WebSocket: ${JSON.stringify(String(url))} is not a URL`,
      "SyntaxError",
    );
  }
  if (record.protocol === "http:") record.protocol = "ws:";
  else if (record.protocol === "https:") record.protocol = "wss:";
  if (record.protocol !== "ws:" && record.protocol !== "wss:") {
    throw new DOMException(
      `Cannot create WebSocket: the scheme ${record.protocol} is not ws: or wss:`,
      "SyntaxError",
    );
  }
  // A URL with an empty fragment ("#") has one too, though hash is "".
  if (record.hash !== "" || record.href.endsWith("#")) {
    throw new DOMException(
      "Cannot create WebSocket: a WebSocket URL has no fragment",
      "SyntaxError",
    );
  }
  return record;
}

// The constructor's protocols: a string is a list of one; each must be a
// token (the Sec-WebSocket-Protocol grammar) and appear once.
function protocolList(protocols: string | Iterable<string>): string[] {
  const list = typeof protocols === "string" ||
      typeof (protocols as Partial<Iterable<string>>)?.[Symbol.iterator] !==
        "function"
    ? [String(protocols)]
    : Array.from(protocols, String);
  checkProtocols("create WebSocket", list, true);
  return list;
}

// WebIDL's [Clamp] unsigned short: clamp to 0–65535, round half to even.
function clampUnsignedShort(value: unknown): number {
  const number = Number(value);
  if (Number.isNaN(number)) return 0;
  const x = Math.min(Math.max(number, 0), 65535);
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5 || (fraction === 0.5 && floor % 2 === 1)) {
    return floor + 1;
  }
  return floor;
}

// UTF-8 bytes of a well-formed string, without encoding it.
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      // A surrogate pair: 4 bytes for 2 units.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}
