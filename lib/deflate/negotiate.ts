/**
 * permessage-deflate (RFC 7692): the negotiation of its four parameters,
 * with no I/O. The engine that compresses is in `zlib.ts`.
 *
 * @module
 */

import { WebSocketError } from "../errors.ts";
import type { ExtensionOffer } from "../handshake/extensions.ts";
import { checkDeflateOptions } from "../_options.ts";

/** The extension's token. */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * How to offer (client) or accept (server) permessage-deflate.
 *
 * On a client each field is what is asked for; on a server it is the
 * server's policy, applied to whatever the client offers.
 */
export interface PerMessageDeflateOptions {
  /**
   * Client: ask the server to reset its compression context after each
   * message. Server: always reset ours (saves memory, costs ratio).
   *
   * @default {false}
   */
  serverNoContextTakeover?: boolean;
  /**
   * Client: promise to reset ours after each message. Server: require the
   * client to reset its context.
   *
   * @default {false}
   */
  clientNoContextTakeover?: boolean;
  /**
   * Client: ask the server to use at most 2^n bytes of window (8–15).
   * Server: use at most this, even if the client allows more.
   *
   * @default {15 (not sent)}
   */
  serverMaxWindowBits?: number;
  /**
   * Client: `true` sends a bare `client_max_window_bits` (the server may
   * then pick our window); a number promises at most 2^n bytes; `false`
   * leaves it out. Server: ask the client for at most 2^n bytes; an offer
   * that does not allow it is declined.
   *
   * @default {client: true; server: none (the client's choice)}
   */
  clientMaxWindowBits?: number | boolean;
  /**
   * Messages smaller than this many bytes are sent uncompressed. Measured
   * by `bench/deflate_throughput.ts`: JSON under 128 bytes grows when deflated
   * alone; 128–512 bytes save 23–61%, but each zlib call costs 9–13 µs,
   * about as much CPU as echoing a small message uncompressed. From 1 KiB a
   * call saves 700 bytes or more for 15 µs. So 1024, as ws chose. A
   * non-negative integer; `Infinity` sends nothing compressed (received
   * messages are still inflated).
   *
   * @default {1024}
   */
  threshold?: number;
  /**
   * The zlib compression level, 0–9.
   *
   * @default {6}
   */
  level?: number;
  /**
   * The zlib memory level, 1–9: lower uses less memory per deflater.
   *
   * @default {8}
   */
  memLevel?: number;
}

/** The outcome of the negotiation: what each side does. */
export interface DeflateParams {
  /** The server resets its deflate context after each message. */
  serverNoContextTakeover: boolean;
  /** The client resets its deflate context after each message. */
  clientNoContextTakeover: boolean;
  /** The server's deflate window, in bits (8–15). */
  serverMaxWindowBits: number;
  /** The client's deflate window, in bits (8–15). */
  clientMaxWindowBits: number;
}

/** Negotiated parameters plus the local engine settings a connection uses. */
export interface NegotiatedDeflate extends DeflateParams {
  /** See {@linkcode PerMessageDeflateOptions.threshold}. */
  threshold: number;
  /** See {@linkcode PerMessageDeflateOptions.level}. */
  level: number;
  /** See {@linkcode PerMessageDeflateOptions.memLevel}. */
  memLevel: number;
}

const DEFAULT_THRESHOLD = 1024;
const DEFAULT_LEVEL = 6;
const DEFAULT_MEM_LEVEL = 8;
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;
const KNOWN = new Set([
  "server_no_context_takeover",
  "client_no_context_takeover",
  "server_max_window_bits",
  "client_max_window_bits",
]);

function engineSettings(options: PerMessageDeflateOptions) {
  checkDeflateOptions("configure permessage-deflate", options);
  return {
    threshold: options.threshold ?? DEFAULT_THRESHOLD,
    level: options.level ?? DEFAULT_LEVEL,
    memLevel: options.memLevel ?? DEFAULT_MEM_LEVEL,
  };
}

/**
 * The client's offers, in order of preference (RFC 7692 §5).
 *
 * @param options One offer, or several in order of preference.
 * @default {one offer with a bare client_max_window_bits}
 * @returns The offers, ready for `formatExtensions`.
 * @throws {RangeError | TypeError} For an option out of its range (window
 * bits outside 8–15, a level outside 0–9), or not a number.
 *
 * @example The default offer
 * ```ts
 * import { deflateOffers } from "@seed/websocket-streams/deflate";
 * import { formatExtensions } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   formatExtensions(deflateOffers({})),
 *   "permessage-deflate; client_max_window_bits",
 * );
 * ```
 */
