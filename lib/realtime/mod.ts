/**
 * One connection shape over the WebSocket and the four Comet transports
 * that came before it (issue #16): short polling, long polling, the iframe
 * "forever frame" and server-sent events.
 *
 * - {@linkcode realtime}: one fetch handler for all five, on one path
 *   family (`/rt/ws`, `/rt/sse`, `/rt/poll`, `/rt/iframe`, …).
 * - {@linkcode connectRealtime}: the client; it tries each transport in
 *   order and falls back. Plain ESM: it runs in Deno and in browsers.
 * - {@linkcode iframeResponse} and {@linkcode encodeIframeChunk}: the
 *   forever frame, with the escaping that keeps each value in its script.
 *
 * @example Echo, whichever transport the client gets
 * ```ts
 * import { connectRealtime, realtime } from "@seed/websocket-streams/realtime";
 * import { assertEquals } from "@std/assert";
 *
 * const handler = realtime({}, (connection, info) => {
 *   connection.writable.getWriter().write(`hello over ${info.transport}`);
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
 * const connection = await connectRealtime(`http://127.0.0.1:${server.addr.port}/rt`, {
 *   transports: ["iframe"],
 * });
 * const reader = connection.readable.getReader();
 * assertEquals((await reader.read()).value, "hello over iframe");
 * reader.releaseLock();
 * connection.close();
 * await connection.closed;
 * handler.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

export {
  REALTIME_TRANSPORTS,
  type RealtimeCloseInfo,
  type RealtimeConnection,
  type RealtimeTransport,
} from "./connection.ts";
export {
  realtime,
  type RealtimeConnectionInfo,
  type RealtimeHandler,
  type RealtimeOptions,
} from "./server.ts";
export { connectRealtime, type ConnectRealtimeOptions } from "./client.ts";
export {
  encodeIframeChunk,
  iframeResponse,
  type IframeResponseOptions,
} from "./iframe.ts";
export type { MessageData } from "../codec/message.ts";
export type { UpgradeWebSocketOptions } from "../net/upgrade.ts";
export type { OriginOptions } from "../handshake/server.ts";
export {
  ERROR_CODES,
  WebSocketError,
  type WebSocketErrorCode,
  type WebSocketErrorInit,
} from "../errors.ts";
