/**
 * {@linkcode acceptWebSocket}: the server's side of the opening handshake on
 * a raw byte transport whose request head has been read.
 *
 * @module
 */

import { type ByteDuplex, toTransport, type Transport } from "./_transport.ts";
import {
  checkAllowedOrigins,
  checkConnectionOptions,
  checkDeflateChoice,
} from "../_options.ts";
import {
  TransportWebSocket,
  type WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./connection.ts";
import {
  acceptDeflate,
  type PerMessageDeflateOptions,
} from "../deflate/negotiate.ts";
import { formatExtensions } from "../handshake/extensions.ts";
import { errorResponse } from "../handshake/http_error.ts";
import {
  HandshakeRejection,
  type OriginOptions,
  serverResponseHead,
  validateUpgradeRequest,
} from "../handshake/server.ts";

/** Options for {@linkcode acceptWebSocket}. */
export interface AcceptOptions extends
  Omit<
    WebSocketConnectionOptions,
    "role" | "protocol" | "extensions" | "perMessageDeflate"
  >,
  OriginOptions {
  /**
   * The subprotocol to answer with. It must be one the client offered; a
   * function picks from the offered list (return `undefined` for none).
   *
   * @default {none}
   */
  protocol?: string | ((offered: string[]) => string | undefined);
  /**
   * Extra headers for the 101 response.
   *
   * @default {none}
   */
  headers?: HeadersInit;
  /**
   * Accept permessage-deflate (RFC 7692) when the client offers it: `true`
   * for the default policy, or a policy of your own. `false` declines every
   * offer.
   *
   * The default policy answers with `server_no_context_takeover` and
   * `client_no_context_takeover`: each message is compressed on its own and
   * the zlib streams go back to a shared pool between messages, so an idle
   * connection holds none. Measured at 1,000 idle connections
   * (`bench/deflate_memory.ts`): 53 KiB of server RSS each without deflate,
   * 59 KiB with this policy, 326 KiB with context takeover (zlib's 256 KiB
   * deflate state and 32 KiB window stay per connection). Pass
   * `{}` for context takeover: better ratios on small, similar messages, at
   * that memory cost.
   *
   * @default {true: no context takeover either way}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

const encoder = new TextEncoder();
// See AcceptOptions.perMessageDeflate for the measurement behind it.
const DEFAULT_POLICY = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};

/**
 * Completes the opening handshake on a transport whose request head has
 * been read (for example a `node:http` server's `"upgrade"` socket, through
 * `Duplex.toWeb`), and returns the connection.
 *
 * An invalid request is answered with 400 (or 426 with
 * `Sec-WebSocket-Version: 13` for another version, 403 for a browser
 * origin that `allowedOrigins` does not allow), the transport is closed,
 * and the {@linkcode HandshakeRejection} is thrown.
 *
 * @param transport A `Deno.Conn` or a `{ readable, writable }` byte pair.
 * @param request The upgrade request.
 * @param options The subprotocol, extra headers, `head` (the bytes read
 * past the request head) and the connection's limits.
 * @returns The open connection.
 * @throws {HandshakeRejection} For an invalid request.
 * @throws {RangeError | TypeError} For an option out of its range, or not
 * a number, before the transport is touched.
 *
 * @example Accept over an in-memory pipe
 * ```ts
 * import { acceptWebSocket } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const toServer = new TransformStream<Uint8Array, Uint8Array>();
 * const toClient = new TransformStream<Uint8Array, Uint8Array>();
 * const request = new Request("http://localhost/", {
 *   headers: {
 *     host: "localhost",
 *     upgrade: "websocket",
 *     connection: "Upgrade",
 *     "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
 *     "sec-websocket-version": "13",
 *   },
 * });
 * const reading = new Response(toClient.readable).body!.getReader().read();
 * const connection = await acceptWebSocket(
 *   { readable: toServer.readable, writable: toClient.writable },
 *   request,
 * );
 * const head = new TextDecoder().decode((await reading).value);
 * assertEquals(head.split("\r\n")[0], "HTTP/1.1 101 Switching Protocols");
 * assertEquals(connection.protocol, "");
 * ```
 */
export async function acceptWebSocket(
  transport: Deno.Conn | ByteDuplex,
  request: Request,
  options: AcceptOptions = {},
): Promise<WebSocketConnection> {
  checkConnectionOptions("accept WebSocket", options);
  checkDeflateChoice("accept WebSocket", options.perMessageDeflate);
  checkAllowedOrigins("accept WebSocket", options.allowedOrigins);
  return await acceptOn(toTransport(transport), request, options);
}

/** The same, on a transport already wrapped (serve() uses it). */
export async function acceptOn(
  transport: Transport,
  request: Request,
  options: AcceptOptions = {},
): Promise<WebSocketConnection> {
  let info;
  try {
    info = validateUpgradeRequest(request, options);
  } catch (error) {
    if (error instanceof HandshakeRejection) {
      await rejectOn(transport, error);
    }
    throw error;
  }
  const chosen = typeof options.protocol === "function"
    ? options.protocol(info.protocols)
    : options.protocol;
  if (
    chosen !== undefined && chosen !== "" && !info.protocols.includes(chosen)
  ) {
    const error = new HandshakeRejection(
      400,
      `Cannot upgrade: subprotocol "${chosen}" was not offered`,
    );
    await rejectOn(transport, error);
    throw error;
  }
  // RFC 6455 §9.1: the server answers with the extensions it accepts; the
  // only one we know is permessage-deflate.
  const policy = options.perMessageDeflate ?? true;
  const deflate = policy === false
    ? undefined
    : acceptDeflate(info.extensions, policy === true ? DEFAULT_POLICY : policy);
  const result = {
    protocol: chosen ?? "",
    extensions: deflate ? formatExtensions([deflate.response]) : "",
  };
  await transport.write(
    encoder.encode(
      await serverResponseHead(info.key, result, options.headers),
    ),
  );
  return new TransportWebSocket(transport as unknown as ByteDuplex, {
    ...options,
    role: "server",
    url: request.url,
    protocol: result.protocol,
    extensions: result.extensions,
    perMessageDeflate: deflate?.params,
  });
}

/** Answers a refused handshake and closes the transport. */
export async function rejectOn(
  transport: Transport,
  rejection: HandshakeRejection,
): Promise<void> {
  try {
    await transport.write(
      encoder.encode(
        errorResponse(rejection.status, rejection.message, rejection.headers),
      ),
    );
  } catch {
    // The peer is gone; nothing to tell it.
  } finally {
    transport.close();
  }
}
