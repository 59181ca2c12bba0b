/**
 * The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1), and the token
 * lists of the handshake's headers.
 *
 * @module
 */

import { WebSocketError } from "../errors.ts";

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

export function handshakeError(message: string): WebSocketError {
  return new WebSocketError(message, { code: "ERR_HANDSHAKE" });
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
 * import { parseExtensions } from "@seed/websocket-streams/handshake";
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
 * import { formatExtensions } from "@seed/websocket-streams/handshake";
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
export function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}
