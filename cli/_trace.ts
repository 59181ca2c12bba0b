// --trace: a read-only tap on the bytes of a connection. It prints the HTTP
// handshake's lines and each frame's header fields (RFC 6455 §5.2, in the
// order of the frame diagram) and never changes or keeps the bytes it sees;
// without --trace the connection runs on the Deno.Conn directly and no tap
// exists.

import type { ByteDuplex } from "../mod.ts";
// The `./codec` entry point: what a user of the package imports for frames.
import {
  type FrameHeader,
  frameHeaderLength,
  Opcode,
  parseFrameHeader,
} from "../lib/codec/mod.ts";

// Each opcode's name, lower-cased, from the codec's own table.
const OPCODES: Record<number, string> = Object.fromEntries(
  Object.entries(Opcode).map(([name, code]) => [code, name.toLowerCase()]),
);
// The payload length's extended forms (RFC 6455 §5.2: 7+16 or 7+64 bits).
const EXTENDED: Record<number, string> = { 2: " (16-bit)", 8: " (64-bit)" };
const CR = 0x0d;
const LF = 0x0a;
// The handshake's head is bounded as the library bounds it (16 KiB); past
// that the tracer stops rather than hold more.
const MAX_HEAD = 16 * 1024;
const decoder = new TextDecoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Describes one frame header on one line, field by field as the frame
 * diagram lays them out.
 */
export function describeHeader(header: FrameHeader): string {
  // Bytes of extended payload length: 0, 2 (len7 = 126) or 8 (len7 = 127).
  const extended = header.headerLength - 2 - (header.mask ? 4 : 0);
  const parts = [
    `FIN=${+header.fin}`,
    `RSV1=${+header.rsv1}`,
    `RSV2=${+header.rsv2}`,
    `RSV3=${+header.rsv3}`,
    `opcode=0x${header.opcode.toString(16)} (${OPCODES[header.opcode]})`,
    `MASK=${header.mask ? 1 : 0}`,
    `length=${header.payloadLength}${EXTENDED[extended] ?? ""}`,
  ];
  if (header.mask) parts.push(`key=${hex(header.mask)}`);
  return parts.join(" ");
}

/**
 * Follows one direction of a connection: first the HTTP head, then frames.
 * `push` reads each chunk and leaves it as it was.
 */
export class FrameTracer {
  #prefix: string;
  #role: "client" | "server";
  #print: (line: string) => void;
  #state: "head" | "frames" | "off" = "head";
  // The head's current line, and whether the head is a 101 (or a request).
  #line: number[] = [];
  #lineCount = 0;
  #headSize = 0;
  #upgraded = true;
  // The frame header gathered so far (2 to 14 bytes).
  #header = new Uint8Array(14);
  #fill = 0;
  #need = 2;
  // Payload bytes of the current frame still to pass over.
  #skip = 0;
  // A close frame's body, kept (≤ 125 bytes) to show its code and reason.
  #close: { header: FrameHeader; body: Uint8Array; fill: number } | undefined;

  /**
   * @param prefix Put before each line: the direction (`>` sent, `<`
   * received) and, for a server, the connection's number.
   * @param receiver The role of the end that receives these bytes: it
   * decides which masking is valid (RFC 6455 §5.1).
   * @param print Takes each line.
   */
  constructor(
    prefix: string,
    receiver: "client" | "server",
    print: (line: string) => void,
  ) {
    this.#prefix = prefix;
    this.#role = receiver;
    this.#print = print;
  }

