/**
 * Server-sent events: the event a server sends, the event a client
 * receives, and {@linkcode encodeServerSentEvent}, the pure encoder both
 * {@linkcode ServerSentEventStream} and {@linkcode sseResponse} use.
 *
 * The format is the HTML standard's `text/event-stream` (§9.2.5): lines of
 * `field: value`, an event ended by a blank line, UTF-8 on the wire.
 *
 * @module
 */

import { show } from "../_options.ts";

/**
 * An event to send. Every field is optional; an event with no field at all
 * encodes to nothing.
 */
export interface ServerSentEvent {
  /**
   * The event's data. Line ends inside it (CRLF, LF or CR) split it into
   * one `data:` line each; the client joins them back with LF.
   */
  data?: string;
  /** The event type; the client's default is `"message"`. No line end. */
  event?: string;
  /**
   * The event id, which the client sends back as `Last-Event-ID` when it
   * reconnects. No line end and no NUL (a client would ignore the field).
   */
  id?: string;
  /** The client's reconnection time, in milliseconds: an integer ≥ 0. */
  retry?: number;
  /**
   * A comment, which clients ignore (a keep-alive, say). Line ends inside
   * it make one comment line each.
   */
  comment?: string;
}

/**
 * An event as a client receives it, after the HTML standard's dispatch
 * (§9.2.6): `event` is `"message"` when the stream named none, `data` the
 * `data` lines joined with LF, and `id` the last event id seen so far on
 * the stream (it persists across events until an `id` field changes it).
 */
export interface ServerSentEventMessage {
  /** The event type: the `event` field, or `"message"`. */
  event: string;
  /** The data lines, joined with LF. */
  data: string;
  /** The last event id at dispatch, `""` until one is set. */
  id: string;
}

const LINE_END = /\r\n|\r|\n/;
const HAS_LINE_END = /[\r\n]/;

/**
 * Encodes one event in the `text/event-stream` format, blank line included.
 *
 * @param event The event's fields.
 * @returns The text to send: `""` for an event with no field.
 * @throws {TypeError} For an `event` or `id` with a line end, an `id` with
 * a NUL, a field that is not a string, or a `retry` that is not a
 * non-negative integer.
 *
 * @example Multi-line data becomes one data line per line
 * ```ts
 * import { encodeServerSentEvent } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   encodeServerSentEvent({ event: "greeting", id: "7", data: "hello\nworld" }),
 *   "event: greeting\nid: 7\ndata: hello\ndata: world\n\n",
 * );
 * ```
 */
export function encodeServerSentEvent(event: ServerSentEvent): string {
  if (typeof event !== "object" || event === null) {
    throw new TypeError(
      `Cannot encode server-sent event: expected an object, not ${show(event)}`,
    );
  }
  const { data, comment, id, retry } = event;
  const type = event.event;
  let out = "";
  if (comment !== undefined) {
    checkString("comment", comment);
    for (const line of comment.split(LINE_END)) out += `:${line}\n`;
  }
  if (type !== undefined) {
    checkString("event", type);
    if (HAS_LINE_END.test(type)) {
      throw new TypeError(
        `Cannot encode server-sent event: event must not contain a line end, not ${
          show(type)
        }`,
      );
    }
    out += `event: ${type}\n`;
  }
  if (id !== undefined) {
    checkString("id", id);
    // HTML §9.2.6: a client ignores an id field with a NUL, so it would
    // silently keep the previous id; refuse it here instead.
    if (HAS_LINE_END.test(id) || id.includes("\0")) {
      throw new TypeError(
        `Cannot encode server-sent event: id must contain no line end and no NUL, not ${
          show(id)
        }`,
      );
    }
    out += `id: ${id}\n`;
  }
  if (retry !== undefined) {
    if (
      typeof retry !== "number" || !Number.isSafeInteger(retry) || retry < 0
    ) {
      throw new TypeError(
        `Cannot encode server-sent event: retry must be a non-negative integer, not ${
          show(retry)
        }`,
      );
    }
    out += `retry: ${retry}\n`;
  }
  if (data !== undefined) {
    checkString("data", data);
    for (const line of data.split(LINE_END)) out += `data: ${line}\n`;
  }
  // A comment alone still ends with the blank line: harmless (an empty
  // data buffer dispatches nothing) and it keeps every chunk an event.
  return out === "" ? "" : out + "\n";
}

function checkString(name: string, value: unknown): void {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot encode server-sent event: ${name} must be a string, not ${
        show(value)
      }`,
    );
  }
}
