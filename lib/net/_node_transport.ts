// A Transport over a node:stream Duplex: the socket node:http hands to its
// "upgrade" listener, or the Duplex serve() makes of a Deno.Conn for its
// HTTP server. Backpressure is kept both ways: reading pauses the socket
// while more than one read's worth waits, and a write resolves only once
// the socket has taken the bytes (its callback), so the connection's pooled
// blocks are never copied here and never reused under a pending write.

import type { Duplex } from "node:stream";
import type { Transport } from "./_transport.ts";

// Chunks kept while nobody reads before the socket is paused: node:net
// reads 64 KiB at a time, so this is one read past the first.
const PAUSE_AT = 64 * 1024;

/** Whether a node:net error means the peer is simply gone: EOF for us. */
function isNodeGone(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ECONNRESET" || code === "EPIPE" ||
    code === "ERR_STREAM_DESTROYED" || code === "ERR_STREAM_PREMATURE_CLOSE";
}

/** A node:stream Duplex (a node:net Socket) as a Transport. */
export class NodeSocketTransport implements Transport {
  #socket: Duplex;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: unknown;
  #waiter:
    | { buffer: Uint8Array; resolve: (n: number | null) => void }
    | undefined;
  #closed = false;

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      const waiter = this.#waiter;
      if (waiter) {
        this.#waiter = undefined;
        waiter.resolve(this.#copy(chunk, waiter.buffer));
        return;
      }
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= PAUSE_AT) socket.pause();
    });
    const end = () => {
      this.#ended = true;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.resolve(null);
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", (error: unknown) => {
      // A reset is an end; anything else is reported by the next read.
      if (!isNodeGone(error)) this.#error ??= error;
      end();
    });
  }

  /** Copies as much of `chunk` as fits; keeps the rest first in line. */
  #copy(chunk: Uint8Array, buffer: Uint8Array): number {
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (n < chunk.length) {
      this.#queue.unshift(chunk.subarray(n));
      this.#queued += chunk.length - n;
    }
    return n;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.resolve(null);
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      this.#queued -= chunk.length;
      const n = this.#copy(chunk, buffer);
      if (this.#queued < PAUSE_AT && !this.#ended) this.#socket.resume();
      return Promise.resolve(n);
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(null);
    this.#socket.resume();
    return new Promise((resolve) => {
      this.#waiter = { buffer, resolve };
    });
  }

  writeSome(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error?: Error | null) => {
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.writeSome(bytes);
  }

  closeWrite(): Promise<void> {
    if (this.#closed || this.#socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.end(() => resolve());
      // end() calls back on "finish" only; an error or a destroy settles too.
      this.#socket.once("close", () => resolve());
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve(null);
  }
}
