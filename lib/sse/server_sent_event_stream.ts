/**
 * {@linkcode ServerSentEventStream}: events in, `text/event-stream` bytes
 * out.
 *
 * @module
 */

import { encodeServerSentEvent, type ServerSentEvent } from "./event.ts";

/**
 * Encodes events as `text/event-stream` UTF-8 bytes, one chunk per event
 * (see {@linkcode encodeServerSentEvent} for the rules and what it
 * refuses). An event it refuses errors the stream with that `TypeError`.
 *
 * @example Serve events from a stream of objects
 * ```ts
 * import { ServerSentEventStream } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * const body = ReadableStream.from([{ data: "a\nb" }, { comment: "ping" }])
 *   .pipeThrough(new ServerSentEventStream());
 * assertEquals(await new Response(body).text(), "data: a\ndata: b\n\n:ping\n\n");
 * ```
 */
export class ServerSentEventStream
  extends TransformStream<ServerSentEvent, Uint8Array> {
  /** Makes an encoding stream. */
  constructor() {
    const encoder = new TextEncoder();
    super({
      transform(event, controller) {
        const text = encodeServerSentEvent(event);
        if (text !== "") controller.enqueue(encoder.encode(text));
      },
    });
  }
}