export function deflateOffers(
  options: PerMessageDeflateOptions | PerMessageDeflateOptions[],
): ExtensionOffer[] {
  const list = Array.isArray(options) ? options : [options];
  return list.map((option) => {
    engineSettings(option);
    const params: Record<string, string | true> = {};
    if (option.serverNoContextTakeover) {
      params.server_no_context_takeover = true;
    }
    if (option.clientNoContextTakeover) {
      params.client_no_context_takeover = true;
    }
    if (option.serverMaxWindowBits !== undefined) {
      params.server_max_window_bits = String(option.serverMaxWindowBits);
    }
    const client = option.clientMaxWindowBits ?? true;
    if (client !== false) {
      params.client_max_window_bits = client === true ? true : String(client);
    }
    return { name: PERMESSAGE_DEFLATE, params };
  });
}

/** An offer's parameters once checked; undefined for an invalid offer. */
interface CheckedParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | undefined;
  clientMaxWindowBits: number | true | undefined;
}

/** Why a parameter list is invalid (RFC 7692 §7), or the checked values. */
function checkParams(
  offer: ExtensionOffer,
  inResponse: boolean,
): CheckedParams | string {
  if (offer.duplicates?.length) {
    return `parameter ${offer.duplicates[0]} appears twice`;
  }
  for (const name of Object.keys(offer.params)) {
    if (!KNOWN.has(name)) return `unknown parameter ${name}`;
  }
  const p = offer.params;
  for (
    const name of ["server_no_context_takeover", "client_no_context_takeover"]
  ) {
    if (p[name] !== undefined && p[name] !== true) {
      return `${name} takes no value`;
    }
  }
  const server = p.server_max_window_bits;
  if (server !== undefined && (server === true || !WINDOW_BITS.test(server))) {
    return `server_max_window_bits must be 8 to 15, not ${server}`;
  }
  const client = p.client_max_window_bits;
  if (
    client !== undefined &&
    (client === true ? inResponse : !WINDOW_BITS.test(client))
  ) {
    return `client_max_window_bits must be 8 to 15, not ${client}`;
  }
  return {
    serverNoContextTakeover: p.server_no_context_takeover === true,
    clientNoContextTakeover: p.client_no_context_takeover === true,
    serverMaxWindowBits: server === undefined ? undefined : Number(server),
    clientMaxWindowBits: client === undefined
      ? undefined
      : client === true
      ? true
      : Number(client),
  };
}

/**
 * The server's choice (RFC 7692 §5, §7.1): the first acceptable offer under
 * the server's policy. Invalid offers (unknown or repeated parameters, values
 * out of range) and offers the policy cannot meet are declined, and when
 * none is left the connection goes on without compression.
 *
 * @param offers The client's extension offers (others than
 * permessage-deflate are skipped).
 * @param policy The server's policy.
 * @returns The response element and the negotiated settings, or
 * `undefined` to decline.
 * @throws {RangeError | TypeError} For a policy with an option out of its
 * range (window bits outside 8–15, a level outside 0–9), or not a number.
 *
 * @example Accept Chromium's offer
 * ```ts
 * import { acceptDeflate } from "@seed/websocket-streams/deflate";
 * import { parseExtensions } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * const offers = parseExtensions("permessage-deflate; client_max_window_bits");
 * const accepted = acceptDeflate(offers, { clientMaxWindowBits: 12 });
 * assertEquals(accepted?.response.params, { client_max_window_bits: "12" });
 * assertEquals(accepted?.params.clientMaxWindowBits, 12);
 * ```
 */
export function acceptDeflate(
  offers: ExtensionOffer[],
  policy: PerMessageDeflateOptions,
): { response: ExtensionOffer; params: NegotiatedDeflate } | undefined {
  const engine = engineSettings(policy);
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const checked = checkParams(offer, false);
    if (typeof checked === "string") continue;
    const params: Record<string, string | true> = {};
    const serverNoContextTakeover = checked.serverNoContextTakeover ||
      policy.serverNoContextTakeover === true;
    const clientNoContextTakeover = checked.clientNoContextTakeover ||
      policy.clientNoContextTakeover === true;
    if (serverNoContextTakeover) params.server_no_context_takeover = true;
    if (clientNoContextTakeover) params.client_no_context_takeover = true;

    // §7.1.2.1: a requested server window is accepted by answering with it
    // or less; without a request the server may still announce a smaller one.
    let serverBits = 15;
    if (checked.serverMaxWindowBits !== undefined) {
      serverBits = Math.min(
        checked.serverMaxWindowBits,
        policy.serverMaxWindowBits ?? 15,
      );
      params.server_max_window_bits = String(serverBits);
    } else if (policy.serverMaxWindowBits !== undefined) {
      serverBits = policy.serverMaxWindowBits;
      params.server_max_window_bits = String(serverBits);
    }

    // §7.1.2.2: the server may limit the client's window only if the offer
    // has client_max_window_bits.
    const wanted = typeof policy.clientMaxWindowBits === "number"
      ? policy.clientMaxWindowBits
      : undefined;
    let clientBits = 15;
    if (checked.clientMaxWindowBits === undefined) {
      if (typeof wanted === "number") continue; // cannot meet the policy
    } else {
      const offered = checked.clientMaxWindowBits === true
        ? 15
        : checked.clientMaxWindowBits;
      clientBits = typeof wanted === "number"
        ? Math.min(wanted, offered)
        : offered;
      if (typeof wanted === "number" || checked.clientMaxWindowBits !== true) {
        params.client_max_window_bits = String(clientBits);
      }
    }
    return {
      response: { name: PERMESSAGE_DEFLATE, params },
      params: {
        serverNoContextTakeover,
        clientNoContextTakeover,
        serverMaxWindowBits: serverBits,
        clientMaxWindowBits: clientBits,
        ...engine,
      },
    };
  }
  return undefined;
}

