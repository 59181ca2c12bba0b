/**
 * Private: the Comet session engine, the rules of one seq/ack session with
 * no HTTP in it. Two faces map requests onto it: `PollingServer`
 * (`polling/server.ts`, the `./polling` wire) and `realtime()`'s SSE, long
 * and short polling and iframe transports (`realtime/_session.ts` and
 * `realtime/server.ts`, the `./realtime` wire). Each face subclasses
 * {@linkcode CometSession}, gives it its wire form of a message
 * (`encode`, `decode`) and its errors, and reads and writes the queues
 * below from its requests.
 *
 * - **Up** (client → server): {@linkcode CometSession.receive} takes
 *   messages from `seq` on. Those below the next expected seq are
 *   duplicates of a retried POST and skipped; a gap stops the batch; each
 *   new message is queued in `readable`, bounded by `maxInbound` (measured
 *   by `inboundSize`): what does not fit is not acknowledged, and the
 *   client sends it again (a single message always fits an empty queue).
 *   After {@linkcode CometSession.stopReading} (polling: `close()`, or the
 *   application cancelled `readable`) new messages are acknowledged and
 *   dropped. The answer is the next expected seq.
 * - **Down** (server → client): every item gets an id from 1, the close
 *   item too (so that no message ack ever acknowledges it). The outbound
 *   log holds every item not yet acknowledged; a cursor splits it into the
 *   sent (the replay window) and the unsent. `acknowledge(ack)` drops sent
 *   items up to `ack`. A stream or a held poll {@linkcode CometSession.attach}es
 *   with its ack: what was sent and not acknowledged goes out again, and
 *   an ack older than the window (`maxReplay`) is `"lost"`.
 *   {@linkcode CometSession.take} hands out the unsent items;
 *   {@linkcode CometSession.sendAll} marks the whole log sent and hands it
 *   out (polling answers every unacknowledged message each time).
 * - **Bounds**, one knob per face's documented policy (`admit`):
 *   - `"unacknowledged"` (`PollingServer`, `maxQueuedMessages`): a write
 *     waits, unqueued, while the unacknowledged items reach `maxOutbound`;
 *     an acknowledgement lets it in; it never times out, and it fails when
 *     the session closes or ends.
 *   - `"unsent"` (`realtime()`, `writableHighWaterMark`): a write is queued,
 *     then waits while the unsent items pass `maxOutbound`, until a
 *     downstream takes something, for at most `sendTimeout` (then the
 *     session fails with the face's send-timeout error).
 *   `maxReplay` bounds the replay window (`realtime()`'s `maxReplayBytes`;
 *   polling keeps every unacknowledged message: `Infinity`, bounded by
 *   `maxOutbound` instead). A session with no request for `sessionTimeout`,
 *   while none is held ({@linkcode CometSession.hold}), fails with the
 *   face's idle error.
 * - **Close**: {@linkcode CometSession.sendClose} queues the close item
 *   after every message; the session then waits `closeTimeout` for
 *   {@linkcode CometSession.closeReceived} (`Infinity`, polling: the face
 *   ends it once the close was delivered). The client's close is
 *   {@linkcode CometSession.closeReceived} (it ends the session at once) or
 *   {@linkcode CometSession.closeRequested} (the client reads on, as after
 *   a WebSocket's close: what was written goes out, then the close item,
 *   and the session ends when that is taken, within `closeTimeout`).
 *   {@linkcode CometSession.fail}
 *   ends it with an error. On every end each timer is cleared and every
 *   waiter (a held take, a waiting write) settled.
 *
 * @module
 */

import type { MessageData } from "./codec/message.ts";
import { WebSocketError } from "./errors.ts";

/** The bounds of a session, each a face's option (see the module doc). */
export interface CometLimits {
  /** Milliseconds with no request (and none held) before the session fails. */
  sessionTimeout: number;
  /** Which outbound items a write waits on: see the module doc. */
  admit: "unacknowledged" | "unsent";
  /** The bound of those items, measured by `encode`'s sizes. */
  maxOutbound: number;
  /** `"unsent"` only: the longest a write waits; `Infinity` for none. */
  sendTimeout: number;
  /** The bound of the replay window, in `encode`'s sizes. */
  maxReplay: number;
  /** The bound of `readable`'s queue, in `inboundSize`'s measure. */
  maxInbound: number;
  /** The longest wait for the client's answer to our close; or `Infinity`. */
  closeTimeout: number;
}

