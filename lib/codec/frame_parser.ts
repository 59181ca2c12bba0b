/**
 * The incremental frame parser: an explicit state machine over chunks that
 * may break anywhere. The {@linkcode FrameDecoderStream} and the connection's
 * read loop both drive it.
 *
 * @module
 */

import { unmaskSimd } from "./_simd.ts";
import { unmaskAscii } from "./_unmask.ts";
import { WebSocketError } from "../errors.ts";
import {
  type FrameHeader,
  frameHeaderLength,
  type FrameHeaderOptions,
  isControlOpcode,
  Opcode,
  parseFrameHeader,
} from "./frame.ts";
import { mask } from "./mask.ts";
import { checkOptions, FRAME } from "../_options.ts";

/** Options for {@linkcode FrameParser}. */
export interface FrameParserOptions extends FrameHeaderOptions {
  /**
   * Hand on a data frame's payload in pieces as its bytes arrive, instead of
   * buffering the whole frame. The next stage can then fail fast, for
   * example on invalid UTF-8 in the middle of a long frame, and no frame is
   * ever buffered here. Control frames (at most 125 bytes) always come whole.
   *
   * @default {false}
   */
  partial?: boolean;
  /**
   * Copy each frame's masking key into one 4-byte array owned by the parser,
   * instead of a new array per frame: a header's `mask` is then valid only
   * until the next frame starts. For callers that do not keep headers (the
   * connection), it saves an allocation per frame.
   *
   * @default {false}
   */
  reuseKey?: boolean;
}

/**
 * Receives what a {@linkcode FrameParser} reads: the header of the frame,
 * and a piece of its unmasked payload that starts `offset` bytes into it.
 * A frame is complete when `offset + payload.length === header.payloadLength`.
 * Without `partial`, every call carries a whole frame (`offset` is 0). A
 * frame with an empty payload gets one call with an empty piece. `ascii` is
 * `true` when the parser found, while unmasking the piece, that all its
 * bytes are below 0x80; `false` says only that it did not look.
 */
export type FrameCallback = (
  header: FrameHeader,
  payload: Uint8Array,
  offset: number,
  ascii: boolean,
) => void;

// The parser's states, after ws's receiver: GET_INFO reads the first two
// bytes, GET_HEADER the extended length and masking key, GET_DATA the payload.
const GET_INFO = 0;
const GET_HEADER = 1;
const GET_DATA = 2;
const EMPTY = new Uint8Array(0);

/**
 * Reads frames from a byte stream pushed in chunks of any size.
 *
 * Ownership: the parser unmasks payloads in place, so it changes the chunks
 * it is given, and the pieces it hands on are views of those chunks (when a
 * frame lies inside one chunk) or of its own buffer (when a whole frame spans
 * chunks). Only the bytes of a frame that spans chunks are copied.
 *
 * @example Parse a frame that arrives in two pieces
 * ```ts
 * import { FrameParser } from "@seed/websocket-streams/codec";
 * import { assertEquals } from "@std/assert";
 *
 * const seen: string[] = [];
 * const parser = new FrameParser({ role: "client" }, (header, payload) => {
 *   seen.push(`${header.opcode}:${new TextDecoder().decode(payload)}`);
 * });
 * parser.push(new Uint8Array([0x81, 0x05, 0x48, 0x65]));
 * parser.push(new Uint8Array([0x6c, 0x6c, 0x6f]));
 * assertEquals(seen, ["1:Hello"]);
 * ```
 */
export class FrameParser {
  #options: FrameParserOptions;
  #onFrame: FrameCallback;
  #partial: boolean;
  #state = GET_INFO;
  // The header bytes gathered so far, when a header spans chunks.
  // Both made on first use: an idle connection's parser holds neither.
  #head: Uint8Array | undefined;
  #key: Uint8Array | undefined;
  #reuseKey: boolean;
  // Whether the data frames being read belong to a text message: only
  // their pieces are worth an ASCII check while unmasking.
  #inText = false;
  #headFill = 0;
  #headNeed = 2;
  #header: FrameHeader | undefined;
  #received = 0;
  // Where the chunk being parsed ends.
  #end = 0;
  // Only for a whole (non-partial) frame that spans chunks.
  #buffer: Uint8Array | undefined;

  /**
   * Makes a parser.
   *
   * @param options The receiving role, the limits, and `partial`.
   * @param onFrame Called for every frame, or piece of a frame.
   * @throws {RangeError | TypeError} For `maxFrameSize` or `allowedRsv` out
   * of its range, or not a number.
   */
  constructor(options: FrameParserOptions, onFrame: FrameCallback) {
    checkOptions("create FrameParser", options, FRAME);
    this.#options = options;
    this.#onFrame = onFrame;
    this.#partial = options.partial ?? false;
    this.#reuseKey = options.reuseKey ?? false;
  }

  /**
   * Whether the parser stands between frames, so that the stream may end
   * here.
   *
   * @returns `true` at a frame boundary.
   */
  get idle(): boolean {
    return this.#state === GET_INFO && this.#headFill === 0;
  }

  /**
   * The payload bytes still to come for the frame being read (0 between
   * frames). A reader can size its next read by it.
   *
   * @returns The count of bytes.
   */
  get payloadRemaining(): number {
    return this.#state === GET_DATA
      ? this.#header!.payloadLength - this.#received
      : 0;
  }

