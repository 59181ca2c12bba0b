/**
 * Server-sent events (the HTML standard's `text/event-stream`, §9.2): the
 * Comet transport where the server streams events down one long HTTP
 * response and the client reconnects with `Last-Event-ID`.
 *
 * - {@linkcode ServerSentEventStream} and {@linkcode encodeServerSentEvent}:
 *   events to bytes.
 * - {@linkcode ServerSentEventParseStream} and {@linkcode EventStreamParser}:
 *   bytes to events, by the standard's rules.
 * - {@linkcode sseResponse}: a pull-based response for `Deno.serve` (or any
 *   fetch handler), with keep-alive comments.
 * - {@linkcode ServerSentEventClient}: a reconnecting client over `fetch`
 *   that runs in Deno and in browsers.
 *
 * @example Round-trip events through the two streams
 * ```ts
 * import {
 *   ServerSentEventParseStream,
 *   ServerSentEventStream,
 * } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * const events = await Array.fromAsync(
 *   ReadableStream.from([{ event: "hello", data: "a\r\nb", id: "1" }])
 *     .pipeThrough(new ServerSentEventStream())
 *     .pipeThrough(new ServerSentEventParseStream()),
 * );
 * assertEquals(events, [{ event: "hello", data: "a\nb", id: "1" }]);
 * ```
 *
 * @module
 */

export {
  encodeServerSentEvent,
  type ServerSentEvent,
  type ServerSentEventMessage,
} from "./event.ts";
export { ServerSentEventStream } from "./server_sent_event_stream.ts";
export {
  EventStreamParser,
  type EventStreamParserOptions,
} from "./event_stream_parser.ts";
export {
  ServerSentEventParseStream,
  type ServerSentEventParseStreamOptions,
} from "./server_sent_event_parse_stream.ts";
export { sseResponse, type SseResponseOptions } from "./response.ts";
export {
  ServerSentEventClient,
  type ServerSentEventClientOptions,
  type ServerSentEventClientState,
} from "./client.ts";
export {
  ERROR_CODES,
  WebSocketError,
  type WebSocketErrorCode,
  type WebSocketErrorInit,
} from "../errors.ts";
