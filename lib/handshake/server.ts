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

/** The origin policy of a server's handshake. */
export interface OriginOptions {
  /**
   * Browser origins allowed to open a WebSocket besides the server's own
   * (an `Origin` whose host and port are the request's `Host`), such as
   * `"https://app.example.com"`; `"*"` allows every origin, `"null"` the
   * opaque origin of sandboxed frames and `file:` pages. A request without
   * `Origin` (not a browser) is always allowed. A refused request gets
   * `403 Forbidden` before any WebSocket state is made.
   *
   * @default {[] (same host only)}
   */
  allowedOrigins?: readonly string[];
}

// An origin as the browser serializes it (RFC 6454 §6.1): lower-case scheme
// and host, the default port left out. "*" and "null" stay as they are.
function normalOrigin(value: string): string | undefined {
  const text = value.trim();
  if (text === "*" || text === "null") return text;
  try {
    const url = new URL(text);
    return url.origin === "null" ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

const DEFAULT_PORTS: Record<string, string> = {
  "http:": "80",
  "https:": "443",
  "ws:": "80",
  "wss:": "443",
};

/**
 * Refuses a cross-site WebSocket hijacking attempt (CSWSH). The WebSocket
 * handshake is not bound by the same-origin policy: a page on any site can
 * open a socket to this server, and the browser sends the user's cookies
 * with it. A browser always sends `Origin` on a WebSocket handshake (RFC
 * 6455 §4.1, item 8) and no page can forge it, so the server compares it:
 *
 * - no `Origin`: allowed (not a browser, so no one else's cookies);
 * - an `Origin` whose host and port are the request's `Host`: allowed;
 * - an `Origin` in `allowedOrigins`, or `"*"` there: allowed;
 * - anything else, `Origin: null` included: `403 Forbidden`.
 *
 * This is gorilla/websocket's default (`CheckOrigin` nil compares the
 * Origin's host with the request's Host), where ws, `Deno.upgradeWebSocket`
 * and Bun check nothing unless asked.
 *
 * Its limits:
 * - The same-host rule compares host and port, not the scheme: a page
 *   served over plain `http://` on the same host and port (or on the
 *   scheme's default port, when `Host` names none) passes for a `wss://`
 *   endpoint. List exact origins in `allowedOrigins` where that matters.
 * - `Host` is the client's word. Under DNS rebinding a hostile name
 *   resolves to your server (often one on `localhost` or a private
 *   address): the page's `Origin` and the request's `Host` then name the
 *   same host, and the check passes. A server that is not meant to be
 *   reached by any name should also check `Host` against the names it
 *   serves (in `onUpgrade`).
 * - A client that is not a browser sends whatever `Origin` it likes, or
 *   none: this stops other sites' pages, not other programs.
 *
 * @param request The upgrade request.
 * @param allowedOrigins The origins allowed besides the request's own host.
 * @throws {HandshakeRejection} 403 for an origin that is not allowed.
 *
 * @example A page of another site is refused
 * ```ts
 * import {
 *   checkOrigin,
 *   HandshakeRejection,
 * } from "@seed/websocket-streams/handshake";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const request = (origin: string) =>
 *   new Request("http://chat.example/", {
 *     headers: { host: "chat.example", origin },
 *   });
 * checkOrigin(request("http://chat.example")); // the same host
 * checkOrigin(request("https://app.example"), ["https://app.example"]);
 * const error = assertThrows(
 *   () => checkOrigin(request("https://evil.example")),
 *   HandshakeRejection,
 * );
 * assertEquals(error.status, 403);
 * ```
 */
export function checkOrigin(
  request: Request,
  allowedOrigins: readonly string[] = [],
): void {
  const origin = request.headers.get("origin");
  if (origin === null) return;
  if (allowedOrigins.includes("*")) return;
  const normal = normalOrigin(origin);
  if (normal !== undefined && normal !== "null") {
    // The Host header names host[:port]; the port defaults to the one of
    // the Origin's scheme (a TLS proxy may have changed the request's).
    const url = new URL(normal);
    const port = url.port || DEFAULT_PORTS[url.protocol] || "";
    const host = request.headers.get("host") ?? "";
    try {
      const own = new URL(`http://${host}`).hostname;
      const ownPort = /:(\d+)$/.exec(host)?.[1] ?? DEFAULT_PORTS[url.protocol];
      if (own === url.hostname && Number(ownPort) === Number(port)) return;
    } catch {
      // A Host that makes no URL matches no origin.
    }
  }
  for (const entry of allowedOrigins) {
    if (normal !== undefined && normalOrigin(entry) === normal) return;
  }
  throw new HandshakeRejection(
    403,
    `Cannot upgrade: the origin ${origin} is not allowed (see allowedOrigins)`,
  );
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
 * that decodes to 16 bytes, and version 13; then its `Origin` (see
 * {@linkcode checkOrigin}).
 *
 * @param request The request (its HTTP version is checked by the reader).
 * @param options The origins allowed besides the request's own host.
 * @returns The key and the client's offers.
 * @throws {HandshakeRejection} 400 for a malformed request, 426 with
 * `Sec-WebSocket-Version: 13` for another version, 403 for an origin that
 * is not allowed.
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
export function validateUpgradeRequest(
  request: Request,
  options: OriginOptions = {},
): UpgradeRequestInfo {
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
  // After the checks above: a malformed request is a 400 whatever its
  // Origin says.
  checkOrigin(request, options.allowedOrigins);
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
