/**
 * Private: the process-wide pool of 64 KiB read buffers. A connection whose
 * reads come back full takes one per read and gives it back as soon as the
 * read's bytes are parsed (the assembler copies what it keeps). The first
 * 256 are slots of the SIMD module's fixed Wasm memory, where the parser
 * unmasks whole 64-byte blocks; a slot is taken once and then lives in this
 * pool, so a buffer that is not given back is a slot lost for good.
 *
 * @module
 */

import { readSlotsLeft, takeReadSlot } from "./_simd.ts";

/** The size of a pooled read buffer. */
export const READ_BUFFER_SIZE = 64 * 1024;
// At most 16 MiB of buffers wait here.
const READ_POOL_LIMIT = 256;
const readPool: Uint8Array[] = [];

/** A 64 KiB read buffer: pooled, else a Wasm slot, else a fresh one. */
export function takeReadBuffer(): Uint8Array {
  return readPool.pop() ?? takeReadSlot() ?? new Uint8Array(READ_BUFFER_SIZE);
}

/** Gives a buffer from {@linkcode takeReadBuffer} back, once its bytes are parsed. */
export function releaseReadBuffer(buffer: Uint8Array): void {
  if (readPool.length < READ_POOL_LIMIT) readPool.push(buffer);
}

/**
 * For tests: the read buffers that can be had without allocating (pooled,
 * plus Wasm slots not yet taken).
 *
 * @returns The count, as `free`.
 */
export function readBufferStats(): { free: number } {
  return { free: readPool.length + readSlotsLeft() };
}
