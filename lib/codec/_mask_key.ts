// Masking keys drawn from a pooled buffer of random bytes, so that a client
// pays for one crypto.getRandomValues call per 1,024 frames, not one per
// frame. RFC 6455 §5.3: the key must be unpredictable, from a strong source
// of entropy; getRandomValues is a CSPRNG.

const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let next = POOL_SIZE;

/**
 * Returns a fresh 4-byte masking key. It is a view of the pool, valid until
 * the next 1,023 calls: copy it to keep it.
 */
export function nextMaskKey(): Uint8Array {
  if (next === POOL_SIZE) {
    crypto.getRandomValues(pool);
    next = 0;
  }
  const key = pool.subarray(next, next + 4);
  next += 4;
  return key;
}

/**
 * Writes a fresh 4-byte masking key into `key`: no view is made, so a
 * frame costs no allocation for its key.
 */
export function fillMaskKey(key: Uint8Array): Uint8Array {
  if (next === POOL_SIZE) {
    crypto.getRandomValues(pool);
    next = 0;
  }
  key[0] = pool[next]!;
  key[1] = pool[next + 1]!;
  key[2] = pool[next + 2]!;
  key[3] = pool[next + 3]!;
  next += 4;
  return key;
}
