/**
 * {@linkcode ServerSentEventParseStream}: `text/event-stream` bytes in,
 * events out.
 *
 * @module
 */

import {
  EventStreamParser,
  type EventStreamParserOptions,
} from "./event_stream_parser.ts";
import type { ServerSentEventMessage } from "./event.ts";
import { Utf8StreamDecoder } from "./_decoder.ts";

/** The options of {@linkcode ServerSentEventParseStream}. */
export type ServerSentEventParseStreamOptions = EventStreamParserOptions;

/**
 * Parses a `text/event-stream` body into events, as the HTML standard's
 * event stream interpretation (§9.2.6) says: UTF-8 decoded with a leading
 * BOM stripped and bad bytes replaced by U+FFFD, then
 * {@linkcode EventStreamParser}'s rules. Bytes may be cut anywhere,
 * inside a character or between a CR and its LF. An event the input ends
 * inside is discarded. The last event id and the `retry` value are on the
 * stream, for a client that reconnects.
 *
 * @example Parse a response body
 * ```ts
 * import { ServerSentEventParseStream } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * const body = new Response("\uFEFFevent: tick\ndata: 1\nid: a\n\ndata: 2\n\n").body!;
 * assertEquals(await Array.fromAsync(body.pipeThrough(new ServerSentEventParseStream())), [
 *   { event: "tick", data: "1", id: "a" },
 *   { event: "message", data: "2", id: "a" },
 * ]);
 * ```
 */
export class ServerSentEventParseStream
  extends TransformStream<Uint8Array, ServerSentEventMessage> {
  #parser: EventStreamParser;

  /**
   * Makes a parse stream.
   *
   * @param options The bound on one event and the starting event id.
   * @throws {RangeError | TypeError} For a `maxEventSize` that is not a
   * positive integer or Infinity.
   */
  constructor(options: ServerSentEventParseStreamOptions = {}) {
    const parser = new EventStreamParser(options);
    const decoder = new Utf8StreamDecoder();
    super({
      transform(chunk, controller) {
        const events = parser.push(decoder.decode(chunk));
        for (const event of events) controller.enqueue(event);
      },
      flush() {
        parser.push(decoder.decode());
        parser.end();
      },
    });
    this.#parser = parser;
  }

  /**
   * The last event id as of the last blank line.
   *
   * @returns The id, `""` if none.
   */
  get lastEventId(): string {
    return this.#parser.lastEventId;
  }

  /**
   * The reconnection time the stream asked for, in milliseconds.
   *
   * @returns The last valid `retry` value, or `undefined` if none came.
   */
  get retry(): number | undefined {
    return this.#parser.retry;
  }
}
