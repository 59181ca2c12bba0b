/**
 * {@linkcode EventStreamParser}: the HTML standard's event stream
 * interpretation (§9.2.6) as a sans-I/O state machine over decoded text.
 * {@linkcode ServerSentEventParseStream} and {@linkcode ServerSentEventClient}
 * both run it, so they agree on every rule.
 *
 * @module
 */

import { checkOptions, type Rules } from "../_options.ts";
import { WebSocketError } from "../errors.ts";
import type { ServerSentEventMessage } from "./event.ts";

/**
 * The default bound on one event: its data buffer plus the line being read,
 * in UTF-16 code units (1 MiB of ASCII).
 */
export const DEFAULT_MAX_EVENT_SIZE = 1024 * 1024;

/** The options of {@linkcode EventStreamParser}. */
export interface EventStreamParserOptions {
  /**
   * The most UTF-16 code units one event may hold: its data buffer plus
   * the line still being read (a line with no end counts too, so a stream
   * that never sends a line end is bounded). Past it the parser throws
   * `ERR_EVENT_TOO_LARGE`.
   *
   * @default {1048576}
   */
  maxEventSize?: number;
  /**
   * The last event id to start from: the `Last-Event-ID` a reconnecting
   * client sent, which events carry until the stream sets another.
   *
   * @default {""}
   */
  lastEventId?: string;
}

const OPTIONS: Rules = [["maxEventSize", { min: 1, infinity: true }]];

/**
 * The event stream interpretation of the HTML standard (§9.2.6), over text
 * already decoded from UTF-8 (BOM stripped): lines end at CRLF, LF or CR,
 * a CR at the end of one chunk and an LF at the start of the next being
 * one line end; a line starting with a colon is a comment; `field: value`
 * loses one space after the colon; `data` lines are joined with LF; an
 * `id` with a NUL is ignored; `retry` is taken only when it is all ASCII
 * digits (at least one); a blank line dispatches; the end of input
 * discards an event with no blank line after it.
 *
 * @example Parse text fed in pieces
 * ```ts
 * import { EventStreamParser } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * const parser = new EventStreamParser();
 * assertEquals(parser.push("id: 1\r"), []);
 * assertEquals(parser.push("\ndata: a\ndata:b\n\nretry: 500\n"), [
 *   { event: "message", data: "a\nb", id: "1" },
 * ]);
 * assertEquals([parser.lastEventId, parser.retry], ["1", 500]);
 * ```
 */
export class EventStreamParser {
  #maxEventSize: number;
  // The line read so far, before its line end arrives.
  #line = "";
  // The previous chunk ended with CR: an LF first in the next is part of it.
  #skipLF = false;
  #data = "";
  #type = "";
  #idBuffer: string;
  #lastEventId: string;
  #retry: number | undefined;

  /**
   * Makes a parser.
   *
   * @param options The bound on one event and the starting event id.
   * @throws {RangeError | TypeError} For a `maxEventSize` that is not a
   * positive integer or Infinity.
   */
  constructor(options: EventStreamParserOptions = {}) {
    checkOptions("create event stream parser", options, OPTIONS);
    this.#maxEventSize = options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE;
    this.#idBuffer = this.#lastEventId = options.lastEventId ?? "";
  }

  /**
   * The last event id string: the last `id` field's value as of the last
   * blank line (HTML §9.2.6 sets it at every dispatch, even one with no
   * data). A client sends it as `Last-Event-ID` when it reconnects.
   *
   * @returns The id, `""` if none.
   */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /**
   * The reconnection time the stream asked for, in milliseconds.
   *
   * @returns The last valid `retry` value, or `undefined` if none came.
   */
  get retry(): number | undefined {
    return this.#retry;
  }

  /**
   * Parses the next piece of text.
   *
   * @param text Decoded text, cut anywhere.
   * @returns The events dispatched by the lines this piece completes.
   * @throws {WebSocketError} `ERR_EVENT_TOO_LARGE` when an event passes
   * `maxEventSize`.
   */
  push(text: string): ServerSentEventMessage[] {
    const events: ServerSentEventMessage[] = [];
    let start = 0;
    if (this.#skipLF && text.length > 0) {
      this.#skipLF = false;
      if (text.charCodeAt(0) === 10) start = 1;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      let line = text.slice(start, i);
      if (this.#line !== "") {
        line = this.#line + line;
        this.#line = "";
      }
      if (c === 13) {
        if (i + 1 === text.length) this.#skipLF = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      this.#processLine(line, events);
    }
    if (start < text.length) {
      const rest = text.length - start;
      this.#checkSize(this.#line.length + rest);
      this.#line += text.slice(start);
    }
    return events;
  }

  /**
   * Ends the input: an event with no blank line after it is discarded
   * (HTML §9.2.6), and the parser is ready for a new stream that keeps
   * the last event id and the reconnection time.
   */
  end(): void {
    this.#line = "";
    this.#skipLF = false;
    this.#data = "";
    this.#type = "";
    this.#idBuffer = this.#lastEventId;
  }

  #checkSize(pending: number): void {
    if (this.#data.length + pending > this.#maxEventSize) {
      throw new WebSocketError(
        `Cannot parse server-sent event: it is over maxEventSize (${this.#maxEventSize} UTF-16 code units)`,
        { code: "ERR_EVENT_TOO_LARGE" },
      );
    }
  }

  #processLine(line: string, events: ServerSentEventMessage[]): void {
    if (line === "") {
      this.#dispatch(events);
      return;
    }
    this.#checkSize(line.length);
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment
    let field = line;
    let value = "";
    if (colon > 0) {
      field = line.slice(0, colon);
      const from = line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
      value = line.slice(from);
    }
    switch (field) {
      case "event":
        this.#type = value;
        break;
      case "data":
        this.#checkSize(value.length + 1);
        this.#data += value + "\n";
        break;
      case "id":
        if (!value.includes("\0")) this.#idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.#retry = Number(value);
        break;
        // Any other field is ignored.
    }
  }

  #dispatch(events: ServerSentEventMessage[]): void {
    this.#lastEventId = this.#idBuffer;
    const data = this.#data;
    const type = this.#type;
    this.#data = "";
    this.#type = "";
    if (data === "") return;
    events.push({
      event: type === "" ? "message" : type,
      data: data.slice(0, -1),
      id: this.#lastEventId,
    });
  }
}
