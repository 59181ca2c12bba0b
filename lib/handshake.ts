/**
 * The opening handshake (RFC 6455 §4): the client's request and the
 * server's checks of it, the server's 101 response and the client's checks
 * of that, and the `Sec-WebSocket-Extensions` grammar of §9.1.
 *
 * @module
 */

import { WebSocketError } from "./errors.ts";

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const encoder = new TextEncoder();

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * Makes a `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
 *
 * @returns The key.
 *
 * @example A key is 24 characters of base64
 * ```ts
 * import { generateKey } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(generateKey().length, 24);
 * ```
 */
export function generateKey(): string {
  return base64(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Computes `Sec-WebSocket-Accept` for a key: base64 of the SHA-1 of the key
 * and the GUID (RFC 6455 §4.2.2).
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The accept value.
 *
 * @example The example of RFC 6455 §1.3
 * ```ts
 * import { acceptKey } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="),
 *   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * );
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + WEBSOCKET_GUID),
  );
  return base64(new Uint8Array(digest));
}

/** One extension offer or response: a name and its parameters. */
export interface ExtensionOffer {
  /** The extension token, for example `permessage-deflate`. */
  name: string;
  /** Its parameters; a parameter with no value maps to `true`. */
  params: Record<string, string | true>;
  /**
   * Parameter names that appeared more than once (the first value is kept).
   * The §9.1 grammar allows it; an extension's own rules decide (RFC 7692
   * §7 declines such an offer). Absent when there are none.
   */
  duplicates?: string[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function handshakeError(message: string): WebSocketError {
  return new WebSocketError("ERR_HANDSHAKE", message);
}

/**
 * Parses a `Sec-WebSocket-Extensions` value per the grammar of RFC 6455
 * §9.1: comma-separated extensions, each a token with `;`-separated
 * parameters, each a token with an optional value that is a token or a
 * quoted string.
 *
 * @param value The header value (several header lines joined with `,`).
 * @returns The offers, in order.
 * @throws {WebSocketError} `ERR_HANDSHAKE` for a value that breaks the
 * grammar.
 *
 * @example Two offers of permessage-deflate
 * ```ts
 * import { parseExtensions } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   parseExtensions('permessage-deflate; client_max_window_bits="10", permessage-deflate'),
 *   [
 *     { name: "permessage-deflate", params: { client_max_window_bits: "10" } },
 *     { name: "permessage-deflate", params: {} },
 *   ],
 * );
 * ```
 */
export function parseExtensions(value: string): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const token = (what: string): string => {
    skipSpace();
    const start = i;
    while (i < n && TOKEN.test(value[i]!)) i++;
    if (i === start) {
      throw handshakeError(
        `Cannot parse Sec-WebSocket-Extensions: expected ${what} at ${start} in "${value}"`,
      );
    }
    return value.slice(start, i);
  };
  skipSpace();
  if (i === n) return offers;
  while (true) {
    const offer: ExtensionOffer = {
      name: token("an extension name"),
      params: {},
    };
    skipSpace();
    while (value[i] === ";") {
      i++;
      const name = token("a parameter name");
      let param: string | true = true;
      skipSpace();
      if (value[i] === "=") {
        i++;
        skipSpace();
        if (value[i] === '"') {
          // RFC 6455 §9.1: a quoted value must still be a valid token after
          // unescaping.
          i++;
          let text = "";
          while (i < n && value[i] !== '"') {
            if (value[i] === "\\") i++;
            text += value[i] ?? "";
            i++;
          }
          if (value[i] !== '"' || !TOKEN.test(text)) {
            throw handshakeError(
              `Cannot parse Sec-WebSocket-Extensions: bad quoted value for ${name}`,
            );
          }
          i++;
          param = text;
        } else {
          param = token(`a value for ${name}`);
        }
      }
      if (Object.hasOwn(offer.params, name)) {
        (offer.duplicates ??= []).push(name);
      } else {
        offer.params[name] = param;
      }
      skipSpace();
    }
    offers.push(offer);
    if (i === n) return offers;
    if (value[i] !== ",") {
      throw handshakeError(
        `Cannot parse Sec-WebSocket-Extensions: unexpected "${
          value[i]
        }" at ${i}`,
      );
    }
    i++;
  }
}

/**
 * Formats extension offers as a `Sec-WebSocket-Extensions` value.
 *
 * @param offers The offers.
 * @returns The header value.
 *
 * @example Format an offer
 * ```ts
 * import { formatExtensions } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   formatExtensions([{ name: "permessage-deflate", params: { client_max_window_bits: true } }]),
 *   "permessage-deflate; client_max_window_bits",
 * );
 * ```
 */
export function formatExtensions(offers: ExtensionOffer[]): string {
  return offers.map(({ name, params }) =>
    [
      name,
      ...Object.entries(params).map(([key, value]) =>
        value === true ? key : `${key}=${value}`
      ),
    ].join("; ")
  ).join(", ");
}

/** Whether a comma-separated header value contains `token`, case-insensitively. */
function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

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
 * import { validateServerResponse } from "@seed/websocket-streams";
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
 * import { isUpgradeRequest } from "@seed/websocket-streams";
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
 * import { validateUpgradeRequest } from "@seed/websocket-streams";
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
 * import { serverResponseHead } from "@seed/websocket-streams";
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

/**
 * Writes a short plain-text HTTP error answer, which closes the connection.
 *
 * @param status The status.
 * @param body A short body.
 * @param headers Extra headers.
 * @returns The whole response.
 *
 * @example A 426
 * ```ts
 * import { errorResponse } from "@seed/websocket-streams";
 * import { assert } from "@std/assert";
 *
 * assert(errorResponse(426, "Upgrade Required").startsWith("HTTP/1.1 426 "));
 * ```
 */
export function errorResponse(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): string {
  const text = STATUS_TEXT[status] ?? "Error";
  const bytes = encoder.encode(body + "\n");
  const lines = [
    `HTTP/1.1 ${status} ${text}`,
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${bytes.length}`,
    "Connection: close",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return lines.join("\r\n") + "\r\n\r\n" + body + "\n";
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};
