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
export * from "./lib/close.ts";
export * from "./lib/frame.ts";
export * from "./lib/mask.ts";
export * from "./lib/utf8.ts";
export * from "./lib/frame_parser.ts";
export * from "./lib/frame_decoder_stream.ts";
export * from "./lib/frame_encoder_stream.ts";
export * from "./lib/assembler.ts";
export * from "./lib/message.ts";
export * from "./lib/message_decoder_stream.ts";
export * from "./lib/message_encoder_stream.ts";
export * from "./lib/handshake.ts";
export * from "./lib/connection.ts";
export * from "./lib/duplex.ts";
export { type AcceptOptions, acceptWebSocket } from "./lib/accept.ts";
export * from "./lib/serve.ts";
export * from "./lib/dial.ts";
export * from "./lib/upgrade.ts";
export * from "./lib/websocket_stream.ts";
export * from "./lib/deflate.ts";
