/**
 * The codec: RFC 6455's frames and messages as pure functions, state
 * machines and Web Streams, with no I/O and no timers.
 *
 * Bytes become frames ({@linkcode FrameDecoderStream}, {@linkcode FrameParser},
 * {@linkcode decodeFrame}) and frames become messages
 * ({@linkcode MessageDecoderStream}, {@linkcode MessageAssembler}); the
 * encoders go the other way. These are the parts the connections of the main
 * entry point run on, for code that carries frames itself: a proxy, a
 * fuzzer, a frame dump, a test peer.
 *
 * @example Round-trip messages through the codec streams
 * ```ts
 * import {
 *   FrameDecoderStream,
 *   FrameEncoderStream,
 *   MessageDecoderStream,
 *   MessageEncoderStream,
 * } from "@seed/websocket-streams/codec";
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

export {
  ERROR_CODES,
  WebSocketError,
  type WebSocketErrorCode,
  type WebSocketErrorInit,
} from "../errors.ts";
export {
  assertSendableFrame,
  decodeFrame,
  type DecodeFrameResult,
  encodedHeaderLength,
  encodeFrame,
  type Frame,
  type FrameHeader,
  frameHeaderLength,
  type FrameHeaderOptions,
  isControlOpcode,
  Opcode,
  parseFrameHeader,
  type Role,
  writeFrameHeader,
} from "./frame.ts";
export {
  type FrameCallback,
  FrameParser,
  type FrameParserOptions,
} from "./frame_parser.ts";
export {
  type DecodedFrame,
  FrameDecoderStream,
  type FrameDecoderStreamOptions,
} from "./frame_decoder_stream.ts";
export {
  FrameEncoderStream,
  type FrameEncoderStreamOptions,
} from "./frame_encoder_stream.ts";
export {
  MessageAssembler,
  type MessageAssemblerOptions,
  type MessageFrameHeader,
  type MessageHandler,
  type MessageLimits,
} from "./assembler.ts";
export {
  controlMessage,
  encodeMessage,
  type EncodeMessageOptions,
  type MessageData,
  messagePayload,
  type WebSocketMessage,
} from "./message.ts";
export {
  type InflateOptions,
  MessageDecoderStream,
  type MessageDecoderStreamOptions,
} from "./message_decoder_stream.ts";
export {
  MessageEncoderStream,
  type MessageEncoderStreamOptions,
} from "./message_encoder_stream.ts";
export { mask } from "./mask.ts";
export { isValidUtf8, Utf8Validator } from "./utf8.ts";
export {
  CloseCode,
  type CloseInfo,
  decodeCloseBody,
  encodeCloseBody,
  isValidCloseCode,
} from "./close.ts";
