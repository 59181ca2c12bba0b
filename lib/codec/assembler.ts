/**
 * Messages in (RFC 6455 §5.4, §5.6): {@linkcode MessageAssembler}, the
 * reassembly of fragments with fail-fast UTF-8 checks and the limits,
 * decided from frame headers before payload is buffered.
 *
 * @module
 */

import { WebSocketError } from "../errors.ts";
import { Opcode } from "./frame.ts";
import { decodeUtf8, isAscii } from "./utf8.ts";
import { releaseScratch, takeScratch } from "../_pools.ts";
import { checkOptions, MESSAGE } from "../_options.ts";

// Only for bytes already validated: ignoreBOM keeps a leading U+FEFF.
const looseDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

// Text messages above this assemble in shared scratch buffers.
const SCRATCH_FROM = 16 * 1024;

/** Whether `bytes` ends before the last code point it starts is complete. */
function endsInsideCodePoint(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0 && i >= bytes.length - 4; i--) {
    const c = bytes[i]!;
    if ((c & 0xc0) === 0x80) continue;
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return bytes.length - i < need;
  }
  // Only continuation bytes: assume more may follow, and keep checking.
  return true;
}

/** The limits on received messages. */
export interface MessageLimits {
  /**
   * The largest message accepted, in bytes, summed over its fragments. A
   * larger one fails with 1009 as soon as a frame header shows it will be
   * exceeded, before its payload is buffered.
   *
   * 32 MiB by default: twice the largest message in our interop tests, half
   * of Deno's native limit (64 MiB) and a third of ws's (100 MiB), so that a
   * few hostile connections cannot pin gigabytes.
   *
   * A non-negative integer, or `Infinity` for no limit.
   *
   * @default {33554432 (32 MiB)}
   */
  maxMessageSize?: number;
  /**
   * The most frames one message may take. No object is kept per fragment,
   * so memory is bounded by `maxMessageSize` alone; this bounds only the
   * per-frame work. It sits far above ws's 16,384, which rejects a 4 MiB
   * message sent in 256-byte fragments.
   *
   * A positive integer (1 allows no fragmentation), or `Infinity`.
   *
   * @default {1048576}
   */
  maxFragments?: number;
}

/** The default {@linkcode MessageLimits.maxMessageSize}: 32 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024;
/** The default {@linkcode MessageLimits.maxFragments}: 1,048,576. */
export const DEFAULT_MAX_FRAGMENTS = 1024 * 1024;

/** The part of a frame's header that reassembly needs. */
export interface MessageFrameHeader {
  /** Whether the frame ends its message. */
  fin: boolean;
  /** The frame's opcode. */
  opcode: number;
  /** The payload length its header declared. */
  payloadLength: number;
  /**
   * RSV1: with permessage-deflate, set on the first frame of a compressed
   * message (RFC 7692 §6). The parser lets it through only when an
   * extension allows it.
   *
   * @default {false}
   */
  rsv1?: boolean;
}

/** Options for {@linkcode MessageAssembler}. */
export interface MessageAssemblerOptions extends MessageLimits {
  /**
   * Copy payloads that are kept, because the caller reuses the buffers that
   * pieces are views of (as a socket read loop does).
   *
   * @default {false}
   */
  copy?: boolean;
  /**
   * With `copy`, put copies of up to 512 bytes side by side in a 2 KiB
   * `ArrayBuffer` of this assembler's own (each at an offset that is a
   * multiple of 8), as Node's `Buffer` pool does, instead of one
   * `ArrayBuffer` each. In Deno a fresh `ArrayBuffer` costs about 280 ns and
   * a view of an existing one about 20 ns. Such a payload's `buffer` is
   * larger than the payload and holds this assembler's earlier payloads;
   * transferring it detaches them.
   *
   * @default {false}
   */
  shareBuffers?: boolean;
}

/** Receives the messages and control frames a {@linkcode MessageAssembler} reads. */
export interface MessageHandler {
  /** Called with each complete text or binary message. */
  message(data: string | Uint8Array): void;
  /** Called with each control frame (close, ping, pong), payload unchanged. */
  control(opcode: number, payload: Uint8Array): void;
  /**
   * Called with each complete compressed message (RSV1 on its first frame,
   * RFC 7692 §6): its opcode and still-compressed payload, unvalidated.
   * Without it, RSV1 fails with 1002.
   */
  compressed?(opcode: number, payload: Uint8Array): void;
}

