/**
 * The server's side of the opening handshake (RFC 6455 §4.2): its checks of
 * the request, and the 101 response.
 *
 * @module
 */

import { acceptKey } from "./key.ts";
import type { HandshakeResult } from "./client.ts";
import {
  type ExtensionOffer,
  hasToken,
  parseExtensions,
} from "./extensions.ts";

/** A reason to refuse an upgrade request, with the HTTP answer to give. */
export class HandshakeRejection extends Error {
  /** The HTTP status: 400, 403, 426 or 431. */
  readonly status: number;
  /** Extra response headers, such as `Sec-WebSocket-Version: 13` on 426. */
  readonly headers: Record<string, string>;

  /**
   * Makes a rejection.
   *
   * @param status The HTTP status to answer with.
   * @param message What was wrong; it becomes the short response body.
   * @param headers Extra response headers.
   */
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HandshakeRejection";
    this.status = status;
    this.headers = headers;
  }
}

/** What a valid upgrade request carried. */
export interface UpgradeRequestInfo {
  /** The `Sec-WebSocket-Key`. */
  key: string;
  /** The subprotocols the client offered, in order. */
  protocols: string[];
  /** The extensions the client offered, parsed. */
  extensions: ExtensionOffer[];
}

/**
 * Tells whether a request asks for a WebSocket upgrade at all
 * (`Upgrade: websocket`), before it is validated.
 *
 * @param request The request.
 * @returns `true` when the client asks to upgrade to WebSocket.
 *
 * @example A plain GET is not an upgrade
 * ```ts
 * import { isUpgradeRequest } from "@seed/websocket-streams/handshake";
 * import { assertFalse } from "@std/assert";
 *
 * assertFalse(isUpgradeRequest(new Request("http://localhost/")));
 * ```
 */
export function isUpgradeRequest(request: Request): boolean {
  return hasToken(request.headers.get("upgrade"), "websocket");
}

/**
 * Checks a client's upgrade request (RFC 6455 §4.2.1): method GET, a Host,
 * `Upgrade: websocket`, a Connection header with the `upgrade` token, a key
 * that decodes to 16 bytes, and version 13.
 *
 * @param request The request (its HTTP version is checked by the reader).
 * @returns The key and the client's offers.
 * @throws {HandshakeRejection} 400 for a malformed request, 426 with
 * `Sec-WebSocket-Version: 13` for another version.
 *
 * @example Check a request
 * ```ts
 * import { validateUpgradeRequest } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * const request = new Request("http://localhost/chat", {
 *   headers: {
 *     host: "localhost",
 *     upgrade: "websocket",
 *     connection: "keep-alive, Upgrade",
 *     "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
 *     "sec-websocket-version": "13",
 *     "sec-websocket-protocol": "chat, superchat",
 *   },
 * });
 * assertEquals(validateUpgradeRequest(request).protocols, ["chat", "superchat"]);
 * ```
 */
export function validateUpgradeRequest(request: Request): UpgradeRequestInfo {
  const headers = request.headers;
  if (request.method !== "GET") {
    throw new HandshakeRejection(
      400,
      `Cannot upgrade: the method is ${request.method}, not GET`,
    );
  }
  if (!headers.get("host")) {
    throw new HandshakeRejection(
      400,
      "Cannot upgrade: the Host header is missing",
    );
  }
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    throw new HandshakeRejection(
      400,
      "Cannot upgrade: the Upgrade header does not name websocket",
    );
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    throw new HandshakeRejection(
      400,
      "Cannot upgrade: the Connection header lacks the upgrade token",
    );
  }
  const version = headers.get("sec-websocket-version");
  if (version?.trim() !== "13") {
    // RFC 6455 §4.4: answer with the versions we speak.
    throw new HandshakeRejection(
      426,
      `Cannot upgrade: Sec-WebSocket-Version is ${version}, not 13`,
      { "sec-websocket-version": "13" },
    );
  }
  const key = headers.get("sec-websocket-key")?.trim() ?? "";
  let decoded = 0;
  try {
    decoded = /^[A-Za-z0-9+/]{22}==$/.test(key) ? atob(key).length : 0;
  } catch {
    decoded = 0;
  }
  if (decoded !== 16) {
    throw new HandshakeRejection(
      400,
      "Cannot upgrade: Sec-WebSocket-Key does not decode to 16 bytes",
    );
  }
  const protocols = (headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((p) => p.trim()).filter((p) => p !== "");
  let extensions: ExtensionOffer[];
  try {
    extensions = parseExtensions(headers.get("sec-websocket-extensions") ?? "");
  } catch (error) {
    throw new HandshakeRejection(400, (error as Error).message);
  }
  return { key, protocols, extensions };
}

/**
 * Writes the server's `101 Switching Protocols` answer.
 *
 * @param key The client's key.
 * @param result The chosen subprotocol and extensions.
 * @param headers Extra response headers.
 * @returns The response head, ending with the blank line.
 *
 * @example The 101 of RFC 6455 §1.3
 * ```ts
 * import { serverResponseHead } from "@seed/websocket-streams/handshake";
 * import { assertStringIncludes } from "@std/assert";
 *
 * const head = await serverResponseHead("dGhlIHNhbXBsZSBub25jZQ==", { protocol: "", extensions: "" });
 * assertStringIncludes(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
 * ```
 */
export async function serverResponseHead(
  key: string,
  result: HandshakeResult,
  headers: HeadersInit = {},
): Promise<string> {
  const lines = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${await acceptKey(key)}`,
  ];
  if (result.protocol) lines.push(`Sec-WebSocket-Protocol: ${result.protocol}`);
  if (result.extensions) {
    lines.push(`Sec-WebSocket-Extensions: ${result.extensions}`);
  }
  for (const [name, value] of new Headers(headers)) {
    lines.push(`${name}: ${value}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}
