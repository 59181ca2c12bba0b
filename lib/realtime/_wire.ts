/**
 * Private: how the Comet transports put messages into text. Pure, no Deno
 * API: the browser client bundles it.
 *
 * A message crosses an SSE data line, a `<script>` chunk or a JSON body as
 * one JSON value: a text message as a JSON string, a binary one as
 * `{"b": base64}`. JSON escapes every line end, so an SSE `data:` line never
 * splits one (HTML §9.2.6 would turn CRLF into LF).
 *
 * @module
 */

import type { MessageData } from "../codec/message.ts";

/** A message as JSON: the text itself, or its bytes in base64. */
export type WireMessage = string | { b: string };

/**
 * A downstream item: a message with its id, the close, or the hello a
 * stream starts with (so that the client knows the stream gets through,
 * and a proxy that buffers it makes the client fall back).
 */
export type WireItem =
  | { i: number; m: WireMessage }
  | { c: number; r: string }
  | { h: 1 };

/** Messages from client to server, the first numbered `seq`. */
export interface WireSend {
  seq: number;
  m: WireMessage[];
}

/** What a poll answers: items after the ack, in order. */
export interface WirePoll {
  items: WireItem[];
}

/** The endpoint names under the handler's path. */
export const ENDPOINTS = {
  websocket: "ws",
  session: "session",
  sse: "sse",
  iframe: "iframe",
  poll: "poll",
  send: "send",
  close: "close",
} as const;

const CHUNK = 0x8000;

/** Encodes bytes in base64 without Deno's or Node's helpers. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** Decodes base64; throws a `DOMException` on a malformed string. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * A message to its JSON value. Returns `undefined` for a value that is not
 * a message, so that the caller fails with its own error.
 */
export function toWire(data: MessageData): WireMessage | undefined {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return { b: toBase64(new Uint8Array(data)) };
  if (ArrayBuffer.isView(data)) {
    return {
      b: toBase64(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      ),
    };
  }
  return undefined;
}

/** A JSON value back to a message; `undefined` when it is not one. */
export function fromWire(value: unknown): string | Uint8Array | undefined {
  if (typeof value === "string") return value;
  if (
    typeof value === "object" && value !== null &&
    typeof (value as { b?: unknown }).b === "string"
  ) {
    try {
      return fromBase64((value as { b: string }).b);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The byte size a message counts for in a queue bound. */
export function wireSize(value: WireMessage): number {
  return typeof value === "string" ? value.length : value.b.length;
}

// Inside a <script> element the HTML tokenizer ends the script at "</script"
// and enters the "script data escaped" state at "<!--" (HTML §13.2.5.4);
// neither needs anything but "<", so escaping every "<" keeps a JSON value
// inside its element. ">" and "&" go too (harmless, and "-->" cannot close
// a comment that never opened). U+2028/U+2029 are valid in JSON strings and
// in ES2019 string literals, but not in older engines' literals.
const SCRIPT_UNSAFE = /[<>&\u2028\u2029]/g;
const ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * JSON that can sit inside an HTML `<script>` element as a JS expression:
 * `JSON.stringify` with `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(SCRIPT_UNSAFE, (c) => ESCAPES[c]!);
}

/** Whether a name can be a callback on the parent window: an identifier. */
export const CALLBACK_NAME = /^[A-Za-z_$][\w$]{0,63}$/;