  /** Reads `chunk`, which it neither changes nor keeps. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && this.#state !== "off") {
      i = this.#state === "head"
        ? this.#head(chunk, i)
        : this.#frames(chunk, i);
    }
  }

  #head(chunk: Uint8Array, i: number): number {
    for (; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (++this.#headSize > MAX_HEAD) {
        this.#stop("the HTTP head is over 16 KiB");
        return chunk.length;
      }
      if (byte !== LF) {
        if (byte !== CR) this.#line.push(byte);
        continue;
      }
      const line = decoder.decode(new Uint8Array(this.#line));
      this.#line = [];
      if (line === "") {
        // A response other than 101 has a body, not frames.
        this.#state = this.#upgraded ? "frames" : "off";
        return i + 1;
      }
      if (this.#lineCount++ === 0 && line.startsWith("HTTP/")) {
        this.#upgraded = line.split(" ")[1] === "101";
      }
      this.#print(`${this.#prefix} ${line}`);
    }
    return i;
  }

  #frames(chunk: Uint8Array, i: number): number {
    if (this.#close) {
      const close = this.#close;
      const n = Math.min(chunk.length - i, close.body.length - close.fill);
      close.body.set(chunk.subarray(i, i + n), close.fill);
      close.fill += n;
      if (close.fill === close.body.length) this.#closeDone();
      return i + n;
    }
    if (this.#skip > 0) {
      const n = Math.min(chunk.length - i, this.#skip);
      this.#skip -= n;
      return i + n;
    }
    const n = Math.min(chunk.length - i, this.#need - this.#fill);
    this.#header.set(chunk.subarray(i, i + n), this.#fill);
    this.#fill += n;
    if (this.#fill < this.#need) return i + n;
    if (this.#need === 2) {
      this.#need = frameHeaderLength(this.#header[1]!);
      if (this.#fill < this.#need) return i + n;
    }
    let header: FrameHeader;
    try {
      header = parseFrameHeader(this.#header, 0, {
        role: this.#role,
        allowedRsv: 7,
      });
    } catch (error) {
      this.#stop((error as Error).message);
      return chunk.length;
    }
    this.#fill = 0;
    this.#need = 2;
    if (header.opcode === 0x8 && header.payloadLength >= 2) {
      this.#close = {
        header,
        body: new Uint8Array(header.payloadLength),
        fill: 0,
      };
    } else {
      this.#print(`${this.#prefix} ${describeHeader(header)}`);
      this.#skip = header.payloadLength;
    }
    return i + n;
  }

  #closeDone(): void {
    const { header, body } = this.#close!;
    this.#close = undefined;
    // The body is our copy: unmasking it changes nothing on the wire.
    if (header.mask) {
      for (let j = 0; j < body.length; j++) body[j]! ^= header.mask[j & 3]!;
    }
    const code = (body[0]! << 8) | body[1]!;
    const reason = decoder.decode(body.subarray(2));
    this.#print(
      `${this.#prefix} ${describeHeader(header)} code=${code}${
        reason ? ` reason=${JSON.stringify(reason)}` : ""
      }`,
    );
  }

  #stop(why: string): void {
    this.#state = "off";
    this.#print(`${this.#prefix} (trace stops: ${why})`);
  }
}

/**
 * A byte pair over `conn` that shows every chunk read to `onRead` and every
 * chunk written to `onWrite` before passing it on unchanged. The
 * connection's transport closes both sides; the resource is closed once
 * both are done, or at once on abort.
 */
export function tapConn(
  conn: Deno.Conn,
  onRead: (chunk: Uint8Array) => void,
  onWrite: (chunk: Uint8Array) => void,
): ByteDuplex {
  let readDone = false;
  let writeDone = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  const settle = () => {
    if (readDone && writeDone) close();
  };
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // A buffer per read: the chunk is the reader's once enqueued.
      const buffer = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = closed ? null : await conn.read(buffer);
      } catch {
        n = null; // Reset, or closed under the read: the end either way.
      }
      if (n === null) {
        readDone = true;
        controller.close();
        settle();
        return;
      }
      const chunk = buffer.subarray(0, n);
      onRead(chunk);
      controller.enqueue(chunk);
    },
    cancel() {
      readDone = true;
      settle();
    },
  });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      onWrite(chunk);
      let written = 0;
      while (written < chunk.length) {
        written += await conn.write(chunk.subarray(written));
      }
    },
    async close() {
      try {
        if (!closed) await conn.closeWrite();
      } catch {
        // Not connected any more: nothing left to end.
      }
      writeDone = true;
      settle();
    },
    abort() {
      writeDone = true;
      close();
    },
  });
  return { readable, writable };
}
