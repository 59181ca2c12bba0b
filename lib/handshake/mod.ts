/**
 * The opening handshake (RFC 6455 §4), for code that does it on a transport
 * of its own: the keys, the `Sec-WebSocket-Extensions` grammar (§9.1), the
 * server's checks of a request and its 101 answer, the client's checks of
 * the response, and raw HTTP/1.1 error answers.
 *
 * After the handshake, hand the bytes that follow it to a
 * `WebSocketDuplex` of the main entry point (or use `acceptWebSocket`, which
 * does the server's side of this on any transport).
 *
 * @example The server's side of a handshake
 * ```ts
 * import {
 *   generateKey,
 *   serverResponseHead,
 *   validateUpgradeRequest,
 * } from "@seed/websocket-streams/handshake";
 * import { assert } from "@std/assert";
 *
 * const request = new Request("http://localhost/chat", {
 *   headers: {
 *     host: "localhost",
 *     upgrade: "websocket",
 *     connection: "Upgrade",
 *     "sec-websocket-key": generateKey(),
 *     "sec-websocket-version": "13",
 *   },
 * });
 * const { key } = validateUpgradeRequest(request);
 * const head = await serverResponseHead(key, { protocol: "", extensions: "" });
 * assert(head.startsWith("HTTP/1.1 101 Switching Protocols\r\n"));
 * ```
 *
 * @module
 */

export { acceptKey, generateKey, WEBSOCKET_GUID } from "./key.ts";
export {
  type ExtensionOffer,
  formatExtensions,
  parseExtensions,
} from "./extensions.ts";
export {
  type ClientOffer,
  type HandshakeResult,
  validateServerResponse,
} from "./client.ts";
export {
  checkOrigin,
  HandshakeRejection,
  isUpgradeRequest,
  type OriginOptions,
  serverResponseHead,
  type UpgradeRequestInfo,
  validateUpgradeRequest,
} from "./server.ts";
export { errorResponse } from "./http_error.ts";
