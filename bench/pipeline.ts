/**
 * The connection's own cost per message, with no socket: a server
 * `WebSocketConnection` over an in-memory `Deno.Conn` stand-in whose reads
 * hand over one masked frame as soon as the echo of the last one is written
 * (one message in flight, as `wsload --outstanding 1`). The echo is the
 * example server's `readable.pipeTo(writable)`.
 *
 * It prints µs of JavaScript per message and bytes of JS heap allocated
 * per message (young-generation growth between forced GCs), the figures a
 * change to the hot path moves; the kernel's share is left out, so they are
 * steadier than the end-to-end run.
 *
 * `deno run -A --v8-flags=--expose-gc bench/pipeline.ts [--messages 400000]`
 *
 * @module
 */

import { TransportWebSocket } from "../lib/net/connection.ts";
import { ConnTransport } from "../lib/net/_transport.ts";
import { encodeFrame } from "../lib/codec/mod.ts";

const countFlag = Deno.args.indexOf("--messages");
const count = countFlag >= 0 ? Number(Deno.args[countFlag + 1]) : 400_000;

/**
 * A Deno.Conn stand-in: it offers `frame` again once the echo of the last
 * one is written, and serves it in reads of the reader's buffer size.
 */
class EchoPeer {
  #frame: Uint8Array;
  /** Bytes of the current frame not yet read; 0 while waiting on the echo. */
  #left = 0;
  #waiting: { buffer: Uint8Array; resolve(n: number): void } | undefined;
  #limit: number;
  #last = 0;
  messages = 0;
  /** JS heap growth, summed between scavenges, while feeding. */
  heapGrowth = 0;
  done: PromiseWithResolvers<void> = Promise.withResolvers();
  pauseAt = -1;
  paused: PromiseWithResolvers<void> = Promise.withResolvers();

  constructor(frame: Uint8Array, limit: number) {
    this.#frame = frame;
    this.#limit = limit;
    this.#left = frame.length;
  }

  /** Starts counting heap growth from here. */
  resetHeap(): void {
    this.heapGrowth = 0;
    this.#last = Deno.memoryUsage().heapUsed;
  }

  #copy(buffer: Uint8Array): number {
    const from = this.#frame.length - this.#left;
    const n = Math.min(buffer.length, this.#left);
    buffer.set(this.#frame.subarray(from, from + n));
    this.#left -= n;
    return n;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#left > 0) return Promise.resolve(this.#copy(buffer));
    return new Promise((resolve) => {
      this.#waiting = { buffer, resolve };
    });
  }

  /** Offers the next frame. */
  resume(): void {
    this.#left = this.#frame.length;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting.resolve(this.#copy(waiting.buffer));
    }
  }

  write(bytes: Uint8Array): Promise<number> {
    if ((++this.messages & 255) === 0) {
      const now = Deno.memoryUsage().heapUsed;
      // A drop is a scavenge: count what was allocated up to it.
      if (now >= this.#last) this.heapGrowth += now - this.#last;
      this.#last = now;
    }
    if (this.messages === this.pauseAt) this.paused.resolve();
    else if (this.messages >= this.#limit) this.done.resolve();
    else this.resume();
    return Promise.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

// A client's peer is a server: its frames come unmasked (RFC 6455 §5.1).
function peerFrame(size: number, text: boolean, masked: boolean): Uint8Array {
  const payload = new Uint8Array(size).fill(0x61);
  return encodeFrame({
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: text ? 1 : 2,
    payload,
    mask: masked ? new Uint8Array([1, 2, 3, 4]) : undefined,
  });
}

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as (() => void) | undefined;

async function run(
  size: number,
  text: boolean,
  role: "server" | "client",
): Promise<string> {
  const warmup = 20_000;
  const measured = Math.round(count / (size > 1024 ? 4 : 1));
  const peer = new EchoPeer(
    peerFrame(size, text, role === "server"),
    warmup + measured,
  );
  // Its reads and writes are JavaScript, not Deno ops: not counted per
  // turn of the event loop (lib/net/_turns.ts).
  const connection = new TransportWebSocket(
    // A Transport is taken as it is (the constructor's type names only
    // what users pass).
    new ConnTransport(
      peer as unknown as Deno.Conn,
      false,
    ) as unknown as Deno.Conn,
    { role },
  );
  connection.readable.pipeTo(connection.writable).catch(() => {});
  peer.pauseAt = warmup;
  await peer.paused.promise;
  gc?.();
  peer.resetHeap();
  const from = peer.messages;
  const start = performance.now();
  peer.resume();
  await peer.done.promise;
  const elapsed = performance.now() - start;
  const messages = peer.messages - from;
  connection.close();
  await connection.closed.catch(() => {});
  return `| ${role === "client" ? "client, " : ""}${
    text ? "text" : "binary"
  } ${size} B | ${(elapsed * 1000 / messages).toFixed(2)} | ${
    Math.round(peer.heapGrowth / messages)
  } |`;
}

console.log("| message | JS µs per message | heap bytes per message |");
console.log("|---|---:|---:|");
for (
  const [size, text, role] of [
    [32, false, "server"],
    [32, true, "server"],
    [16384, false, "server"],
    // The client side masks what it sends: a key and a masked copy per frame.
    [32, false, "client"],
  ] as const
) {
  console.log(await run(size, text, role));
}