/** An outbound item: a message with its id, or the close. */
export type CometItem<M> = { i: number; m: M } | { c: number; r: string };

/** An outbound item in the log, with its id and size. */
export interface CometEntry<M> {
  item: CometItem<M>;
  id: number;
  size: number;
}

/** What {@linkcode CometSession.take} found. */
export type Take<M> = { items: CometItem<M>[]; done: boolean } | "lost";

// What a close item counts for in the outbound bounds.
const CLOSE_SIZE = 16;

/**
 * One client's session: the streams of the connection (`readable`,
 * `writable`, `closed`), and the queues a face's requests read and write.
 * `M` is the face's wire form of an outbound message. The application never
 * holds this object: each face hands it a facade with only the documented
 * connection shape, since the methods here (acknowledge, hold, sendAll, …)
 * are its requests' and would break the rules above if called from outside.
 */
export abstract class CometSession<M> {
  readonly id: string;
  readonly readable: ReadableStream<string | Uint8Array>;
  readonly writable: WritableStream<MessageData>;
  readonly closed: Promise<{ closeCode: number; reason: string }>;

  #limits: CometLimits;
  // The measure of `readable`'s queue: polling counts messages, realtime
  // their length.
  #inboundSize: (message: string | Uint8Array) => number;
  #inbound!: ReadableStreamDefaultController<string | Uint8Array>;
  #inboundOpen = true;
  // After stopReading(): new messages are acknowledged and dropped.
  #dropping = false;
  #expectedSeq = 0;
  #nextId = 1;
  // The close item's id, once queued: the id the next message would get.
  #closeId: number | undefined;
  // Every item not yet acknowledged, ids in order; the first #cursor of
  // them were sent (the replay window), the rest not yet.
  #log: CometEntry<M>[] = [];
  #cursor = 0;
  #sentBytes = 0;
  #unsentBytes = 0;
  // The highest id dropped from the replay window unacknowledged: an ack
  // below it means the client lost messages.
  #replayFloor = 0;
  #wake: (() => void) | undefined;
  // The one write waiting for room (a WritableStream writes one at a time).
  #room: { resolve(): void; reject(error: unknown): void } | undefined;
  #downstream = 0;
  // Requests held open now (a stream, a held poll): no idle timeout.
  #held = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closeSent = false;
  // The close item was handed to a downstream.
  #closeOut = false;
  // The client's close, while it reads on for ours (closeRequested).
  #peerClose: { closeCode: number; reason: string } | undefined;
  #ended = false;
  #resolveClosed!: (info: { closeCode: number; reason: string }) => void;
  #rejectClosed!: (error: unknown) => void;

  constructor(
    id: string,
    limits: CometLimits,
    inboundSize: (message: string | Uint8Array) => number,
  ) {
    this.id = id;
    this.#limits = limits;
    this.#inboundSize = inboundSize;
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    // Read or not, a rejection here is the application's to see.
    this.closed.catch(() => {});
    this.readable = new ReadableStream<string | Uint8Array>({
      start: (controller) => {
        this.#inbound = controller;
      },
      cancel: () => this.readableCancelled(),
    }, { highWaterMark: limits.maxInbound, size: inboundSize });
    this.writable = new WritableStream<MessageData>({
      write: (data) => this.#write(data),
      close: () => this.close(),
      abort: () => this.close(),
    });
    this.#armIdle();
  }

  /** The face's `close()`, also what closing or aborting `writable` does. */
  abstract close(): void;
  /** A written message in the face's wire form, and its size; may throw. */
  protected abstract encode(data: MessageData): { message: M; size: number };
  /** A received wire value as a message; `undefined` if it is not one. */
  protected abstract decode(value: unknown): string | Uint8Array | undefined;
  /** The error of a write after the close (`ended`: the session is over). */
  protected abstract sendError(ended: boolean): Error;
  /** The error of a session no request came to for `sessionTimeout`. */
  protected abstract idleError(): WebSocketError;
  /** The application cancelled `readable`. */
  protected abstract readableCancelled(): void;
  /** The session ended (`error`: it failed); called once, before `closed` settles. */
  protected abstract ended(error: WebSocketError | undefined): void;

