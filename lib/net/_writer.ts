/**
 * Private: the write side of a connection. It takes the frames that the
 * engine queued in its outbox and writes them to the transport: one flush
 * per turn for all the frames written in it, one write in flight at a time,
 * backpressure through `drained()`, a watchdog for a peer that takes
 * nothing, and no more socket writes started per turn of the event loop
 * than the runtime polls at once (_turns.ts).
 *
 * Buffer ownership: a block leaves the outbox with `outbox.next()` and is
 * then this writer's until its write settles; only then does it go back to
 * the pool (a failed write's block never does). `stop()` clears the outbox
 * but for the block under the write in flight.
 *
 * @module
 */

import { releaseBlock } from "../_pools.ts";
import type { Outbox } from "../codec/_outbox.ts";
import { WebSocketError } from "../errors.ts";
import type { Transport } from "./_transport.ts";
import {
  leaveTurn,
  mayWrite,
  opSettled,
  opStarted,
  type TurnWaiter,
  waitTurn,
} from "./_turns.ts";

// How many microtasks a flush may wait for the application's answers.
const MAX_FLUSH_DEFERRALS = 64;

/** What the writer asks of the connection it writes for. */
export interface WriterHost {
  /**
   * Whether the application's answers are on their way: received messages
   * still queued for it, or written ones still on their way to the sink.
   * The flush then waits a microtask (up to 64), so they share one write.
   *
   * @param draining Whether write() callers wait for the outbox to drain.
   */
  answersComing(draining: boolean): boolean;
  /** The transport failed, or took nothing for `sendTimeout`. */
  writeFailed(error: WebSocketError): void;
  /** The outbox is back within the high-water mark (see `notifyDrained`). */
  drained(): void;
}

/** Writes an outbox to a transport; see the module doc. */
export class OutboxWriter implements TurnWaiter {
  #outbox: Outbox;
  #transport: Transport;
  #host: WriterHost;
  #highWaterMark: number;
  #sendTimeout: number;
  #stopped = false;

  #flushing = false;
  #flushHops = 0;
  // The bytes being written, and the block they come from.
  #writing: Uint8Array | undefined;
  #writingBlock: Uint8Array | undefined;
  #written = 0;
  // The write callbacks, bound once on the first write, not two closures
  // per write.
  #onWrittenBound: ((n: number) => void) | undefined;
  #writeFailedBound: ((cause: unknown) => void) | undefined;
  // Made on first use: an idle connection holds none.
  #drainWaiters: (() => void)[] | undefined;
  #flushWaiters: (() => void)[] | undefined;
  // The send watchdog: a timer that runs while writes are in flight, and
  // the count of writes settled when it was set.
  #sendTimer: ReturnType<typeof setTimeout> | undefined;
  #writesSettled = 0;
  #watchedAt = 0;
  // The write in flight's mark (see _turns.ts), and whether the next one
  // waits for room in a turn of the event loop.
  #opMark = 0;
  #waitsForTurn = false;
  // Whether the transport's writes are Deno ops, counted per turn.
  #capped: boolean;

  constructor(
    outbox: Outbox,
    transport: Transport,
    host: WriterHost,
    highWaterMark: number,
    sendTimeout: number,
  ) {
    this.#outbox = outbox;
    this.#transport = transport;
    this.#host = host;
    this.#highWaterMark = highWaterMark;
    this.#sendTimeout = sendTimeout;
    this.#capped = transport.polledOps === true;
  }

  /**
   * Set by the host to hear (once) when the outbox is back within the
   * high-water mark: `WriterHost.drained`.
   */
  notifyDrained = false;

  /** Whether `write()` callers wait for the outbox to drain. */
  get draining(): boolean {
    return this.#drainWaiters !== undefined && this.#drainWaiters.length > 0;
  }

  /** Whether the outbox holds more than the high-water mark. */
  get full(): boolean {
    return this.#outbox.size > this.#highWaterMark;
  }

