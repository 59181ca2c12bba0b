// Byte transports under a connection: a Deno.Conn driven with manual
// read/write (about 1.5x the throughput of pipeTo, and no fresh 64 KiB buffer
// per read), or any { readable, writable } pair.

/** The byte pair a connection runs over. */
export interface ByteDuplex {
  /** Bytes from the peer. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  writable: WritableStream<Uint8Array>;
}

/** What the connection needs of its transport. */
export interface Transport {
  /**
   * Reads into `buffer`; resolves with the count, or `null` at EOF. It may
   * reject with an error for which {@linkcode isConnectionGone} is true
   * (a reset peer, or a read racing our own close): callers treat that as
   * EOF. No wrapper turns it into `null`, because on the hot path every
   * async wrapper costs a promise per read.
   */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes` (at least one) and resolves with how many. */
  writeSome(bytes: Uint8Array): Promise<number>;
  /** Writes all of `bytes`. */
  write(bytes: Uint8Array): Promise<void>;
  /** Ends our direction (TCP FIN), keeping the read side open. */
  closeWrite(): Promise<void>;
  /** Ends both directions and frees the resource. Idempotent. */
  close(): void;
  /** The peer's address, where the transport knows it. */
  readonly remoteAddr?: Deno.Addr;
  /**
   * Whether its reads and writes are Deno ops, each polled under the
   * runtime's budget of polls per event-loop turn: only such writes count
   * against, and wait for, a turn's share (see _turns.ts). A byte pair's
   * writes run in JavaScript, and capping them would only slow them.
   */
  readonly polledOps?: boolean;
}

/** A Deno TCP or TLS connection. */
export class ConnTransport implements Transport {
  readonly polledOps: boolean;
  #conn: Deno.Conn;
  #closed = false;

  /**
   * @param conn The connection.
   * @param polledOps False for a stand-in whose reads and writes are not
   * Deno ops (bench/pipeline.ts): see {@linkcode Transport.polledOps}.
   */
  constructor(conn: Deno.Conn, polledOps = true) {
    this.#conn = conn;
    this.polledOps = polledOps;
  }

  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#closed ? Promise.resolve(null) : this.#conn.read(buffer);
  }

  writeSome(bytes: Uint8Array): Promise<number> {
    return this.#conn.write(bytes);
  }

  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  async closeWrite(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#conn.closeWrite();
    } catch {
      // Already closed or not connected: nothing left to end.
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Whether a transport error means the connection is simply gone (reset,
 * broken, or closed under a pending read): EOF, not a failure to report.
 */
export function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.Interrupted;
}

/** Any { readable, writable } byte pair; a BYOB reader where it is offered. */
export class StreamTransport implements Transport {
  #reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
  #byob: boolean;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #leftover: Uint8Array | undefined;
  #closed = false;
  #writesPending = 0;

  constructor(duplex: ByteDuplex) {
    let reader;
    try {
      reader = duplex.readable.getReader({ mode: "byob" });
      this.#byob = true;
    } catch {
      reader = duplex.readable.getReader();
      this.#byob = false;
    }
    this.#reader = reader;
    this.#writer = duplex.writable.getWriter();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    let chunk = this.#leftover;
    this.#leftover = undefined;
    if (chunk === undefined) {
      try {
        if (this.#byob) {
          // The BYOB reader transfers the buffer; read into a fresh view of
          // the caller's size and copy back (the caller reuses its buffer).
          const { value, done } =
            await (this.#reader as ReadableStreamBYOBReader)
              .read(new Uint8Array(buffer.length));
          if (done || !value) return null;
          chunk = value;
        } else {
          const { value, done } =
            await (this.#reader as ReadableStreamDefaultReader<Uint8Array>)
              .read();
          if (done || !value) return null;
          chunk = value;
        }
      } catch (error) {
        if (this.#closed) return null;
        throw error;
      }
    }
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#leftover = chunk.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes);
  }

  writeSome(bytes: Uint8Array): Promise<number> {
    // A written chunk is the sink's (WHATWG Streams): a TransformStream's
    // write resolves once the chunk is queued, not read. The connection's
    // bytes are views of pooled blocks that go back once the write
    // resolves, so the sink gets a copy.
    this.#writesPending++;
    return this.#writer.write(bytes.slice()).then(() => {
      this.#writesPending--;
      return bytes.length;
    }, (error) => {
      this.#writesPending--;
      throw error;
    });
  }

  async closeWrite(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // Already closed or errored.
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    // Close, not abort, when every write has been taken: the close frame is
    // out. A write the sink has not taken by now never will be (the
    // connection ends on a timeout): abort, so that nothing waits on it.
    if (this.#writesPending > 0) {
      this.#writer.abort(
        new TypeError("Cannot send message: the connection is closed"),
      ).catch(() => {});
    } else this.#writer.close().catch(() => {});
  }
}

function isConn(value: unknown): value is Deno.Conn {
  return typeof value === "object" && value !== null &&
    typeof (value as Deno.Conn).read === "function" &&
    typeof (value as Deno.Conn).closeWrite === "function";
}

/** Wraps a `Deno.Conn` (read and written directly) or a byte pair. */
export function toTransport(value: Deno.Conn | ByteDuplex): Transport {
  return isConn(value) ? new ConnTransport(value) : new StreamTransport(value);
}