  /** Whether the close was queued or the session is over. */
  get closing(): boolean {
    return this.#closeSent || this.#ended;
  }

  /** Whether the session is over. */
  get isEnded(): boolean {
    return this.#ended;
  }

  /** How many items are not acknowledged, sent or not. */
  get unacknowledged(): number {
    return this.#log.length;
  }

  /** The id the next message would take (the close item's, once queued). */
  get nextMessageId(): number {
    return this.#closeId ?? this.#nextId;
  }

  /** The seq {@linkcode receive} expects next. */
  get expectedSeq(): number {
    return this.#expectedSeq;
  }

  /** Marks a request from the client: the idle timer starts again. */
  touch(): void {
    this.#armIdle();
  }

  /** A request is held open: no idle timeout until {@linkcode release}. */
  hold(): void {
    this.#held++;
    clearTimeout(this.#idle);
  }

  /** A held request ended: the idle timer starts when none is left. */
  release(): void {
    this.#held--;
    this.#armIdle();
  }

  /**
   * Takes the client's messages from `seq` on; returns the next seq it
   * expects (what it has not acknowledged, it sends again).
   */
  receive(seq: number, messages: readonly unknown[]): number {
    this.touch();
    if (this.#ended && !this.#dropping) return this.#expectedSeq;
    for (let i = 0; i < messages.length; i++) {
      if (seq + i < this.#expectedSeq) continue; // a retried POST's duplicate
      if (seq + i > this.#expectedSeq) break; // a gap: send again from the gap
      if (this.#dropping) {
        this.#expectedSeq++;
        continue;
      }
      const message = this.decode(messages[i]);
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
      const empty = room === this.#limits.maxInbound;
      if (!empty && room < this.#inboundSize(message)) break;
      this.#inbound.enqueue(message);
      this.#expectedSeq++;
    }
    return this.#expectedSeq;
  }

  /**
   * Stops taking messages: `readable` closes (what it holds is still read)
   * and the client's messages from now on are acknowledged and dropped.
   */
  stopReading(): void {
    this.#dropping = true;
    this.#closeInbound();
  }

  /**
   * Drops the sent items up to `ack`, which the client has. In
   * `"unacknowledged"` admission, a waiting write goes on.
   */
  acknowledge(ack: number): void {
    let n = 0;
    while (this.#cursor > 0 && this.#log[0]!.id <= ack) {
      this.#sentBytes -= this.#log.shift()!.size;
      this.#cursor--;
      n++;
    }
    if (n > 0 && this.#limits.admit === "unacknowledged") this.#letIn();
  }

  /**
   * Starts a downstream (a stream, or a held poll) that has everything up
   * to `ack`: the next {@linkcode take}s send what follows. A newer
   * downstream ends the previous one. Returns its token, and the request
   * is held until {@linkcode release}; or `"lost"`, with nothing held,
   * when messages after `ack` have left the replay window.
   */
  attach(ack: number): number | "lost" {
    this.touch();
    this.acknowledge(ack);
    // Messages after `ack` left the window. The request gets "lost" (the
    // client fails on it); the session goes on, since a stale request (a
    // delayed retry) must not end the live downstream of the same client.
    if (ack < this.#replayFloor) return "lost";
    // What was sent but not acknowledged goes out again, first.
    this.#unsentBytes += this.#sentBytes;
    this.#sentBytes = 0;
    this.#cursor = 0;
    const token = ++this.#downstream;
    this.#wake?.();
    this.hold();
    return token;
  }

  /**
   * Waits up to `wait` ms while nothing is unsent and the session goes on;
   * a message, the close, a newer downstream ({@linkcode interrupt}), the
   * end or `signal` end the wait early.
   */
  async wait(wait: number, signal?: AbortSignal): Promise<void> {
    if (this.#cursor < this.#log.length || wait <= 0 || this.#ended) return;
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

  /** Ends the newest {@linkcode wait} now. */
  interrupt(): void {
    this.#wake?.();
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
  ): Promise<Take<M>> {
    await this.wait(wait, signal);
    if (token !== this.#downstream || signal?.aborted) {
      return { items: [], done: true };
    }
    const items: CometItem<M>[] = [];
    let done = false;
    let count = 0;
    for (let k = this.#cursor; k < this.#log.length; k++) {
      const entry = this.#log[k]!;
      if (
        fit && count > 0 &&
        this.#sentBytes + entry.size > this.#limits.maxReplay
      ) break;
      count++;
      items.push(entry.item);
      if ("c" in entry.item) done = true;
      this.#sentBytes += entry.size;
      this.#unsentBytes -= entry.size;
    }
    this.#cursor += count;
    if (done) this.#closeTaken();
    // The client takes messages: a waiting write goes on (sendTimeout is
    // for a client that takes none).
    if (
      this.#limits.admit === "unsent" &&
      (count > 0 || this.#unsentBytes <= this.#limits.maxOutbound)
    ) {
      this.#letIn();
    }
    // A stream has no ack until it reconnects: the window keeps the newest.
    while (this.#sentBytes > this.#limits.maxReplay && this.#cursor > 1) {
      const dropped = this.#log.shift()!;
      this.#cursor--;
      this.#sentBytes -= dropped.size;
      this.#replayFloor = dropped.id;
    }
    return { items, done: done || this.#ended };
  }

  /**
   * Marks every unacknowledged item sent and returns them, oldest first:
   * a poll answers all of them, so that a lost answer is sent again. A
   * copy: the log stays the engine's.
   */
  sendAll(): CometEntry<M>[] {
    this.#sentBytes += this.#unsentBytes;
    this.#unsentBytes = 0;
    this.#cursor = this.#log.length;
    const log = this.#log.slice();
    if (this.#closeSent) this.#closeTaken();
    return log;
  }

  // The close item went out: a client that asked to close has its answer.
  #closeTaken(): void {
    this.#closeOut = true;
    const peer = this.#peerClose;
    if (peer && !this.#ended) this.closeReceived(peer.closeCode, peer.reason);
  }

  /**
   * Queues our close after every message: no more writes. The client's
   * answer is {@linkcode closeReceived}; without one in `closeTimeout` the
   * session fails with `ERR_CLOSE_TIMEOUT`.
   */
  sendClose(closeCode: number, reason: string): void {
    if (this.#closeSent || this.#ended) return;
    this.#queueClose(closeCode, reason);
    if (this.#limits.closeTimeout === Infinity) return;
    this.#closeTimer = setTimeout(() => {
      this.#fail(
        new WebSocketError(
          `Cannot close: the client did not answer the close in ${this.#limits.closeTimeout} ms`,
          { code: "ERR_CLOSE_TIMEOUT" },
        ),
      );
    }, this.#limits.closeTimeout);
  }

  // The close item goes after every message; a write waiting for room
  // (polling) fails, as every later one does.
  #queueClose(closeCode: number, reason: string): void {
    this.#closeSent = true;
    this.#closeId = this.#nextId;
    this.#push({ c: closeCode, r: reason });
    if (this.#limits.admit === "unacknowledged") {
      this.#room?.reject(this.sendError(false));
      this.#room = undefined;
    }
  }

  /**
   * The client closes and reads on until our close comes back, as a
   * WebSocket's closing handshake does (RFC 6455 §1.4, §7.1.2): writes fail
   * from now on, what the application wrote is still sent, then the close
   * item (the client's code, unless ours was queued first); the session
   * ends cleanly once a downstream has taken that item, or fails with
   * `ERR_CLOSE_TIMEOUT` after `closeTimeout`. If our close already went
   * out, this is its answer: {@linkcode closeReceived}.
   */
  closeRequested(closeCode: number, reason: string): void {
    this.touch();
    if (this.#ended) return;
    // Our close already went out (this answers it), or nothing is owed:
    // the close needs no answer but the one the ended session gives a
    // later downstream. A client whose downstream is gone (a page
    // unloading) would otherwise fail the session after closeTimeout.
    if (this.#closeOut || this.#log.length === 0) {
      this.closeReceived(closeCode, reason);
      return;
    }
    this.#peerClose = { closeCode, reason };
    // The client flushed what it wrote before its close.
    this.stopReading();
    if (!this.#closeSent) this.#queueClose(closeCode, reason);
    clearTimeout(this.#closeTimer);
    if (this.#limits.closeTimeout === Infinity) return;
    this.#closeTimer = setTimeout(() => {
      this.#fail(
        new WebSocketError(
          `Cannot close: the client did not take what was left before its close in ${this.#limits.closeTimeout} ms`,
          { code: "ERR_CLOSE_TIMEOUT" },
        ),
      );
    }, this.#limits.closeTimeout);
  }

  /** The client closed (or answered our close): a clean end. */
  closeReceived(closeCode: number, reason: string): void {
    this.touch();
    if (this.#ended) return;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#closeId = this.#nextId;
      this.#push({ c: closeCode, r: reason });
    }
    this.#end(undefined);
    this.#closeInbound();
    this.#resolveClosed({ closeCode, reason });
  }

  /** Fails the session: the application sees the error, the client a close. */
  fail(error: WebSocketError): void {
    this.#fail(error);
  }

  #push(item: CometItem<M>, size = CLOSE_SIZE): void {
    const id = "i" in item ? item.i : this.#nextId++;
    this.#log.push({ item, id, size });
    this.#unsentBytes += size;
    this.#wake?.();
  }

  #letIn(): void {
    const room = this.#room;
    this.#room = undefined;
    room?.resolve();
  }

  async #write(data: MessageData): Promise<void> {
    if (this.#limits.admit === "unacknowledged") {
      const { message, size } = this.encode(data);
      // Wait, unqueued, while the unacknowledged items fill the bound.
      while (true) {
        if (this.#closeSent || this.#ended) throw this.sendError(this.#ended);
        if (this.#sentBytes + this.#unsentBytes < this.#limits.maxOutbound) {
          break;
        }
        await new Promise<void>((resolve, reject) => {
          this.#room = { resolve, reject };
        });
      }
      this.#push({ i: this.#nextId++, m: message }, size);
      return;
    }
    if (this.#closeSent || this.#ended) throw this.sendError(this.#ended);
    const { message, size } = this.encode(data);
    this.#push({ i: this.#nextId++, m: message }, size);
    if (this.#unsentBytes <= this.#limits.maxOutbound) return;
    // Backpressure: the client takes nothing; wait for a downstream, and
    // fail a client that stays away for sendTimeout.
    await new Promise<void>((resolve, reject) => {
      const timer = this.#limits.sendTimeout === Infinity
        ? undefined
        : setTimeout(() => {
          this.#room = undefined;
          const error = new WebSocketError(
            `Cannot send: the client took no message for ${this.#limits.sendTimeout} ms`,
            { code: "ERR_SEND_TIMEOUT" },
          );
          this.#fail(error);
          reject(error);
        }, this.#limits.sendTimeout);
      this.#room = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    if (this.#ended || this.#held > 0) return;
    this.#idle = setTimeout(
      () => this.#fail(this.idleError()),
      this.#limits.sessionTimeout,
    );
  }

  #closeInbound(): void {
    if (!this.#inboundOpen) return;
    this.#inboundOpen = false;
    try {
      this.#inbound.close();
    } catch {
      // cancelled
    }
  }

  #fail(error: WebSocketError): void {
    if (this.#ended) return;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#closeId = this.#nextId;
      this.#push({ c: error.closeCode ?? 1006, r: error.reason });
    }
    this.#end(error);
    if (this.#inboundOpen) {
      this.#inboundOpen = false;
      try {
        this.#inbound.error(error);
      } catch {
        // cancelled
      }
    }
    this.#rejectClosed(error);
  }

  #end(error: WebSocketError | undefined): void {
    this.#ended = true;
    clearTimeout(this.#idle);
    clearTimeout(this.#closeTimer);
    const room = this.#room;
    this.#room = undefined;
    // "unacknowledged": the waiting write was never queued, and fails;
    // "unsent": it was queued, and goes on.
    if (this.#limits.admit === "unacknowledged") {
      room?.reject(error ?? this.sendError(true));
    } else {
      room?.resolve();
    }
    this.#wake?.();
    this.ended(error);
  }
}
