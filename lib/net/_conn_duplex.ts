// A node:stream Duplex over a Deno.Conn, for the node:http server of
// serve() (_http_server.ts): the bytes serve() already read come first.
// Reads happen only when node:http wants more (backpressure); a write
// completes once the connection has taken every byte. Loaded with the first
// plain request only.

import { Duplex } from "node:stream";
import { isConnectionGone } from "./_transport.ts";

// One read of the connection: node:net reads 64 KiB too. A short read is
// copied out, so that a small chunk kept by node:http does not pin 64 KiB.
const READ_SIZE = 64 * 1024;
const COPY_BELOW = 4 * 1024;

/** A Deno.Conn as a node:stream Duplex (a socket for node:http). */
export class ConnDuplex extends Duplex {
  /** Set once node:http hands it to its "upgrade" listener. */
  upgraded = false;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly encrypted: boolean;
  /** Called as bytes are read, before node:http sees them. */
  onRead: (() => void) | undefined;
  /** When the connection last took bytes we wrote (Date.now()). */
  writtenAt = 0;
  #conn: Deno.Conn;
  #first: Uint8Array | undefined;
  #closed = false;

  constructor(conn: Deno.Conn, first: Uint8Array) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    // A copy: the head reader's buffer is not ours to keep.
    this.#first = first.length > 0 ? first.slice() : undefined;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = addr.hostname;
    this.remotePort = addr.port;
    this.encrypted = "handshake" in conn;
  }

  override _read(): void {
    const first = this.#first;
    if (first) {
      this.#first = undefined;
      this.push(first);
      return;
    }
    const buffer = new Uint8Array(READ_SIZE);
    this.#conn.read(buffer).then((n) => {
      this.#touch();
      if (n === null) this.push(null);
      else {
        this.onRead?.();
        this.push(
          n < COPY_BELOW ? buffer.slice(0, n) : buffer.subarray(0, n),
        );
      }
    }, (error) => {
      if (this.#closed || isConnectionGone(error)) this.push(null);
      else this.destroy(error);
    });
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    this.#writeAll(chunk).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Uint8Array }[],
    callback: (error?: Error | null) => void,
  ): void {
    // node:http corks a head and its first chunk: small ones go out in
    // one write, large ones one by one rather than copied.
    let size = 0;
    for (const { chunk } of chunks) size += chunk.length;
    if (size > READ_SIZE) {
      (async () => {
        for (const { chunk } of chunks) await this.#writeAll(chunk);
      })().then(() => callback(), callback);
      return;
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const { chunk } of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    this.#writeAll(all).then(() => callback(), callback);
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#conn.write(bytes.subarray(written));
      this.writtenAt = Date.now();
      this.#touch();
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#conn.closeWrite().then(() => callback(), () => callback());
  }

  override _destroy(
    error: Error | null,
    callback: (error?: Error | null) => void,
  ): void {
    clearTimeout(this.#timer);
    this.#timeout = 0;
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Closed already.
      }
    }
    callback(error);
  }

  // What node:http calls on a net.Socket. serve() has set no-delay on TCP.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  /**
   * net.Socket's inactivity timeout: "timeout" once nothing was read or
   * written for `ms`. node:http arms it between requests (keepAliveTimeout,
   * 5 s + 1 s), and ends the connection on it: an idle kept-alive
   * connection does not live forever.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback) this.once("timeout", callback);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timeout = ms > 0 && Number.isFinite(ms) ? ms : 0;
    this.#active = Date.now();
    if (this.#timeout > 0) this.#arm(this.#timeout);
    return this;
  }

  #timeout = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #active = 0;

  #arm(delay: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#timeout === 0 || this.destroyed) return;
      // One timer for the whole wait, not one per read or write: it checks
      // when it fires whether there was activity meanwhile.
      const idle = Date.now() - this.#active;
      if (idle < this.#timeout) this.#arm(this.#timeout - idle);
      else this.emit("timeout");
    }, delay);
  }

  #touch(): void {
    if (this.#timeout > 0) this.#active = Date.now();
  }
}
