/**
 * The client's side of the opening handshake (RFC 6455 §4.1): its checks of
 * the server's response.
 *
 * @module
 */

import { acceptKey } from "./key.ts";
import { handshakeError, hasToken, parseExtensions } from "./extensions.ts";

/** What the client offered, for checking the server's answer. */
export interface ClientOffer {
  /** The `Sec-WebSocket-Key` sent. */
  key: string;
  /** The subprotocols offered. */
  protocols: string[];
  /** The extension names offered. */
  extensions: string[];
}

/** What a successful handshake settled. */
export interface HandshakeResult {
  /** The chosen subprotocol, or `""`. */
  protocol: string;
  /** The negotiated `Sec-WebSocket-Extensions` value, or `""`. */
  extensions: string;
}

/**
 * Checks the server's answer to the opening handshake (RFC 6455 §4.1): a
 * 101 status, `Upgrade: websocket` and `Connection: Upgrade` (tokens matched
 * case-insensitively in comma lists), the right `Sec-WebSocket-Accept`, a
 * subprotocol that was offered, and extensions that were offered.
 *
 * @param status The response status.
 * @param headers The response headers.
 * @param offer What the client sent.
 * @returns The chosen subprotocol and extensions.
 * @throws {WebSocketError} `ERR_HANDSHAKE`, saying what was wrong.
 *
 * @example Check a response
 * ```ts
 * import { validateServerResponse } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * const headers = new Headers({
 *   upgrade: "websocket",
 *   connection: "Upgrade",
 *   "sec-websocket-accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * });
 * const result = await validateServerResponse(101, headers, {
 *   key: "dGhlIHNhbXBsZSBub25jZQ==",
 *   protocols: [],
 *   extensions: [],
 * });
 * assertEquals(result, { protocol: "", extensions: "" });
 * ```
 */
export async function validateServerResponse(
  status: number,
  headers: Headers,
  offer: ClientOffer,
): Promise<HandshakeResult> {
  if (status !== 101) {
    throw handshakeError(
      `Cannot open WebSocket: the server answered ${status}, not 101`,
    );
  }
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    throw handshakeError(
      `Cannot open WebSocket: the Upgrade header is "${
        headers.get("upgrade")
      }", not websocket`,
    );
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    throw handshakeError(
      `Cannot open WebSocket: the Connection header is "${
        headers.get("connection")
      }", without upgrade`,
    );
  }
  const accept = headers.get("sec-websocket-accept");
  if (accept !== await acceptKey(offer.key)) {
    throw handshakeError(
      `Cannot open WebSocket: Sec-WebSocket-Accept "${accept}" does not match the key`,
    );
  }
  const protocol = headers.get("sec-websocket-protocol") ?? "";
  if (protocol !== "" && !offer.protocols.includes(protocol)) {
    throw handshakeError(
      `Cannot open WebSocket: the server chose subprotocol "${protocol}", which was not offered`,
    );
  }
  const extensions = headers.get("sec-websocket-extensions") ?? "";
  for (const { name } of parseExtensions(extensions)) {
    if (!offer.extensions.includes(name)) {
      throw handshakeError(
        `Cannot open WebSocket: the server chose extension "${name}", which was not offered`,
      );
    }
  }
  return { protocol, extensions };
}
