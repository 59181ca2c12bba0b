/**
 * Long polling and short polling: the Comet transports for clients that
 * can open neither a WebSocket nor an event stream. A
 * {@linkcode PollingServer} is a fetch handler (for `Deno.serve` or any
 * router); {@linkcode connectPolling} is its client, which runs in Deno and
 * in browsers. Both sides have the shape of a WebSocket connection:
 * `readable`, `writable`, `closed`, `close()`, of string and `Uint8Array`
 * messages, delivered in order and exactly once across lost responses.
 *
 * @example Long polling, both ways
 * ```ts
 * import { connectPolling, PollingServer } from "@seed/websocket-streams/polling";
 * import { assertEquals } from "@std/assert";
 *
 * const polling = new PollingServer((connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, polling.fetch);
 * const client = await connectPolling(`http://127.0.0.1:${server.addr.port}/`);
 * const writer = client.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2, 3]));
 * const reader = client.readable.getReader();
 * assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
 * client.close();
 * await client.closed;
 * polling.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

export {
  decodeBatch,
  encodeBatch,
  type PollingBatch,
  type PollingMessage,
} from "./wire.ts";
export {
  type PollingConnection,
  PollingServer,
  type PollingServerOptions,
} from "./server.ts";
export {
  connectPolling,
  PollingClientConnection,
  type PollingClientOptions,
} from "./client.ts";
export {
  ERROR_CODES,
  WebSocketError,
  type WebSocketErrorCode,
  type WebSocketErrorInit,
} from "../errors.ts";
export type { MessageData } from "../codec/message.ts";
export type { WebSocketCloseInfo } from "../net/connection_options.ts";