function responseError(reason: string): WebSocketError {
  return new WebSocketError(
    `Cannot open WebSocket: the server's permessage-deflate response is invalid: ${reason}`,
    { code: "ERR_HANDSHAKE" },
  );
}

/**
 * Checks the server's permessage-deflate response against what was offered
 * (RFC 7692 §7.1): unknown or repeated parameters, values out of range, a
 * `client_max_window_bits` that was not offered or is larger than offered,
 * a `server_max_window_bits` larger than asked, or a requested parameter the
 * server left out all fail the handshake.
 *
 * @param response The server's extension elements for permessage-deflate.
 * @param options The options the offers were made from.
 * @returns The negotiated settings.
 * @throws {WebSocketError} `ERR_HANDSHAKE`, saying what was wrong.
 *
 * @example A response that limits our window
 * ```ts
 * import { validateDeflateResponse } from "@seed/websocket-streams/deflate";
 * import { parseExtensions } from "@seed/websocket-streams/handshake";
 * import { assertEquals } from "@std/assert";
 *
 * const params = validateDeflateResponse(
 *   parseExtensions("permessage-deflate; client_max_window_bits=10"),
 *   {},
 * );
 * assertEquals(params.clientMaxWindowBits, 10);
 * assertEquals(params.serverMaxWindowBits, 15);
 * ```
 */
export function validateDeflateResponse(
  response: ExtensionOffer[],
  options: PerMessageDeflateOptions | PerMessageDeflateOptions[],
): NegotiatedDeflate {
  if (response.length !== 1) {
    throw responseError(
      `it names permessage-deflate ${response.length} times`,
    );
  }
  const checked = checkParams(response[0]!, true);
  if (typeof checked === "string") throw responseError(checked);
  const list = Array.isArray(options) ? options : [options];
  let why = "";
  for (const option of list) {
    const engine = engineSettings(option);
    const offeredClient = option.clientMaxWindowBits ?? true;
    if (checked.clientMaxWindowBits !== undefined) {
      const bits = checked.clientMaxWindowBits as number;
      // §7.1.2.2: only an offer with client_max_window_bits may be answered
      // with it.
      if (offeredClient === false) {
        why = "client_max_window_bits was not offered";
        continue;
      }
      if (offeredClient !== true && bits > offeredClient) {
        why =
          `client_max_window_bits=${bits} is over the offered ${offeredClient}`;
        continue;
      }
    }
    if (option.serverMaxWindowBits !== undefined) {
      if (checked.serverMaxWindowBits === undefined) {
        why = "server_max_window_bits was asked for and not answered";
        continue;
      }
      if (checked.serverMaxWindowBits > option.serverMaxWindowBits) {
        why =
          `server_max_window_bits=${checked.serverMaxWindowBits} is over the asked ${option.serverMaxWindowBits}`;
        continue;
      }
    }
    if (option.serverNoContextTakeover && !checked.serverNoContextTakeover) {
      why = "server_no_context_takeover was asked for and not answered";
      continue;
    }
    return {
      serverNoContextTakeover: checked.serverNoContextTakeover,
      clientNoContextTakeover: checked.clientNoContextTakeover ||
        option.clientNoContextTakeover === true,
      serverMaxWindowBits: checked.serverMaxWindowBits ?? 15,
      clientMaxWindowBits:
        (checked.clientMaxWindowBits as number | undefined) ??
          (typeof offeredClient === "number" ? offeredClient : 15),
      ...engine,
    };
  }
  throw responseError(why);
}
