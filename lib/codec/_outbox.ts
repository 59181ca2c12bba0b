/**
 * Private: the connection's outgoing bytes. Frames are written straight into
 * pooled 64 KiB blocks (header and payload side by side, masked in place for
 * a client), so small frames cost no allocation and a burst leaves in one
 * socket write. Large unmasked payloads are queued by reference, uncopied.
 *
 * @module
 */

import { fillMaskKey } from "./_mask_key.ts";
import {
  encodedHeaderLength,
  type Frame,
  Opcode,
  writeFrameHeader,
} from "./frame.ts";
import { mask } from "./mask.ts";
import {
  BLOCK_SIZE,
  releaseBlock,
  SMALL_BLOCK_SIZE,
  takeBlock,
  takeScratch,
} from "../_pools.ts";

/** Unmasked payloads above this are queued by reference, not copied. */
const COPY_LIMIT = 16 * 1024;
/**
 * Frames too big for a block are built in shared scratch buffers up to this
 * size (larger ones get a buffer of their own): reused memory, where a fresh
 * buffer costs a page fault per 4 KiB.
 */
const SCRATCH_LIMIT = 16 * 1024 * 1024;
/** A frame's first byte, as `writeFrameHeader` reads it. */
export type FrameBits = Omit<Frame, "payload" | "mask">;

const bitsTable: (FrameBits | undefined)[] = [];

/**
 * The bits of a frame with no RSV2/RSV3, one shared object per combination,
 * so that sending a frame allocates no header object.
 */
export function frameBits(
  opcode: Opcode,
  fin: boolean,
  rsv1: boolean,
): FrameBits {
  const index = opcode | (fin ? 16 : 0) | (rsv1 ? 32 : 0);
  return bitsTable[index] ??= { fin, rsv1, rsv2: false, rsv3: false, opcode };
}

const encoder = new TextEncoder();
/** The longest frame header: 64-bit length and a masking key. */
const MAX_HEADER = 14;
const TEXT_FRAME = frameBits(Opcode.Text, true, false);

/**
 * Writes `length` bytes of `source` from `from`, masked, into `block` at
 * `at` (RFC 6455 §5.3: byte i XOR key byte i mod 4); in place when both are
 * the same bytes. A client's small frames take a byte loop here, with no
 * view (a view per frame was its largest allocation after the message
 * itself); longer ones the word loop of `mask()`.
 */
function maskInto(
  block: Uint8Array,
  at: number,
  source: Uint8Array,
  from: number,
  length: number,
  key: Uint8Array,
): void {
  if (length < 64) {
    for (let i = 0; i < length; i++) {
      block[at + i] = source[from + i]! ^ key[i & 3]!;
    }
  } else {
    mask(
      source.subarray(from, from + length),
      key,
      0,
      block.subarray(at, at + length),
    );
  }
}

function pooled(block: Uint8Array): boolean {
  return block.length === BLOCK_SIZE || block.length === SMALL_BLOCK_SIZE;
}

/** One piece to write, and the block to give back after (if pooled). */
interface OutChunk {
  bytes: Uint8Array;
  block: Uint8Array | undefined;
}

/**
 * Frames a server's (unmasked) data message once, into a fresh buffer of its
 * own that no pool ever takes: the same bytes can then go to any number of
 * server connections ({@linkcode Outbox.pushEncoded}).
 *
 * @param opcode Text or binary.
 * @param payload The payload (compressed when `compressed`).
 * @param compressed Whether RSV1 is set on the first frame (RFC 7692 §6.1).
 * @param fragmentSize Split into frames of at most this many bytes.
 * @returns The frames, back to back.
 */
export function encodeShared(
  opcode: Opcode,
  payload: Uint8Array,
  compressed: boolean,
  fragmentSize: number = Infinity,
): Uint8Array {
  const count = payload.length <= fragmentSize
    ? 1
    : Math.ceil(payload.length / fragmentSize);
  let total = 0;
  for (let i = 0, start = 0; i < count; i++, start += fragmentSize) {
    const end = Math.min(start + fragmentSize, payload.length);
    total += encodedHeaderLength(end - start, false) + end - start;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0, start = 0; i < count; i++, start += fragmentSize) {
    const end = Math.min(start + fragmentSize, payload.length);
    at = writeFrameHeader(
      out,
      at,
      frameBits(
        i === 0 ? opcode : Opcode.Continuation,
        i === count - 1,
        compressed && i === 0,
      ),
      end - start,
    );
    out.set(payload.subarray(start, end), at);
    at += end - start;
  }
  return out;
}

/** Bytes waiting for the socket, in order. */
export class Outbox {
  #masked: boolean;
  // A client's masking key, refilled for every frame (a key is used only
  // while its frame is encoded).
  #key: Uint8Array | undefined;
  #sealed: OutChunk[] = [];
  #block: Uint8Array | undefined;
  #start = 0;
  #fill = 0;
  /** Bytes queued and not yet handed to the socket. */
  size = 0;
  /**
   * Set when a payload was queued by reference (a server's payload over
   * 16 KiB): its bytes are still the caller's until written. The caller
   * clears it.
   */
  byReference = false;