  /**
   * Resolves once the outbox is back within the high-water mark (or the
   * writer stops).
   */
  drained(): Promise<void> {
    return new Promise<void>((resolve) =>
      (this.#drainWaiters ??= []).push(resolve)
    );
  }

  /** Resolves once nothing is left to write (or the writer stops). */
  flushed(): Promise<void> {
    if (!this.#flushing) return Promise.resolve();
    return new Promise((resolve) => (this.#flushWaiters ??= []).push(resolve));
  }

  // Writers whose flush runs at the next microtask: one microtask for all
  // of them, and no closure per flush.
  static #flushQueue: OutboxWriter[] = [];
  static #spareFlushQueue: OutboxWriter[] = [];
  static #flushQueued = false;

  static #queueFlush(writer: OutboxWriter): void {
    OutboxWriter.#flushQueue.push(writer);
    if (!OutboxWriter.#flushQueued) {
      OutboxWriter.#flushQueued = true;
      queueMicrotask(OutboxWriter.#runFlushes);
    }
  }

  static #runFlushes = (): void => {
    const queue = OutboxWriter.#flushQueue;
    OutboxWriter.#flushQueue = OutboxWriter.#spareFlushQueue;
    OutboxWriter.#flushQueued = false;
    for (let i = 0; i < queue.length; i++) {
      const writer = queue[i]!;
      try {
        writer.#deferFlush();
      } catch (cause) {
        // Not expected; but one connection's failure must neither strand
        // the others in the queue nor leave its own flush marked running.
        writer.#writeFailed(cause);
      }
    }
    queue.length = 0;
    OutboxWriter.#spareFlushQueue = queue;
  };

  /** Flushes at the next microtask, unless a flush is under way. */
  schedule(): void {
    if (!this.#flushing) {
      this.#flushing = true;
      this.#flushHops = 0;
      OutboxWriter.#queueFlush(this);
    }
  }

  /**
   * Waits, a bounded number of microtasks, while the application's answers
   * are on their way (see `WriterHost.answersComing`): a pipelined echo
   * then costs one write per read, not one per message. Not while write()
   * itself waits for the socket to drain: the flush is what drains it.
   */
  #deferFlush(): void {
    if (
      this.#flushHops < MAX_FLUSH_DEFERRALS &&
      this.#host.answersComing(this.draining)
    ) {
      this.#flushHops++;
      OutboxWriter.#queueFlush(this);
      return;
    }
    this.#flush();
  }

  /**
   * Writes the next chunk, or ends the flush when none waits. Written with
   * callbacks, not as an async loop: an async function cost 930 B of
   * garbage per flush (measured with bench/pipeline.ts).
   */
  #flush(): void {
    const bytes = this.#stopped ? undefined : this.#outbox.next();
    if (bytes === undefined) {
      this.#endFlush();
      return;
    }
    this.#writing = bytes;
    // The block is the writer's now, until this write settles.
    this.#writingBlock = this.#outbox.nextBlock;
    this.#written = 0;
    this.#writeMore(bytes);
  }

  #writeMore(bytes: Uint8Array): void {
    // Past this turn's share of the runtime's op budget, the write would
    // wait unpolled for as long as other connections keep the event loop
    // busy (see _turns.ts): it waits for a turn with room instead.
    if (this.#capped && !mayWrite()) {
      this.#waitsForTurn = true;
      waitTurn(this);
      return;
    }
    this.#startWrite(bytes);
  }

