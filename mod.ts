/**
 * websocket-streams: the WebSocket protocol (RFC 6455) as Web Streams.
 *
 * Bytes become frames and frames become messages through `TransformStream`s
 * that compose with `pipeThrough` and `pipeTo`. The encoders and decoders
 * are also pure functions and small state machines, so that the same code
 * runs in the streams, in tests and in benchmarks.
 *
 * @example Round-trip a message through the codec streams
 * ```ts
 * import {
 *   FrameDecoderStream,
 *   FrameEncoderStream,
 *   MessageDecoderStream,
 *   MessageEncoderStream,
 * } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const received = await Array.fromAsync(
 *   ReadableStream.from(["Hello", new Uint8Array([1, 2, 3])])
 *     .pipeThrough(new MessageEncoderStream({ fragmentSize: 2 }))
 *     .pipeThrough(new FrameEncoderStream({ role: "client" })) // masks
 *     .pipeThrough(new FrameDecoderStream({ role: "server", partial: true }))
 *     .pipeThrough(new MessageDecoderStream()),
 * );
 * assertEquals(received, [
 *   { type: "text", data: "Hello" },
 *   { type: "binary", data: new Uint8Array([1, 2, 3]) },
 * ]);
 * ```
 *
 * @module
 */

export * from "./lib/errors.ts";
export * from "./lib/codec/close.ts";
export * from "./lib/codec/frame.ts";
export * from "./lib/codec/mask.ts";
export * from "./lib/codec/utf8.ts";
export * from "./lib/codec/frame_parser.ts";
export * from "./lib/codec/frame_decoder_stream.ts";
export * from "./lib/codec/frame_encoder_stream.ts";
export * from "./lib/codec/assembler.ts";
export * from "./lib/codec/message.ts";
export * from "./lib/codec/message_decoder_stream.ts";
export * from "./lib/codec/message_encoder_stream.ts";
export { acceptKey, generateKey, WEBSOCKET_GUID } from "./lib/handshake/key.ts";
export {
  type ExtensionOffer,
  formatExtensions,
  parseExtensions,
} from "./lib/handshake/extensions.ts";
export {
  type ClientOffer,
  type HandshakeResult,
  validateServerResponse,
} from "./lib/handshake/client.ts";
export * from "./lib/handshake/server.ts";
export * from "./lib/handshake/http_error.ts";
export {
  type ByteDuplex,
  type HeartbeatOptions,
  type WebSocketCloseInfo,
  type WebSocketCloseOptions,
  WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./lib/net/connection.ts";
export * from "./lib/net/duplex.ts";
export { type AcceptOptions, acceptWebSocket } from "./lib/net/accept.ts";
export * from "./lib/net/serve.ts";
export * from "./lib/net/connect.ts";
export * from "./lib/net/upgrade.ts";
export * from "./lib/net/websocket_stream.ts";
export * from "./lib/deflate/negotiate.ts";
export { Deflater, Inflater } from "./lib/deflate/zlib.ts";
export * from "./lib/net/websocket.ts";
