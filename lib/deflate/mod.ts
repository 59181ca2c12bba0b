/**
 * permessage-deflate (RFC 7692) on its own: the negotiation of its
 * parameters, with no I/O, and the bounded zlib engines the connections use.
 *
 * `connect()`, `serve()` and `acceptWebSocket()` of the main entry point
 * negotiate and run it by themselves; this entry point is for code that does
 * the handshake itself and hands the outcome to a `WebSocketDuplex`
 * (`perMessageDeflate: acceptDeflate(...)`), or that compresses frames of
 * its own.
 *
 * @example Negotiate, then compress and inflate one message
 * ```ts
 * import {
 *   acceptDeflate,
 *   Deflater,
 *   deflateOffers,
 *   Inflater,
 * } from "@seed/websocket-streams/deflate";
 * import { assertEquals } from "@std/assert";
 *
 * // The server takes the client's default offer, without context takeover.
 * const accepted = acceptDeflate(deflateOffers({}), {
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: true,
 * });
 * assertEquals(accepted?.params.serverNoContextTakeover, true);
 *
 * const deflater = new Deflater(15, true, 6, 8);
 * const inflater = new Inflater(15, true);
 * const text = new TextEncoder().encode("hello ".repeat(100));
 * const compressed = await deflater.deflate(text);
 * assertEquals(await inflater.inflateMessage(1, compressed, 1 << 20), "hello ".repeat(100));
 * deflater.close();
 * inflater.close();
 * ```
 *
 * @module
 */

export {
  acceptDeflate,
  deflateOffers,
  type DeflateParams,
  type NegotiatedDeflate,
  PERMESSAGE_DEFLATE,
  type PerMessageDeflateOptions,
  validateDeflateResponse,
} from "./negotiate.ts";
export { Deflater, Inflater } from "./zlib.ts";
export type { ExtensionOffer } from "../handshake/extensions.ts";