  /** See `TurnWaiter`: the write that waited starts now. */
  resumeTurn(): void {
    // One stopped meanwhile (by another's write failing) left the queue.
    if (!this.#waitsForTurn) return;
    this.#waitsForTurn = false;
    try {
      this.#startWrite(this.#writing!.subarray(this.#written));
    } catch (cause) {
      // Not expected; but called from another connection's read loop, it
      // must neither fail that one nor strand the writers after this one.
      this.#writeFailed(cause);
    }
  }

  #startWrite(bytes: Uint8Array): void {
    if (this.#sendTimer === undefined) this.#watchSend();
    let pending: Promise<number>;
    if (this.#capped) this.#opMark = opStarted(true);
    try {
      pending = this.#transport.writeSome(bytes);
    } catch (cause) {
      this.#writeFailed(cause);
      return;
    }
    pending.then(
      this.#onWrittenBound ??= this.#onWritten.bind(this),
      this.#writeFailedBound ??= this.#writeFailed.bind(this),
    );
  }

  #onWritten(n: number): void {
    if (this.#capped) opSettled(this.#opMark);
    this.#writesSettled++;
    const bytes = this.#writing!;
    const length = bytes.length;
    this.#written += n;
    if (this.#written < length && !this.#stopped) {
      this.#writeMore(bytes.subarray(this.#written));
      return;
    }
    const block = this.#writingBlock;
    this.#writing = this.#writingBlock = undefined;
    if (block) releaseBlock(block);
    if (this.#stopped) {
      this.#endFlush();
      return;
    }
    this.#outbox.size -= length;
    if (this.#outbox.size <= this.#highWaterMark) {
      if (this.draining) {
        for (const resolve of this.#drainWaiters!.splice(0)) resolve();
      }
      if (this.notifyDrained) {
        this.notifyDrained = false;
        this.#host.drained();
      }
    }
    this.#flush();
  }

  #writeFailed(cause: unknown): void {
    // The block stays out of the pool: a failed write may still hold it.
    this.#writing = this.#writingBlock = undefined;
    if (this.#capped) opSettled(this.#opMark);
    this.#writesSettled++;
    if (!this.#stopped) {
      this.#host.writeFailed(
        new WebSocketError(
          `Cannot send message: the transport failed (${cause})`,
          { code: "ERR_ABNORMAL_CLOSURE", cause },
        ),
      );
    }
    this.#endFlush();
  }

  /**
   * The send watchdog, one timer per connection while writes are in
   * flight (not one per write: a timer costs about as much as a small
   * write's JS): when it fires with a write in flight and none settled
   * since it was set, the peer has taken nothing for sendTimeout.
   */
  #watchSend(): void {
    this.#watchedAt = this.#writesSettled;
    this.#sendTimer = setTimeout(
      OutboxWriter.#sendWatched,
      this.#sendTimeout,
      this,
    );
    // It may stay set for up to sendTimeout after the last write: it must
    // not keep a process alive that has nothing else to do.
    Deno.unrefTimer(this.#sendTimer as unknown as number);
  }

  static #sendWatched(writer: OutboxWriter): void {
    writer.#sendTimer = undefined;
    if (writer.#stopped || writer.#writing === undefined) return;
    // Waiting for a turn of the event loop is not the peer taking nothing.
    if (writer.#writesSettled !== writer.#watchedAt || writer.#waitsForTurn) {
      writer.#watchSend();
      return;
    }
    writer.#host.writeFailed(
      new WebSocketError(
        `Cannot send message: the transport took nothing for ${writer.#sendTimeout} ms`,
        { code: "ERR_SEND_TIMEOUT" },
      ),
    );
  }

  #endFlush(): void {
    this.#flushing = false;
    if (this.#flushWaiters?.length) {
      for (const resolve of this.#flushWaiters.splice(0)) resolve();
    }
  }

  /**
   * Stops for good: nothing more is written, the outbox is cleared (but for
   * the block a write in flight still holds), and who waits is released.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#sendTimer);
    if (this.#waitsForTurn) {
      this.#waitsForTurn = false;
      leaveTurn(this);
    }
    this.#outbox.clear(this.#writing);
    for (const resolve of this.#drainWaiters?.splice(0) ?? []) resolve();
    // A write that never settles must not hold `flushed()` (and so a
    // writable's close) for ever.
    this.#endFlush();
  }
}