  /**
   * The payload bytes of the frame being read already handed on (0 between
   * frames and before its first piece).
   *
   * @returns The count of bytes.
   */
  get payloadReceived(): number {
    return this.#state === GET_DATA ? this.#received : 0;
  }

  /**
   * Parses the next chunk of the byte stream, calling back for every frame
   * or piece that it completes.
   *
   * @param chunk The next bytes. They are unmasked in place.
   * @param end Where the bytes end in `chunk`: a reader that fills part of
   * a reused buffer passes the count read, and needs no view of it.
   * @default {chunk.length}
   * @throws {WebSocketError} On the first protocol violation.
   */
  push(chunk: Uint8Array, end: number = chunk.length): void {
    const length = end;
    this.#end = end;
    let pos = 0;
    while (pos < length) {
      if (this.#state !== GET_DATA) {
        // Fast path: the whole header lies in this chunk.
        if (this.#headFill === 0 && length - pos >= 2) {
          const need = frameHeaderLength(chunk[pos + 1]!);
          if (length - pos >= need) {
            this.#startFrame(
              parseFrameHeader(chunk, pos, this.#options, this.#maskKey()),
            );
            pos += need;
            continue;
          }
        }
        pos = this.#gatherHeader(chunk, pos);
        continue;
      }
      pos = this.#readData(chunk, pos);
    }
  }

  /**
   * Declares the end of the byte stream.
   *
   * @throws {WebSocketError} `ERR_TRUNCATED_FRAME` when it ends inside a
   * frame.
   */
  finish(): void {
    if (!this.idle) {
      throw new WebSocketError(
        "Cannot decode frame: the stream ended inside a frame",
        { code: "ERR_TRUNCATED_FRAME" },
      );
    }
  }

  // Copies header bytes that span chunks into #head.
  #gatherHeader(chunk: Uint8Array, pos: number): number {
    const take = Math.min(this.#headNeed - this.#headFill, this.#end - pos);
    const head = this.#head ??= new Uint8Array(14);
    head.set(chunk.subarray(pos, pos + take), this.#headFill);
    this.#headFill += take;
    pos += take;
    if (this.#headFill < this.#headNeed) return pos;
    if (this.#state === GET_INFO) {
      this.#state = GET_HEADER;
      this.#headNeed = frameHeaderLength(head[1]!);
      if (this.#headFill < this.#headNeed) return pos;
    }
    const header = parseFrameHeader(head, 0, this.#options, this.#maskKey());
    this.#headFill = 0;
    this.#headNeed = 2;
    this.#startFrame(header);
    return pos;
  }

  // The array a masked header's key is read into: one reused per parser
  // with `reuseKey`, else a fresh one per frame.
  #maskKey(): Uint8Array | undefined {
    return this.#reuseKey ? this.#key ??= new Uint8Array(4) : undefined;
  }

  #startFrame(header: FrameHeader): void {
    // A continuation keeps its message's kind; control frames come between.
    if (header.opcode === Opcode.Text) this.#inText = true;
    else if (header.opcode === Opcode.Binary) this.#inText = false;
    if (header.payloadLength === 0) {
      this.#state = GET_INFO;
      this.#onFrame(header, EMPTY, 0, true);
      return;
    }
    this.#header = header;
    this.#received = 0;
    this.#state = GET_DATA;
  }

  #readData(chunk: Uint8Array, pos: number): number {
    const header = this.#header!;
    const received = this.#received;
    const take = Math.min(header.payloadLength - received, this.#end - pos);
    const piece = chunk.subarray(pos, pos + take);
    let ascii = false;
    // RFC 6455 §5.3: byte i of the payload is XORed with key byte i mod 4.
    if (header.mask) {
      // Pieces in the Wasm memory (pooled read buffers) take the SIMD path
      // for whole 64-byte blocks; the rest, and every other piece, the word
      // loop, which also learns whether the piece is ASCII (for the text
      // check of a message in pieces) at no extra cost.
      const done = unmaskSimd(piece, header.mask, received);
      if (done === 0) {
        if (this.#inText) ascii = unmaskAscii(piece, header.mask, received);
        else mask(piece, header.mask, received);
      } else if (done < take) {
        mask(piece.subarray(done), header.mask, received + done);
      }
    }
    const total = received + take;
    const done = total === header.payloadLength;
    if (done) {
      this.#state = GET_INFO;
      this.#header = undefined;
    }
    this.#received = total;
    if (received === 0 && done) {
      // The whole payload lies in this chunk: hand on a view, no copy.
      this.#onFrame(header, piece, 0, ascii);
    } else if (this.#partial && !isControlOpcode(header.opcode)) {
      this.#onFrame(header, piece, received, ascii);
    } else {
      // Bounded by maxFrameSize, checked in parseFrameHeader.
      this.#buffer ??= new Uint8Array(header.payloadLength);
      this.#buffer.set(piece, received);
      if (done) {
        const whole = this.#buffer;
        this.#buffer = undefined;
        this.#onFrame(header, whole, 0, false);
      }
    }
    return pos + take;
  }
}