function unexpectedRsv1(what: string): WebSocketError {
  return new WebSocketError(`Cannot decode message: RSV1 set on ${what}`, {
    code: "ERR_UNEXPECTED_RSV",
  });
}

function invalidUtf8(cause?: unknown): WebSocketError {
  return new WebSocketError("Cannot decode text message: invalid UTF-8", {
    code: "ERR_INVALID_UTF8",
    cause,
  });
}

/**
 * Reassembles messages from frames, or from pieces of frames as they
 * arrive, with no object kept per fragment.
 *
 * - Control frames interleaved inside a fragmented message are handed on at
 *   once (RFC 6455 §5.4).
 * - A continuation without a message open, or a new data frame inside an
 *   unfinished message, fails with 1002 (§5.4).
 * - Text is validated as its bytes arrive, so an invalid sequence fails with
 *   1007 on the piece that holds it, even in the middle of a frame (§8.1).
 * - `maxMessageSize` (summed over fragments) and `maxFragments` fail with
 *   1009, decided from frame headers before payload is buffered.
 *
 * @example Reassemble a fragmented text message around a ping
 * ```ts
 * import { MessageAssembler, Opcode } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const seen: unknown[] = [];
 * const assembler = new MessageAssembler({}, {
 *   message: (data) => seen.push(data),
 *   control: (opcode) => seen.push(opcode),
 * });
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * assembler.push({ fin: false, opcode: Opcode.Text, payloadLength: 3 }, bytes("Hel"), 0);
 * assembler.push({ fin: true, opcode: Opcode.Ping, payloadLength: 0 }, bytes(""), 0);
 * assembler.push({ fin: true, opcode: Opcode.Continuation, payloadLength: 2 }, bytes("lo"), 0);
 * assertEquals(seen, [Opcode.Ping, "Hello"]);
 * ```
 */
export class MessageAssembler {
  #maxMessageSize: number;
  #maxFragments: number;
  #copy: boolean;
  #handler: MessageHandler;
  // With shareBuffers: where small copies go, and its bytes taken so far.
  #share: boolean;
  #slab: ArrayBuffer | undefined;
  #slabUsed = 0;
  // The open message: its opcode (0 when none), frame count and the bytes
  // its frame headers have declared so far.
  #opcode = 0;
  #compressed = false;
  #fragments = 0;
  #size = 0;
  // Bytes of the open message, when it is not one frame in one piece.
  #buffer: Uint8Array | undefined;
  #fill = 0;
  // The open text message's validator (see #pushText), and whether its
  // last piece ended inside a code point.
  #textValidator: TextDecoder | undefined;
  #textPending = false;

  /**
   * Makes an assembler.
   *
   * @param options The limits, and whether to copy kept payloads.
   * @param handler Receives messages and control frames.
   * @throws {RangeError | TypeError} For a limit out of its range, or not
   * a number.
   */
  constructor(options: MessageAssemblerOptions, handler: MessageHandler) {
    checkOptions("create MessageAssembler", options, MESSAGE);
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS;
    this.#copy = options.copy ?? false;
    this.#share = options.shareBuffers ?? false;
    this.#handler = handler;
  }

  /**
   * Whether a fragmented message is open.
   *
   * @returns `true` between the first and the final frame of a message.
   */
  get inMessage(): boolean {
    return this.#opcode !== 0;
  }