  constructor(masked: boolean) {
    this.#masked = masked;
    if (masked) this.#key = new Uint8Array(4);
  }

  /** Whether nothing waits. */
  get empty(): boolean {
    return this.#sealed.length === 0 && this.#fill === this.#start;
  }

  /**
   * Encodes a frame at the end of the queue.
   *
   * @param frame The frame's bits (see {@linkcode frameBits}).
   * @param payload Its payload, unmasked.
   * @param maskKey A client's key for this frame, instead of a fresh one
   * (`FrameEncoderStream` takes a frame's own).
   */
  push(frame: FrameBits, payload: Uint8Array, maskKey?: Uint8Array): void {
    const length = payload.length;
    const key = this.#key ? maskKey ?? fillMaskKey(this.#key) : undefined;
    const headerLength = encodedHeaderLength(length, this.#masked);
    this.size += headerLength + length;
    if (!this.#masked && length > COPY_LIMIT) {
      // RFC 6455 §5.1: a server does not mask, so a large payload can go to
      // the socket as it is, after its header.
      const header = new Uint8Array(headerLength);
      writeFrameHeader(header, 0, frame, length);
      this.#seal();
      this.#sealed.push({ bytes: header, block: undefined });
      this.#sealed.push({ bytes: payload, block: undefined });
      this.byReference = true;
      return;
    }
    const need = headerLength + length;
    if (this.#block === undefined || this.#fill + need > this.#block.length) {
      // The first block of a burst is small; a burst that outgrows it
      // continues in large ones.
      const first = this.#block === undefined && this.#sealed.length === 0;
      this.#seal();
      this.#block = need <= SMALL_BLOCK_SIZE && first
        ? takeBlock(true)
        : need <= BLOCK_SIZE
        ? takeBlock(false)
        : need <= SCRATCH_LIMIT
        ? takeScratch(need)
        : new Uint8Array(need);
      this.#start = this.#fill = 0;
    }
    const block = this.#block;
    const at = writeFrameHeader(block, this.#fill, frame, length, key);
    if (key) maskInto(block, at, payload, 0, length, key);
    else block.set(payload, at);
    this.#fill = at + length;
  }

  /**
   * Encodes a whole text message (one frame) with its UTF-8 written straight
   * into the block, when its largest possible size (3 bytes per UTF-16 unit)
   * fits one and fixes the header's length form. Saves the separate
   * `TextEncoder.encode` buffer and the copy out of it.
   *
   * @returns `false` when the text must go the usual way.
   */
  pushText(text: string): boolean {
    const most = text.length * 3;
    if (MAX_HEADER + most > BLOCK_SIZE) {
      return most <= SCRATCH_LIMIT && this.#pushLargeText(text, most);
    }
    // The header's length form must be known before encoding. Text of up to
    // 125 units has the 7-bit form when it is ASCII; a loop finds out while
    // it copies, and beats the encoder's call up to about 64 units (34
    // against 86 ns at 32).
    if (text.length < 126 && this.#pushAsciiText(text)) return true;
    // Else the form is taken from the most (3 bytes per unit), and, when
    // that was the 16-bit form but fewer than 126 bytes came out, the
    // payload moves back 2 bytes to the 7-bit form.
    const short = most < 126;
    if (!short && most >= 0x10000) return false;
    const headerLength = (short ? 2 : 4) + (this.#masked ? 4 : 0);
    const block = this.#room(headerLength + most);
    let at = this.#fill + headerLength;
    const { written } = encoder.encodeInto(
      text,
      block.subarray(at, at + most),
    );
    if (!short && written < 126) {
      block.copyWithin(at - 2, at, at + written);
      at -= 2;
    }
    this.#endText(block, at, written);
    return true;
  }

  /** Text of under 126 units, if all ASCII: `false` at the first unit that is not. */
  #pushAsciiText(text: string): boolean {
    const length = text.length;
    const headerLength = this.#masked ? 6 : 2;
    const block = this.#room(headerLength + length);
    const at = this.#fill + headerLength;
    for (let i = 0; i < length; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0x80) return false;
      block[at + i] = unit;
    }
    this.#endText(block, at, length);
    return true;
  }

  /** A block with `need` bytes free at `#fill`: the current one, or a fresh one. */
  #room(need: number): Uint8Array {
    if (this.#block === undefined || this.#fill + need > this.#block.length) {
      const first = this.#block === undefined && this.#sealed.length === 0;
      this.#seal();
      this.#block = takeBlock(need <= SMALL_BLOCK_SIZE && first);
      this.#start = this.#fill = 0;
    }
    return this.#block;
  }

  /**
   * Ends a text frame whose `written` payload bytes are in place at `at`:
   * the header just before them (its length set by `at`), and the mask.
   */
  #endText(block: Uint8Array, at: number, written: number): void {
    const key = this.#key ? fillMaskKey(this.#key) : undefined;
    const headerLength = encodedHeaderLength(written, this.#masked);
    writeFrameHeader(block, at - headerLength, TEXT_FRAME, written, key);
    if (key) maskInto(block, at, block, at, written, key);
    this.#fill = at + written;
    this.size += headerLength + written;
  }

  /**
   * Text too big for a block: encoded into a scratch buffer of its own
   * after room for the largest header, whose length form is then known, and
   * the header written just before the payload.
   */
  #pushLargeText(text: string, most: number): boolean {
    const buffer = takeScratch(MAX_HEADER + most);
    const { written } = encoder.encodeInto(
      text,
      buffer.subarray(MAX_HEADER, MAX_HEADER + most),
    );
    const key = this.#key ? fillMaskKey(this.#key) : undefined;
    const headerLength = encodedHeaderLength(written, this.#masked);
    const start = MAX_HEADER - headerLength;
    writeFrameHeader(buffer, start, TEXT_FRAME, written, key);
    if (key) mask(buffer.subarray(MAX_HEADER, MAX_HEADER + written), key);
    this.#seal();
    this.#sealed.push({
      bytes: buffer.subarray(start, MAX_HEADER + written),
      block: buffer,
    });
    this.size += headerLength + written;
    return true;
  }

  /**
   * Queues frames encoded elsewhere, unchanged, after what is queued: a
   * message framed once for many server connections (`lib/topics.ts`).
   * Only a server's outbox takes them (RFC 6455 §5.1: a client masks every
   * frame with a key of its own, so its frames cannot be shared). Up to
   * 16 KiB they are copied into the current block, so that a burst still
   * leaves in one write; larger ones are queued by reference with no block
   * to give back: the bytes are never pooled, so no other connection can
   * rewrite them while any socket still writes them.
   *
   * @param frames Whole frames: the caller keeps them unchanged for as long
   * as any socket may write them.
   * @throws {TypeError} On a client's outbox.
   */
  pushEncoded(frames: Uint8Array): void {
    if (this.#masked) {
      throw new TypeError(
        "Cannot queue shared frames: a client masks each frame with its own key",
      );
    }
    const length = frames.length;
    this.size += length;
    if (length > COPY_LIMIT) {
      this.#seal();
      this.#sealed.push({ bytes: frames, block: undefined });
      return;
    }
    const block = this.#room(length);
    block.set(frames, this.#fill);
    this.#fill += length;
  }

  /** Moves the filled part of the current block to the sealed list. */
  #seal(): void {
    if (this.#block === undefined) return;
    if (this.#fill > this.#start) {
      const whole = this.#fill === this.#block.length ||
        !pooled(this.#block);
      this.#sealed.push({
        bytes: this.#block.subarray(this.#start, this.#fill),
        // The block goes back to the pool after its last bytes are written.
        block: whole ? this.#block : undefined,
      });
      this.#start = this.#fill;
      if (whole) this.#block = undefined;
    } else if (this.#fill === 0) {
      releaseBlock(this.#block);
      this.#block = undefined;
    }
  }

  /**
   * The block to give back once the bytes {@linkcode next} returned last
   * are written, if any.
   */
  nextBlock: Uint8Array | undefined;

  /**
   * Takes the next bytes to write, in order; the current block is taken
   * with its last bytes, so that frames pushed while it is written go to a
   * fresh block. No chunk object is made for them: {@linkcode nextBlock}
   * says which block to give back after the write.
   *
   * @returns The bytes, or `undefined` when nothing waits.
   */
  next(): Uint8Array | undefined {
    if (this.#sealed.length > 0) {
      const chunk = this.#sealed.shift()!;
      this.nextBlock = chunk.block;
      return chunk.bytes;
    }
    const block = this.#block;
    if (block === undefined || this.#fill === this.#start) {
      this.nextBlock = undefined;
      return undefined;
    }
    const bytes = block.subarray(this.#start, this.#fill);
    this.nextBlock = block;
    this.#block = undefined;
    this.#start = this.#fill = 0;
    return bytes;
  }

  /**
   * Drops everything queued and gives the blocks back, but for the one that
   * holds `inFlight`: bytes of a write that has not settled. A part-filled
   * block is handed to a write as a view while it stays current, so a
   * write can hold a block that is still here; pooled again, it would be
   * filled by another connection while its bytes are being written.
   *
   * @param inFlight The bytes of the write under way, if any.
   */
  clear(inFlight?: Uint8Array): void {
    const held = inFlight?.buffer;
    while (this.next() !== undefined) {
      const block = this.nextBlock;
      if (block && block.buffer !== held) releaseBlock(block);
    }
    // An empty current block is still held.
    if (this.#block && this.#block.buffer !== held) releaseBlock(this.#block);
    this.#block = this.nextBlock = undefined;
    this.#start = this.#fill = 0;
    this.size = 0;
  }
}
