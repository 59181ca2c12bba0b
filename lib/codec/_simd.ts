/**
 * Private: unmasking with WebAssembly SIMD, for payloads that lie in its
 * memory. XOR in 16-byte vectors is several times the JavaScript word loop.
 * Wasm works only on its own memory, and copying in and out would cost what
 * it saves, so some of the connection's pooled 64 KiB read buffers are
 * carved out of one fixed `WebAssembly.Memory` ({@linkcode takeReadSlot}),
 * and the parser unmasks a piece there in place. The memory never grows:
 * growing would detach the buffers already handed out; pages never touched
 * cost address space, not memory. Where WebAssembly or SIMD is missing,
 * nothing changes: no slots are handed out.
 *
 * @module
 */

import { keyWord } from "./_unmask.ts";

// The module, from this text by `wat2wasm` (wabt 1.0.32):
//
// (module
//   (import "env" "memory" (memory 1))
//   ;; mask(ptr, len, key): XOR len & ~63 bytes at ptr with the 4-byte key
//   ;; (a little-endian i32, rotated to ptr's position), 64 bytes a step.
//   (func (export "mask") (param $ptr i32) (param $len i32) (param $key i32)
//     (local $end i32) (local $k v128)
//     (local.set $k (i32x4.splat (local.get $key)))
//     (local.set $end
//       (i32.add (local.get $ptr) (i32.and (local.get $len) (i32.const -64))))
//     (block $done
//       (loop $loop
//         (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
//         (v128.store offset=0 (local.get $ptr)
//           (v128.xor (v128.load offset=0 (local.get $ptr)) (local.get $k)))
//         ;; ... the same at offsets 16, 32 and 48 ...
//         (local.set $ptr (i32.add (local.get $ptr) (i32.const 64)))
//         (br $loop)))))
// The 161 bytes, base64 (a byte array is 161 lines once formatted).
const WASM_BASE64 =
  "AGFzbQEAAAABBwFgA39/fwACDwEDZW52Bm1lbW9yeQIAAQMCAQAHCAEEbWFzawAA" +
  "Cm8BbQIBfwF7IAL9ESEEIAAgAUFAcWohAwJAA0AgACADTw0BIAAgAP0ABAAgBP1R" +
  "/QsEACAAIAD9AAQQIAT9Uf0LBBAgACAA/QAEICAE/VH9CwQgIAAgAP0ABDAgBP1R" +
  "/QsEMCAAQcAAaiEADAALCws=";

const SLOT_SIZE = 64 * 1024;
const SLOTS = 256;

interface Simd {
  buffer: ArrayBuffer;
  mask: (pointer: number, length: number, key: number) => void;
  next: number;
}

let simd: Simd | null | undefined;

function load(): Simd | null {
  try {
    // One Wasm page is 64 KiB: a slot a page.
    const memory = new WebAssembly.Memory({ initial: SLOTS, maximum: SLOTS });
    const bytes = Uint8Array.from(atob(WASM_BASE64), (c) => c.charCodeAt(0));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory },
    });
    return {
      buffer: memory.buffer as ArrayBuffer,
      mask: instance.exports.mask as Simd["mask"],
      next: 0,
    };
  } catch {
    return null;
  }
}

/**
 * A fresh 64 KiB read buffer in the Wasm memory, or `undefined` when all
 * 256 are handed out or SIMD is missing. The caller keeps it for good (it
 * pools its read buffers).
 */
export function takeReadSlot(): Uint8Array | undefined {
  if (simd === undefined) simd = load();
  if (simd === null || simd.next === SLOTS) return undefined;
  return new Uint8Array(simd.buffer, SLOT_SIZE * simd.next++, SLOT_SIZE);
}

/** How many slots {@linkcode takeReadSlot} can still hand out. */
export function readSlotsLeft(): number {
  if (simd === undefined) simd = load();
  return simd === null ? 0 : SLOTS - simd.next;
}

/**
 * Unmasks `piece` in place with SIMD when it lies in the Wasm memory: all
 * but its last `length % 64` bytes, which it leaves to the caller.
 *
 * @param piece The masked bytes.
 * @param key The 4-byte masking key.
 * @param keyOffset The position of `piece[0]` in the payload (RFC 6455
 * §5.3: byte i is XORed with key byte i mod 4).
 * @returns How many leading bytes were unmasked (0 when not in the memory).
 */
export function unmaskSimd(
  piece: Uint8Array,
  key: Uint8Array,
  keyOffset: number,
): number {
  if (!simd || piece.buffer !== simd.buffer || piece.length < 64) return 0;
  const k = keyOffset & 3;
  const word = keyWord(key, k);
  simd.mask(piece.byteOffset, piece.length, word);
  return piece.length & ~63;
}