  /**
   * Takes a frame, or a piece of one that starts `offset` bytes into its
   * payload. Pieces of a frame must come in order; the frame is complete
   * when `offset + payload.length === header.payloadLength`.
   *
   * @param header The frame's FIN bit, opcode and declared length.
   * @param payload The unmasked payload, or a piece of it.
   * @param offset Where `payload` starts within the frame's payload.
   * @param ascii `true` when the caller already knows every byte of
   * `payload` is below 0x80 (`FrameParser` learns it while
   * unmasking), which spares a text piece its ASCII check; a wrong `true`
   * would let invalid UTF-8 through.
   * @default {false}
   * @throws {WebSocketError} On a protocol violation or an exceeded limit.
   */
  push(
    header: MessageFrameHeader,
    payload: Uint8Array,
    offset: number,
    ascii = false,
  ): void {
    const opcode = header.opcode;
    if (opcode >= 0x8) {
      // RFC 7692 §6.1: RSV1 marks only data messages.
      if (header.rsv1) throw unexpectedRsv1("a control frame");
      this.#handler.control(opcode, this.#keep(payload));
      return;
    }
    if (offset === 0) this.#startFrame(header);
    const last = offset + payload.length === header.payloadLength;
    if (last && header.fin && offset === 0 && this.#fragments === 1) {
      // The common case: a message of one frame, whole in one piece.
      const type = this.#opcode;
      this.#opcode = 0;
      if (this.#compressed) {
        this.#compressed = false;
        this.#handler.compressed!(type, this.#keep(payload));
      } else if (type === Opcode.Text) {
        let text: string;
        try {
          text = decodeUtf8(payload);
        } catch (cause) {
          throw invalidUtf8(cause);
        }
        this.#handler.message(text);
      } else {
        this.#handler.message(this.#keep(payload));
      }
      return;
    }
    if (this.#opcode === Opcode.Text && !this.#compressed) {
      this.#pushText(payload, last && header.fin, ascii);
      return;
    }
    this.#append(payload);
    if (last && header.fin) this.#endMessage();
  }

  /**
   * Declares the end of the frame stream.
   *
   * @throws {WebSocketError} `ERR_TRUNCATED_MESSAGE` when a message is open.
   */
  finish(): void {
    if (this.#opcode !== 0) {
      throw new WebSocketError(
        "Cannot decode message: the stream ended inside a fragmented message",
        { code: "ERR_TRUNCATED_MESSAGE" },
      );
    }
  }

