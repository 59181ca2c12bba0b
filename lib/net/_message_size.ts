/**
 * Private: how the message streams of a connection and of the
 * `upgradeWebSocket` adapter size their queues, so that both count bytes
 * the same way.
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";

/**
 * Bytes the writable's own queue may hold before it signals backpressure,
 * on top of what the sink buffers: room for many small messages, so a
 * write does not turn backpressure on and off (and make a fresh `ready`
 * promise) each time.
 */
export const WRITE_QUEUE_BYTES = 64 * 1024;

/**
 * A message's size for either stream's queue: UTF-16 units of text, bytes
 * of binary; 0 for a value the sink rejects.
 */
export function messageSize(chunk: MessageData): number {
  if (typeof chunk === "string") return chunk.length;
  const size = (chunk as { byteLength?: unknown })?.byteLength;
  return typeof size === "number" ? size : 0;
}
