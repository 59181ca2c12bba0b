/**
 * Private: a Comet session on the server, the state the request/response
 * transports (SSE, long and short polling, iframe) share, and the
 * {@linkcode RealtimeConnection} it hands to the application.
 *
 * - **Up** (client → server): `POST send` carries `{ seq, m: [...] }`.
 *   Messages below the next expected seq are duplicates of a retried POST
 *   and dropped; each new one is queued in `readable`, bounded by
 *   `maxQueuedBytes`: what does not fit is not acknowledged, and the client
 *   sends it again. The answer is the next expected seq.
 * - **Down** (server → client): every message gets an id. A downstream
 *   request (a stream, or a poll) says the last id it has (`ack`); the
 *   session drops what is acknowledged and sends the rest. Sent messages
 *   stay in a replay window (`maxReplayBytes`) until acknowledged, so that
 *   a stream that breaks or a poll answer that is lost is sent again (a
 *   poll answer holds at most what fits the window). A request whose ack is
 *   older than the window asks for messages that are gone: rather than skip
 *   them it gets a 410 (a stream: a close item, 1006), and the client fails
 *   with `ERR_SESSION_CLOSED`. The session itself goes on (that request may
 *   be a stale retry of a client that is fine) until the client closes it
 *   or `sessionTimeout` passes.
 * - **Bounds**: writes wait while the unsent messages pass
 *   `writableHighWaterMark`, for at most `sendTimeout`; a session no
 *   request has touched for `sessionTimeout` (while no stream or poll is open)
 *   ends with `ERR_SESSION_TIMEOUT`.
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";
import { closeBodyFor } from "../codec/close.ts";
import { WebSocketError } from "../errors.ts";
import {
  fromWire,
  toWire,
  type WireItem,
  type WireMessage,
  wireSize,
} from "./_wire.ts";
import type {
  RealtimeCloseInfo,
  RealtimeConnection,
  RealtimeTransport,
} from "./connection.ts";

/** The bounds of a session; every one has a default in `realtime()`. */
export interface SessionLimits {
  sessionTimeout: number;
  writableHighWaterMark: number;
  maxQueuedBytes: number;
  maxReplayBytes: number;
  sendTimeout: number;
  closeTimeout: number;
}

interface Item {
  item: WireItem;
  id: number;
  size: number;
}

/** What {@linkcode CometSession.take} found. */
export type Take = { items: WireItem[]; done: boolean } | "lost";

/**
 * One client's session: the connection the application holds, and the
 * queues the transports read and write.
 */
export class CometSession implements RealtimeConnection {
  readonly id: string;
  readonly transport: RealtimeTransport;
  readonly readable: ReadableStream<string | Uint8Array>;
  readonly writable: WritableStream<MessageData>;
  readonly closed: Promise<RealtimeCloseInfo>;
  readonly url: string;

  #limits: SessionLimits;
  #onEnd: (session: CometSession) => void;
  #inbound!: ReadableStreamDefaultController<string | Uint8Array>;
  #expectedSeq = 0;
  #nextId = 1;
  // Not yet sent on any downstream.
  #pending: Item[] = [];
  #pendingBytes = 0;
  // Sent, not yet acknowledged; ids in order.
  #replay: Item[] = [];
  #replayBytes = 0;
  // The highest id dropped from the replay window unacknowledged: an ack
  // below it means the client lost messages.
  #replayFloor = 0;
  #wake: (() => void) | undefined;
  #drained: (() => void) | undefined;
  #downstream = 0;
  // Downstreams open now (a superseded one stays until it ends).
  #attached = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closeSent = false;
  #ended = false;
  #resolveClosed!: (info: RealtimeCloseInfo) => void;
  #rejectClosed!: (error: unknown) => void;

  constructor(
    id: string,
    transport: RealtimeTransport,
    url: string,
    limits: SessionLimits,
    onEnd: (session: CometSession) => void,
  ) {
    this.id = id;
    this.transport = transport;
    this.url = url;
    this.#limits = limits;
    this.#onEnd = onEnd;
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(() => {});
    this.readable = new ReadableStream<string | Uint8Array>({
      start: (controller) => {
        this.#inbound = controller;
      },
      cancel: () => this.close(),
    }, {
      highWaterMark: limits.maxQueuedBytes,
      size: (chunk) => Math.max(1, chunk.length),
    });
    this.writable = new WritableStream<MessageData>({
      write: (data) => this.#write(data),
      close: () => this.close(),
      abort: () => this.close(),
    });
    this.#armIdle();
  }