  #startFrame(header: MessageFrameHeader): void {
    if (header.opcode === Opcode.Continuation) {
      // RFC 7692 §6.1: RSV1 is set on the first frame of a message only.
      if (header.rsv1) throw unexpectedRsv1("a continuation frame");
      if (this.#opcode === 0) {
        throw new WebSocketError(
          "Cannot decode message: a continuation frame arrived with no message open",
          { code: "ERR_UNEXPECTED_CONTINUATION" },
        );
      }
      if (++this.#fragments > this.#maxFragments) {
        throw new WebSocketError(
          `Cannot decode message: it has more than maxFragments (${this.#maxFragments}) frames`,
          { code: "ERR_TOO_MANY_FRAGMENTS" },
        );
      }
    } else {
      if (this.#opcode !== 0) {
        throw new WebSocketError(
          "Cannot decode message: a new message started inside an unfinished one",
          { code: "ERR_EXPECTED_CONTINUATION" },
        );
      }
      if (header.rsv1 && !this.#handler.compressed) {
        throw unexpectedRsv1("a message, with no compression negotiated");
      }
      this.#opcode = header.opcode;
      this.#compressed = header.rsv1 === true;
      this.#fragments = 1;
      this.#size = 0;
    }
    this.#size += header.payloadLength;
    // A compressed message is checked again once inflated; deflate may
    // grow incompressible data by a little, so its wire size gets 1/64 of
    // slack (stored blocks cost 5 bytes per 64 KiB).
    const limit = this.#compressed
      ? this.#maxMessageSize + (this.#maxMessageSize >>> 6) + 1024
      : this.#maxMessageSize;
    if (this.#size > limit) {
      throw new WebSocketError(
        `Cannot decode message: it exceeds maxMessageSize (${this.#maxMessageSize} bytes)`,
        { code: "ERR_MESSAGE_TOO_LARGE" },
      );
    }
  }

  /**
   * Text in pieces: validated as each piece arrives (RFC 6455 §8.1,
   * fail-fast), kept as bytes, and decoded once at the end on Deno's fast
   * path. A piece of ASCII that does not continue a code point is valid by
   * itself (a word-at-a-time check); any other piece goes through a
   * streaming fatal `TextDecoder`, which throws on the piece that holds the
   * first impossible byte. Measured (wsload, 4 × 1 MiB text echo): the
   * streaming decode of every piece into a string rope cost 1,411 µs of
   * server CPU per message.
   */
  #pushText(piece: Uint8Array, end: boolean, ascii: boolean): void {
    if (this.#textPending || !(ascii || isAscii(piece))) {
      const validator = this.#textValidator ??= new TextDecoder("utf-8", {
        fatal: true,
        ignoreBOM: true,
      });
      try {
        validator.decode(piece, { stream: !end });
      } catch (cause) {
        // A decoder that has thrown is not reused.
        this.#textValidator = undefined;
        this.#textPending = false;
        throw invalidUtf8(cause);
      }
      this.#textPending = !end && endsInsideCodePoint(piece);
    }
    this.#append(piece);
    if (end) {
      if (this.#textPending) {
        this.#textPending = false;
        throw invalidUtf8();
      }
      const buffer = this.#buffer;
      const fill = this.#fill;
      this.#buffer = undefined;
      this.#fill = 0;
      this.#opcode = 0;
      if (buffer === undefined) {
        this.#handler.message("");
        return;
      }
      // Validated above: the fast non-fatal decode is exact.
      const text = looseDecoder.decode(buffer.subarray(0, fill));
      releaseScratch(buffer);
      this.#handler.message(text);
    }
  }

  /**
   * Room for the next `length` payload bytes of the frame in progress,
   * straight in the message's buffer: a reader can read into it, and the
   * piece it then pushes (this very view, unmasked in place) costs no copy.
   * Valid until the next push.
   *
   * @param length The bytes to make room for: at most the frame's payload
   * still to come, so within the limits its header passed.
   * @returns The view, or `undefined` when no data message is in progress.
   */
  reserve(length: number): Uint8Array | undefined {
    if (this.#opcode === 0) return undefined;
    const buffer = this.#ensure(this.#fill + length);
    return buffer.subarray(this.#fill, this.#fill + length);
  }

  /** `payload`, or a copy of it when the caller reuses its buffer. */
  #keep(payload: Uint8Array): Uint8Array {
    if (!this.#copy) return payload;
    const length = payload.length;
    if (!this.#share || length > SLAB_MAX) return payload.slice();
    let slab = this.#slab;
    // byteLength is 0 once the application has transferred the slab.
    if (slab === undefined || this.#slabUsed + length > slab.byteLength) {
      slab = this.#slab = new ArrayBuffer(SLAB_SIZE);
      this.#slabUsed = 0;
    }
    const kept = new Uint8Array(slab, this.#slabUsed, length);
    kept.set(payload);
    this.#slabUsed += (length + 7) & ~7;
    return kept;
  }

  #ensure(need: number): Uint8Array {
    let buffer = this.#buffer;
    if (buffer === undefined || need > buffer.length) {
      // Room for every byte the headers have declared so far; doubling keeps
      // many small fragments linear. Never past maxMessageSize.
      const capacity = Math.max(
        this.#size,
        Math.min((buffer?.length ?? 0) * 2, this.#maxMessageSize),
        need,
      );
      // Text bytes stay here, so large ones reuse shared scratch buffers.
      const text = this.#opcode === Opcode.Text && !this.#compressed;
      const grown = text && capacity > SCRATCH_FROM
        ? takeScratch(capacity)
        : new Uint8Array(capacity);
      if (buffer !== undefined) {
        grown.set(buffer.subarray(0, this.#fill));
        if (text) releaseScratch(buffer);
      }
      this.#buffer = buffer = grown;
    }
    return buffer;
  }

  #append(piece: Uint8Array): void {
    const need = this.#fill + piece.length;
    const buffer = this.#ensure(need);
    // A piece read in place (see reserve) is already where it belongs.
    if (
      piece.buffer !== buffer.buffer ||
      piece.byteOffset !== buffer.byteOffset + this.#fill
    ) {
      buffer.set(piece, this.#fill);
    }
    this.#fill = need;
  }

  #endMessage(): void {
    const buffer = this.#buffer ?? new Uint8Array(0);
    const fill = this.#fill;
    const type = this.#opcode;
    this.#buffer = undefined;
    this.#fill = 0;
    this.#opcode = 0;
    if (this.#compressed) {
      this.#compressed = false;
      this.#handler.compressed!(type, buffer.subarray(0, fill));
      return;
    }
    // Hand on the buffer itself when it is (nearly) full, else trim it so
    // that the slack is not kept alive by the application.
    this.#handler.message(
      buffer.length - fill <= fill >>> 2
        ? buffer.subarray(0, fill)
        : buffer.slice(0, fill),
    );
  }
}

// MessageAssemblerOptions.shareBuffers: the slab, and the largest payload
// copied into one (at least 4 fit).
const SLAB_SIZE = 2 * 1024;
const SLAB_MAX = 512;
