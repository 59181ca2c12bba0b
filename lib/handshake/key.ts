/**
 * The opening handshake's keys (RFC 6455 §4.1, §4.2.2): `Sec-WebSocket-Key`
 * and `Sec-WebSocket-Accept`.
 *
 * @module
 */

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const encoder = new TextEncoder();

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * Makes a `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
 *
 * @returns The key.
 *
 * @example A key is 24 characters of base64
 * ```ts
 * import { generateKey } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(generateKey().length, 24);
 * ```
 */
export function generateKey(): string {
  return base64(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Computes `Sec-WebSocket-Accept` for a key: base64 of the SHA-1 of the key
 * and the GUID (RFC 6455 §4.2.2).
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The accept value.
 *
 * @example The example of RFC 6455 §1.3
 * ```ts
 * import { acceptKey } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="),
 *   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * );
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + WEBSOCKET_GUID),
  );
  return base64(new Uint8Array(digest));
}