  /** The bytes of messages written and not yet sent. */
  get bufferedAmount(): number {
    return this.#pendingBytes;
  }

  close(options: { closeCode?: number; reason?: string } = {}): void {
    const { closeCode, reason } = closeBodyFor(options);
    if (this.#closeSent || this.#ended) return;
    this.#closeSent = true;
    this.#push({ c: closeCode ?? 1005, r: reason });
    // The client answers the close item with a close request; a client that
    // never does is gone.
    this.#closeTimer = setTimeout(() => {
      this.#fail(
        new WebSocketError(
          `Cannot close: the client did not answer the close in ${this.#limits.closeTimeout} ms`,
          { code: "ERR_CLOSE_TIMEOUT" },
        ),
      );
    }, this.#limits.closeTimeout);
  }

  /** Marks a request from the client: the idle timer starts again. */
  touch(): void {
    this.#armIdle();
  }

  /**
   * Takes the client's messages from `seq` on; returns the next seq it
   * expects (what it has not acknowledged, it sends again).
   */
  receive(seq: number, messages: unknown[]): number {
    this.touch();
    if (this.#ended) return this.#expectedSeq;
    for (let i = 0; i < messages.length; i++) {
      if (seq + i < this.#expectedSeq) continue; // a retried POST's duplicate
      if (seq + i > this.#expectedSeq) break; // a gap: send again from the gap
      const message = fromWire(messages[i]);
      if (message === undefined) {
        this.#fail(
          new WebSocketError(
            "Cannot receive message: the client sent a value that is not a message",
            { code: "ERR_INVALID_MESSAGE", closeCode: 1007 },
          ),
        );
        return this.#expectedSeq;
      }
      // Full: leave the rest unacknowledged rather than buffer past the
      // bound (a single message always fits an empty queue).
      const room = this.#inbound.desiredSize ?? 0;
      const empty = room === this.#limits.maxQueuedBytes;
      if (!empty && room < Math.max(1, message.length)) break;
      this.#inbound.enqueue(message);
      this.#expectedSeq++;
    }
    return this.#expectedSeq;
  }

  /** The client closed (or answered our close). */
  closeReceived(closeCode: number, reason: string): void {
    this.touch();
    if (this.#ended) return;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#push({ c: closeCode, r: reason });
    }
    this.#end();
    try {
      this.#inbound.close();
    } catch {
      // cancelled
    }
    this.#resolveClosed({ closeCode, reason });
  }

  /**
   * Starts a downstream (a stream, or a held poll) that has everything up
   * to `ack`: the next {@linkcode take}s send what follows. A newer
   * downstream ends the previous one. Returns its token, to be given back
   * to {@linkcode detach} once; or `"lost"`, with nothing to give back,
   * when messages after `ack` have left the replay window.
   */
  attach(ack: number): number | "lost" {
    this.touch();
    while (this.#replay.length > 0 && this.#replay[0]!.id <= ack) {
      this.#replayBytes -= this.#replay.shift()!.size;
    }
    // Messages after `ack` left the window. The request gets "lost" (the
    // client fails on it); the session goes on, since a stale request (a
    // delayed retry) must not end the live downstream of the same client.
    if (ack < this.#replayFloor) return "lost";
    // What was sent but not acknowledged goes out again, first.
    if (this.#replay.length > 0) {
      this.#pending = this.#replay.concat(this.#pending);
      for (const item of this.#replay) this.#pendingBytes += item.size;
      this.#replay = [];
      this.#replayBytes = 0;
    }
    const token = ++this.#downstream;
    this.#wake?.();
    // While a downstream is open the client is there: no idle timeout.
    this.#attached++;
    clearTimeout(this.#idle);
    return token;
  }

  /** A downstream that {@linkcode attach} opened has ended. */
  detach(): void {
    this.#attached--;
    this.#armIdle();
  }

  /**
   * Waits up to `wait` ms for messages, then hands out what is unsent:
   * everything for a stream; for a poll (`fit`), what fits the replay
   * window (at least one item), so that a lost answer can be sent again
   * whole. `done` says the close item went out, or another downstream
   * replaced this one.
   */
  async take(
    token: number,
    wait: number,
    signal?: AbortSignal,
    fit = false,
  ): Promise<Take> {
    if (this.#pending.length === 0 && wait > 0 && !this.#ended) {
      await new Promise<void>((resolve) => {
        const wakeBefore = this.#wake;
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          if (this.#wake === done) this.#wake = wakeBefore;
          resolve();
        };
        const timer = setTimeout(done, wait);
        this.#wake = done;
        signal?.addEventListener("abort", done, { once: true });
      });
    }
    if (token !== this.#downstream || signal?.aborted) {
      return { items: [], done: true };
    }
    const items: WireItem[] = [];
    let done = false;
    let count = 0;
    for (const entry of this.#pending) {
      if (
        fit && count > 0 &&
        this.#replayBytes + entry.size > this.#limits.maxReplayBytes
      ) break;
      count++;
      items.push(entry.item);
      if ("c" in entry.item) done = true;
      this.#replay.push(entry);
      this.#replayBytes += entry.size;
    }
    for (const entry of this.#pending.splice(0, count)) {
      this.#pendingBytes -= entry.size;
    }
    // The client takes messages: a waiting write goes on (sendTimeout is
    // for a client that takes none).
    if (count > 0 || this.#pendingBytes <= this.#limits.writableHighWaterMark) {
      this.#drained?.();
    }
    // A stream has no ack until it reconnects: the window keeps the newest.
    while (
      this.#replayBytes > this.#limits.maxReplayBytes && this.#replay.length > 1
    ) {
      const dropped = this.#replay.shift()!;
      this.#replayBytes -= dropped.size;
      this.#replayFloor = dropped.id;
    }
    return { items, done: done || this.#ended };
  }

  /** Fails the session: the application sees the error, the client a close. */
  fail(error: WebSocketError): void {
    this.#fail(error);
  }

  #push(item: WireItem, size = 16): void {
    // The close item takes the next id too, though the wire does not carry
    // it: the client's ack (its last message's id) never reaches it, so it
    // stays in the replay window and a lost answer that carried it is
    // answered with it again. With id 0 every ack "acknowledged" it.
    const id = "i" in item ? item.i : this.#nextId++;
    this.#pending.push({ item, id, size });
    this.#pendingBytes += size;
    this.#wake?.();
  }

  async #write(data: MessageData): Promise<void> {
    if (this.#ended || this.#closeSent) {
      throw new WebSocketError("Cannot send: the connection is closing", {
        code: "ERR_ABNORMAL_CLOSURE",
      });
    }
    const message: WireMessage | undefined = toWire(data);
    if (message === undefined) {
      throw new TypeError(
        "Cannot send: a message is a string, an ArrayBuffer or a view",
      );
    }
    this.#push({ i: this.#nextId++, m: message }, wireSize(message) + 16);
    if (this.#pendingBytes <= this.#limits.writableHighWaterMark) return;
    // Backpressure: the client takes nothing; wait for a downstream, and
    // fail a client that stays away for sendTimeout.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#drained = undefined;
        const error = new WebSocketError(
          `Cannot send: the client took no message for ${this.#limits.sendTimeout} ms`,
          { code: "ERR_SEND_TIMEOUT" },
        );
        this.#fail(error);
        reject(error);
      }, this.#limits.sendTimeout);
      this.#drained = () => {
        clearTimeout(timer);
        this.#drained = undefined;
        resolve();
      };
    });
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    if (this.#ended || this.#attached > 0) return;
    this.#idle = setTimeout(() => {
      this.#fail(
        new WebSocketError(
          `Cannot keep session: no request from the client in ${this.#limits.sessionTimeout} ms`,
          { code: "ERR_SESSION_TIMEOUT" },
        ),
      );
    }, this.#limits.sessionTimeout);
  }

  #fail(error: WebSocketError): void {
    if (this.#ended) return;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#push({ c: error.closeCode ?? 1006, r: error.reason });
    }
    this.#end();
    try {
      this.#inbound.error(error);
    } catch {
      // cancelled
    }
    this.#rejectClosed(error);
  }

  #end(): void {
    this.#ended = true;
    clearTimeout(this.#idle);
    clearTimeout(this.#closeTimer);
    this.#drained?.();
    this.#wake?.();
    this.#onEnd(this);
  }
}
