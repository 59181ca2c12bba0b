/**
 * {@linkcode iframeResponse}: the "forever frame", an HTML document that
 * never finishes loading and runs one `<script>` per message, each handing
 * its value to a callback on the parent page.
 *
 * @module
 */

import { checkOptions, type Rules, show } from "../_options.ts";
import { CALLBACK_NAME, scriptJson } from "./_wire.ts";

/** The default interval of keep-alive chunks, in milliseconds. */
export const DEFAULT_IFRAME_KEEP_ALIVE = 15_000;

/** The options of {@linkcode iframeResponse}. */
export interface IframeResponseOptions {
  /**
   * The name of the function on the parent window (`window.parent[name]`)
   * each script calls with its value: an identifier of at most 64
   * characters.
   */
  callback: string;
  /**
   * Bytes of whitespace sent after the document's head, for browsers that
   * wait for that much before they parse a document. Chromium needs none
   * when the response says its charset (measured by
   * tests/techniques_browser_test.ts); old Internet Explorer and Safari
   * wanted 256 bytes to 1 KiB. At most 65536.
   *
   * @default {0}
   */
  padding?: number;
  /**
   * Milliseconds without a value after which a newline is sent, so that
   * proxies that drop idle connections keep this one; `0` turns it off.
   *
   * @default {15000}
   */
  keepAlive?: number;
  /**
   * More response headers, applied after the ones this function sets.
   *
   * @default {undefined}
   */
  headers?: HeadersInit;
}

const OPTIONS: Rules = [
  ["padding", { min: 0, max: 65536 }],
  ["keepAlive", { min: 0, max: 2 ** 31 - 1, unit: "milliseconds" }],
];

/**
 * One value as a script chunk: `<script>f(VALUE)</script>`, where VALUE is
 * the JSON of `value` with `<`, `>`, `&`, U+2028 and U+2029 escaped, so
 * that no string inside it (`</script>`, `<!--`) can end the element.
 *
 * @param value Any JSON value.
 * @returns The chunk, ending in a newline.
 *
 * @example A message that tries to break out stays inside its string
 * ```ts
 * import { encodeIframeChunk } from "@seed/websocket-streams/realtime";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   encodeIframeChunk("</script><!--"),
 *   '<script>f("\\u003c/script\\u003e\\u003c!--")</script>\n',
 * );
 * ```
 */
export function encodeIframeChunk(value: unknown): string {
  return `<script>f(${scriptJson(value)})</script>\n`;
}

/**
 * Makes the `text/html` response of a forever frame: a head that defines
 * `f` (which calls `parent[callback]`), then one
 * {@linkcode encodeIframeChunk} per value of `source` as it comes. The body
 * is pull-based, like `sseResponse`'s: a value is read from `source` only
 * when the socket has taken the previous one; cancelling the body (the
 * client went away) cancels `source`.
 *
 * @param source The values to send, in order.
 * @param options The callback's name, padding, keep-alive and headers.
 * @returns The response to return from a fetch handler.
 * @throws {TypeError} For a callback that is not an identifier.
 * @throws {RangeError} For padding or keepAlive out of range.
 *
 * @example Stream two values
 * ```ts
 * import { iframeResponse } from "@seed/websocket-streams/realtime";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const response = iframeResponse(ReadableStream.from([1, "two"]), {
 *   callback: "onValue",
 *   keepAlive: 0,
 * });
 * const html = await response.text();
 * assertStringIncludes(html, "parent.onValue(v)");
 * assertStringIncludes(html, '<script>f(1)</script>\n<script>f("two")</script>\n');
 * ```
 */
export function iframeResponse(
  source: ReadableStream<unknown> | AsyncIterable<unknown>,
  options: IframeResponseOptions,
): Response {
  checkOptions("create iframe stream", options, OPTIONS);
  const callback = options?.callback;
  if (typeof callback !== "string" || !CALLBACK_NAME.test(callback)) {
    throw new TypeError(
      `Cannot create iframe stream: callback must be an identifier, not ${
        show(callback)
      }`,
    );
  }
  const reader = source instanceof ReadableStream
    ? source.getReader()
    : ReadableStream.from(source).getReader();
  const keepAlive = options.keepAlive ?? DEFAULT_IFRAME_KEEP_ALIVE;
  const encoder = new TextEncoder();
  const head = "<!doctype html><meta charset=utf-8><title>stream</title>" +
    `<script>function f(v){parent.${callback}(v)}</script>\n` +
    " ".repeat(options.padding ?? 0);
  let pending: Promise<ReadableStreamReadResult<unknown>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(head));
    },
    async pull(controller) {
      pending ??= reader.read();
      let result: ReadableStreamReadResult<unknown> | undefined;
      if (keepAlive > 0) {
        const tick = new Promise<undefined>((resolve) => {
          wake = () => resolve(undefined);
          timer = setTimeout(wake, keepAlive);
        });
        try {
          result = await Promise.race([pending, tick]);
        } finally {
          clearTimeout(timer);
          wake = undefined;
        }
      } else {
        result = await pending;
      }
      if (cancelled) return;
      if (result === undefined) {
        controller.enqueue(encoder.encode("\n"));
        return;
      }
      pending = undefined;
      if (result.done) controller.close();
      else controller.enqueue(encoder.encode(encodeIframeChunk(result.value)));
    },
    cancel(reason) {
      cancelled = true;
      clearTimeout(timer);
      wake?.();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const headers = new Headers({
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-accel-buffering": "no",
  });
  if (options.headers !== undefined) {
    new Headers(options.headers).forEach((value, name) => {
      headers.set(name, value);
    });
  }
  return new Response(body, { headers });
}
