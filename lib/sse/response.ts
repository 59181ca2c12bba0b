/**
 * {@linkcode sseResponse}: a `Response` that streams events, for
 * `Deno.serve` or any fetch handler.
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { encodeServerSentEvent, type ServerSentEvent } from "./event.ts";

/** The default interval of keep-alive comments, in milliseconds. */
export const DEFAULT_KEEP_ALIVE = 15_000;

/** The options of {@linkcode sseResponse}. */
export interface SseResponseOptions {
  /**
   * Milliseconds without an event after which a comment line (`:`) is
   * sent, so that proxies and load balancers that drop idle connections
   * keep this one; `0` turns it off. Only while the client reads: the
   * timer runs inside a pull, and is cleared when the body is cancelled.
   *
   * @default {15000}
   */
  keepAlive?: number;
  /**
   * More response headers. They are applied after the three this function
   * sets (`content-type: text/event-stream`, `cache-control: no-cache`,
   * `x-accel-buffering: no`), so a caller may override them.
   *
   * @default {undefined}
   */
  headers?: HeadersInit;
  /**
   * The response's status.
   *
   * @default {200}
   */
  status?: number;
}

const OPTIONS: Rules = [
  ["keepAlive", { min: 0, max: 2 ** 31 - 1, unit: "milliseconds" }],
];
const KEEP_ALIVE = Symbol("keep-alive");
const KEEP_ALIVE_BYTES = new TextEncoder().encode(":\n\n");

/**
 * Makes a `text/event-stream` response whose body is the events of
 * `source`, encoded by {@linkcode encodeServerSentEvent}.
 *
 * The body is pull-based (`highWaterMark` 0): an event is read from
 * `source` only when the HTTP server asks for more body, which it does
 * only as fast as the socket drains. A client that reads slowly therefore
 * stops the reads from `source` instead of making the server buffer; a
 * `source` that is itself a pull-based stream (or an async generator)
 * produces nothing ahead of the client. When the client goes away, the
 * server cancels the body, which cancels `source` and clears the
 * keep-alive timer. An event `encodeServerSentEvent` refuses errors the
 * body (the client sees the connection end) and cancels `source`.
 *
 * @param source The events to send, in order.
 * @param options The keep-alive interval, extra headers and the status.
 * @returns The response to return from a fetch handler.
 * @throws {RangeError | TypeError} For a `keepAlive` out of range, or a
 * `source` that is neither a `ReadableStream` nor an async iterable.
 *
 * @example Stream events from a handler
 * ```ts
 * import { sseResponse } from "@seed/websocket-streams/sse";
 * import { assertEquals } from "@std/assert";
 *
 * async function* ticks() {
 *   for (let i = 1; i <= 2; i++) yield { id: String(i), data: `tick ${i}` };
 * }
 * const response = sseResponse(ticks(), { keepAlive: 0 });
 * assertEquals(response.headers.get("content-type"), "text/event-stream");
 * assertEquals(
 *   await response.text(),
 *   "id: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n",
 * );
 * ```
 */
export function sseResponse(
  source: ReadableStream<ServerSentEvent> | AsyncIterable<ServerSentEvent>,
  options: SseResponseOptions = {},
): Response {
  checkOptions("create event stream response", options, OPTIONS);
  const keepAlive = options.keepAlive ?? DEFAULT_KEEP_ALIVE;
  let reader: ReadableStreamDefaultReader<ServerSentEvent>;
  if (source instanceof ReadableStream) {
    reader = source.getReader();
  } else if (
    typeof source === "object" && source !== null &&
    Symbol.asyncIterator in source
  ) {
    reader = ReadableStream.from(source).getReader();
  } else {
    throw new TypeError(
      `Cannot create event stream response: source must be a ReadableStream or an async iterable, not ${
        show(source)
      }`,
    );
  }
  const encoder = new TextEncoder();
  // A read of source that a keep-alive overtook: the next pull awaits it
  // again rather than reading past it.
  let pending: Promise<ReadableStreamReadResult<ServerSentEvent>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: ((value: typeof KEEP_ALIVE) => void) | undefined;
  let cancelled = false;

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Loops past events that encode to nothing: a pull that enqueues
      // nothing is not called again by every consumer (Deno's HTTP server
      // waits for ever).
      while (true) {
        pending ??= reader.read();
        let result:
          | ReadableStreamReadResult<ServerSentEvent>
          | typeof KEEP_ALIVE;
        if (keepAlive > 0) {
          const tick = new Promise<typeof KEEP_ALIVE>((resolve) => {
            wake = resolve;
            timer = setTimeout(resolve, keepAlive, KEEP_ALIVE);
          });
          try {
            result = await Promise.race([pending, tick]);
          } finally {
            clearTimeout(timer);
            timer = wake = undefined;
          }
        } else {
          result = await pending;
        }
        if (cancelled) return;
        if (result === KEEP_ALIVE) {
          controller.enqueue(KEEP_ALIVE_BYTES);
          return;
        }
        pending = undefined;
        if (result.done) {
          controller.close();
          return;
        }
        let text: string;
        try {
          text = encodeServerSentEvent(result.value);
        } catch (error) {
          cancelled = true;
          reader.cancel(error).catch(() => {});
          throw error;
        }
        if (text !== "") {
          controller.enqueue(encoder.encode(text));
          return;
        }
      }
    },
    cancel(reason) {
      cancelled = true;
      clearTimeout(timer);
      // Settles a pull that waits on the keep-alive race.
      wake?.(KEEP_ALIVE);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });

  const headers = new Headers({
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    // nginx buffers proxied responses unless told not to.
    "x-accel-buffering": "no",
  });
  if (options.headers !== undefined) {
    new Headers(options.headers).forEach((value, name) => {
      headers.set(name, value);
    });
  }
  return new Response(body, { status: options.status ?? 200, headers });
}
