/**
 * Private: every process-wide buffer pool, in one place, so that who owns a
 * pooled buffer can be read off one file.
 *
 * - **Outbox blocks** (`takeBlock`/`releaseBlock`): frames are encoded
 *   into them; a block is held by its outbox, then by the write that sends
 *   it, and goes back only once that write has settled.
 * - **Scratch buffers** (`takeScratch`/`releaseScratch`): bytes that never
 *   reach the application (large text being assembled or encoded, a
 *   client's masked copy of a large payload); one holder at a time.
 * - **Read buffers** (`takeReadBuffer`/`releaseReadBuffer`): a read's
 *   bytes, held by the read loop until they are parsed, on every exit.
 *
 * The Wasm slots of `codec/_simd.ts` feed the read buffers, and the zlib
 * streams of `deflate/` have a pool of their own (they are not buffers).
 *
 * @module
 */

import { readSlotsLeft, takeReadSlot } from "./codec/_simd.ts";

// --- outbox blocks -----------------------------------------------------------

/** The size of a large pooled block: one socket write at most. */
export const BLOCK_SIZE = 64 * 1024;
/**
 * A burst starts in a small block: most bursts are a few small frames, and
 * with many connections writing at once, each holds a block until its write
 * completes (measured: 100 connections on 64 KiB blocks spent 4.5 µs per
 * message more, zeroing fresh blocks the pool could not supply).
 */
export const SMALL_BLOCK_SIZE = 4 * 1024;
// Free blocks shared by all connections, so an idle connection holds none:
// at most 16 MiB of small and 8 MiB of large blocks are kept.
const SMALL_POOL_LIMIT = 4096;
const BLOCK_POOL_LIMIT = 128;
const smallPool: Uint8Array[] = [];
const blockPool: Uint8Array[] = [];

/** A free block: a small one to start a burst, else a large one. */
export function takeBlock(small: boolean): Uint8Array {
  return small
    ? smallPool.pop() ?? new Uint8Array(SMALL_BLOCK_SIZE)
    : blockPool.pop() ?? new Uint8Array(BLOCK_SIZE);
}

/** Returns a block to the shared pool once the socket has taken it. */
export function releaseBlock(block: Uint8Array): void {
  // The block itself goes back, not a fresh view of it: a view per release
  // was an allocation per flush. Only whole buffers are pooled.
  const whole = block.byteOffset === 0 &&
    block.buffer.byteLength === block.byteLength;
  if (block.byteLength === SMALL_BLOCK_SIZE) {
    if (whole && smallPool.length < SMALL_POOL_LIMIT) smallPool.push(block);
  } else if (block.byteLength === BLOCK_SIZE) {
    if (whole && blockPool.length < BLOCK_POOL_LIMIT) blockPool.push(block);
  } else {
    releaseScratch(block);
  }
}

// --- scratch buffers ---------------------------------------------------------

const MIN_CAPACITY = 64 * 1024;
const SCRATCH_POOL_LIMIT = 16;
const SCRATCH_POOL_BYTES = 64 * 1024 * 1024;
const scratchPool: Uint8Array[] = [];
let pooledBytes = 0;

/** The capacity a scratch buffer of at least `size` bytes gets. */
function capacityFor(size: number): number {
  let capacity = MIN_CAPACITY;
  while (capacity < size) capacity *= 2;
  return capacity;
}

/**
 * A buffer of at least `size` bytes, from the scratchPool when one is free. Its
 * contents are whatever the last user left.
 */
export function takeScratch(size: number): Uint8Array {
  let best = -1;
  for (let i = 0; i < scratchPool.length; i++) {
    const length = scratchPool[i]!.length;
    if (length >= size && (best < 0 || length < scratchPool[best]!.length)) {
      best = i;
    }
  }
  if (best < 0) return new Uint8Array(capacityFor(size));
  const buffer = scratchPool[best]!;
  scratchPool[best] = scratchPool[scratchPool.length - 1]!;
  scratchPool.pop();
  pooledBytes -= buffer.length;
  return buffer;
}

/** Whether `buffer` is the shape {@linkcode takeScratch} hands out. */
export function isScratch(buffer: Uint8Array): boolean {
  const length = buffer.length;
  return buffer.byteOffset === 0 && length >= MIN_CAPACITY &&
    (length & (length - 1)) === 0;
}

/**
 * Gives a buffer from {@linkcode takeScratch} back, once nothing uses it.
 * Any other buffer is ignored.
 */
export function releaseScratch(buffer: Uint8Array): void {
  if (
    isScratch(buffer) && scratchPool.length < SCRATCH_POOL_LIMIT &&
    pooledBytes + buffer.length <= SCRATCH_POOL_BYTES
  ) {
    scratchPool.push(buffer);
    pooledBytes += buffer.length;
  }
}

// --- read buffers ------------------------------------------------------------

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
