/**
 * The wire format of long and short polling: JSON bodies, with binary
 * messages in base64. Pure functions, shared by the server and the client
 * (which must run in a browser: no Deno API here).
 *
 * - A message is a JSON string (text) or `{"b": "<base64>"}` (binary).
 * - A batch, in a poll response or a POST body, is
 *   `{"seq": <first>, "messages": [<message>, ...]}`: message `i` has the
 *   sequence number `seq + i`. Sequence numbers start at 1 on each side.
 *   A poll response may add `"closed": true`: the server has ended the
 *   session and every message was acknowledged. The answer to the client's
 *   close (`DELETE`) is such a batch too: the messages the client has not
 *   acknowledged, then the end (an older server answers `{"closed": true}`).
 * - A POST's answer is `{"ack": <last sequence number taken>}`.
 * - Opening a session answers
 *   `{"session": "<id>", "sessionTimeout": <ms>, "maxBodySize": <bytes>}`.
 *
 * @module
 */

import { show } from "../_options.ts";

/** A message on a polling connection: text or binary. */
export type PollingMessage = string | Uint8Array;

/** A batch of messages and the sequence number of its first. */
export interface PollingBatch {
  /** The sequence number of `messages[0]`. */
  seq: number;
  /** The messages, in order. */
  messages: PollingMessage[];
  /** Set on the last poll response of a session the server ended. */
  closed?: boolean;
}

type WireMessage = string | { b: string };

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Encodes a batch as the JSON of the wire format.
 *
 * @param batch The first sequence number and the messages.
 * @returns The JSON text.
 *
 * @example Text and binary in one batch
 * ```ts
 * import { decodeBatch, encodeBatch } from "@seed/websocket-streams/polling";
 * import { assertEquals } from "@std/assert";
 *
 * const text = encodeBatch({ seq: 3, messages: ["hi", new Uint8Array([255])] });
 * assertEquals(text, '{"seq":3,"messages":["hi",{"b":"/w=="}]}');
 * assertEquals(decodeBatch(text), { seq: 3, messages: ["hi", new Uint8Array([255])] });
 * ```
 */
export function encodeBatch(batch: PollingBatch): string {
  const messages: WireMessage[] = batch.messages.map((message) =>
    typeof message === "string" ? message : { b: toBase64(message) }
  );
  const wire: { seq: number; messages: WireMessage[]; closed?: true } = {
    seq: batch.seq,
    messages,
  };
  if (batch.closed) wire.closed = true;
  return JSON.stringify(wire);
}

/**
 * Decodes a batch from the JSON of the wire format.
 *
 * @param text The JSON text.
 * @returns The batch.
 * @throws {TypeError} For text that is not a batch.
 */
export function decodeBatch(text: string): PollingBatch {
  let wire: unknown;
  try {
    wire = JSON.parse(text);
  } catch {
    wire = undefined;
  }
  const value = wire as { seq?: unknown; messages?: unknown; closed?: unknown };
  if (
    typeof value !== "object" || value === null ||
    !Number.isSafeInteger(value.seq) || (value.seq as number) < 1 ||
    !Array.isArray(value.messages)
  ) {
    throw new TypeError(
      `Cannot decode polling batch: not {"seq", "messages"}: ${show(text)}`,
    );
  }
  const messages = value.messages.map((message: unknown): PollingMessage => {
    if (typeof message === "string") return message;
    const b = (message as { b?: unknown } | null)?.b;
    if (typeof b === "string") {
      try {
        return fromBase64(b);
      } catch {
        // Falls through to the error.
      }
    }
    throw new TypeError(
      `Cannot decode polling batch: not a message: ${show(message)}`,
    );
  });
  const batch: PollingBatch = { seq: value.seq as number, messages };
  if (value.closed === true) batch.closed = true;
  return batch;
}

/** Copies a written message into the form a batch holds. */
export function toPollingMessage(
  action: string,
  data: unknown,
): PollingMessage {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(
      data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    );
  }
  throw new TypeError(
    `Cannot ${action}: a message is a string, an ArrayBuffer or a view, not ${
      show(data)
    }`,
  );
}
