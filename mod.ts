/**
 * websocket-streams: WebSocket (RFC 6455, with permessage-deflate, RFC 7692)
 * for Deno, as Web Streams.
 *
 * A connection reads messages from `readable` and writes them to
 * `writable`, with backpressure both ways and a bound on every buffer and
 * every wait. Each face hands out the same {@linkcode WebSocketConnection}
 * shape:
 *
 * - {@linkcode connect}: a client, `ws://` or `wss://`;
 * - {@linkcode serve}: a server on `Deno.listen` or `Deno.listenTls`;
 * - {@linkcode acceptWebSocket}: the server's handshake on a socket another
 *   server has read a request from (a `node:http` `"upgrade"` socket);
 * - {@linkcode upgradeWebSocket}: under `Deno.serve` and Deno Deploy, Deno's
 *   own socket behind the same streams;
 * - {@linkcode WebSocketStream}: the WHATWG WebSocketStream over `connect`;
 * - {@linkcode WebSocket}: the browser's `EventTarget` WebSocket over
 *   `connect`, for code written for browsers;
 * - {@linkcode WebSocketDuplex}: the whole protocol over any byte pair.
 *
 * The parts underneath have entry points of their own:
 * `@seed/websocket-streams/codec` (frames, messages and their streams),
 * `@seed/websocket-streams/handshake` (the opening handshake) and
 * `@seed/websocket-streams/deflate` (permessage-deflate).
 *
 * @example An echo server and a client
 * ```ts
 * import { connect, serve } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   connection.readable.pipeTo(connection.writable).catch(() => {});
 * });
 * const connection = await connect(`ws://127.0.0.1:${server.addr.port}/`);
 * const writer = connection.writable.getWriter();
 * const reader = connection.readable.getReader();
 * await writer.write("hello");
 * assertEquals((await reader.read()).value, "hello");
 * reader.releaseLock();
 * writer.releaseLock();
 * connection.close({ closeCode: 1000, reason: "done" });
 * assertEquals(await connection.closed, { closeCode: 1000, reason: "done" });
 * await server.shutdown();
 * ```
 *
 * @module
 */

export {
  ERROR_CODES,
  WebSocketError,
  type WebSocketErrorCode,
  type WebSocketErrorInit,
  WebSocketHandshakeError,
  type WebSocketHandshakeErrorInit,
} from "./lib/errors.ts";
export { CloseCode } from "./lib/codec/close.ts";
export type { MessageData } from "./lib/codec/message.ts";
export type { Role } from "./lib/codec/frame.ts";
export type { MessageLimits } from "./lib/codec/assembler.ts";
export type {
  DeflateParams,
  NegotiatedDeflate,
  PerMessageDeflateOptions,
} from "./lib/deflate/negotiate.ts";
export type {
  WebSocketConnection,
  WebSocketOpenInfo,
} from "./lib/net/websocket_connection.ts";
export type {
  ByteDuplex,
  HeartbeatOptions,
  WebSocketCloseInfo,
  WebSocketCloseOptions,
  WebSocketConnectionOptions,
} from "./lib/net/connection.ts";
export { connect, type ConnectOptions } from "./lib/net/connect.ts";
export {
  serve,
  type ServeOptions,
  type UpgradeDecision,
  type WebSocketServer,
} from "./lib/net/serve.ts";
export { type AcceptOptions, acceptWebSocket } from "./lib/net/accept.ts";
export type { OriginOptions } from "./lib/handshake/server.ts";
export {
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  type UpgradeWebSocketResult,
} from "./lib/net/upgrade.ts";
export {
  asWebSocketStream,
  WebSocketStream,
  type WebSocketStreamLike,
  type WebSocketStreamOpenInfo,
  type WebSocketStreamOptions,
} from "./lib/net/websocket_stream.ts";
export {
  WebSocketDuplex,
  type WebSocketDuplexOptions,
} from "./lib/net/duplex.ts";
export {
  WebSocket,
  type WebSocketBinaryType,
  type WebSocketEventHandler,
  type WebSocketEventMap,
  type WebSocketOptions,
} from "./lib/net/websocket.ts";
export {
  type Backplane,
  type PublishOptions,
  type SlowSubscriberPolicy,
  type SubscribeOptions,
  Topics,
  type TopicsOptions,
  type TopicsStats,
} from "./lib/topics.ts";
export {
  BroadcastChannelBackplane,
  type BroadcastChannelBackplaneOptions,
} from "./lib/broadcast_backplane.ts";
