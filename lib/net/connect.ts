/**
 * {@linkcode connect}: the client side, on `Deno.connect` /
 * `Deno.connectTls` or any byte pair.
 *
 * @module
 */

import {
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_MAX_HEADER_SIZE,
  readHttpHead,
} from "./_http.ts";
import { type ByteDuplex, toTransport, type Transport } from "./_transport.ts";
import { checkConnectOptions } from "../_options.ts";
import {
  TransportWebSocket,
  type WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./connection.ts";
import { WebSocketError } from "../errors.ts";
import {
  deflateOffers,
  PERMESSAGE_DEFLATE,
  type PerMessageDeflateOptions,
  validateDeflateResponse,
} from "../deflate/negotiate.ts";
import { formatExtensions, parseExtensions } from "../handshake/extensions.ts";
import { generateKey } from "../handshake/key.ts";
import { validateServerResponse } from "../handshake/client.ts";
import { HandshakeRejection } from "../handshake/server.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends
  Omit<
    WebSocketConnectionOptions,
    "role" | "protocol" | "extensions" | "head" | "perMessageDeflate"
  > {
  /**
   * Offer permessage-deflate (RFC 7692): `true` for the default offer
   * (`client_max_window_bits`, as browsers send), an offer, or several in
   * order of preference. `false` offers nothing.
   *
   * @default {true}
   */
  perMessageDeflate?:
    | boolean
    | PerMessageDeflateOptions
    | PerMessageDeflateOptions[];
  /**
   * Subprotocols to offer, in order of preference.
   *
   * @default {none}
   */
  protocols?: string[];
  /**
   * Extra request headers (for example `Authorization` or `Origin`).
   *
   * @default {none}
   */
  headers?: HeadersInit;
  /** Aborting it while connecting fails the attempt with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /**
   * Milliseconds for the TCP connect and the handshake together, from 1 to
   * 2147483647 (2^31 - 1, the longest timer).
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * The largest response head accepted, in bytes: a positive integer.
   *
   * @default {16384 (16 KiB)}
   */
  maxHeaderSize?: number;
  /**
   * Extra PEM CA certificates for `wss://` (for example a test CA).
   *
   * @default {the system's}
   */
  caCerts?: string[];
  /**
   * Opens the byte transport instead of `Deno.connect`, for other runtimes
   * or tunnels.
   *
   * @default {Deno.connect / Deno.connectTls}
   */
  dial?: (url: URL) => Promise<Deno.Conn | ByteDuplex>;
}

const encoder = new TextEncoder();

/**
 * Opens a WebSocket connection to `url` (`ws://` or `wss://`; `http(s)://`
 * are accepted as aliases). It connects TCP (or TLS) with Nagle's algorithm
 * off, sends the handshake request, checks the response (RFC 6455 §4.1),
 * and returns the open connection.
 *
 * @param url The server's URL, with path and query. IPv6 hosts go in
 * brackets: `ws://[::1]:8080/`.
 * @param options Subprotocols, headers, abort signal, timeouts, TLS CAs, a
 * custom `dial`, and the connection's limits.
 * @returns The open connection.
 * @throws {WebSocketError} `ERR_HANDSHAKE` (it says what was wrong),
 * `ERR_HANDSHAKE_TIMEOUT` or `ERR_ABORTED`; the socket is closed.
 * @throws {TypeError} For a URL that is not `ws:` or `wss:`, or has a
 * fragment.
 * @throws {RangeError | TypeError} For an option out of its range, or not
 * a number, before anything is dialed.
 *
 * @example Connect to a server on this machine
 * ```ts
 * import { connect, serve } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (connection) => {
 *   connection.close({ closeCode: 4000, reason: "bye" });
 * });
 * const client = await connect(`ws://127.0.0.1:${server.addr.port}/path?x=1`);
 * assertEquals(await client.closed, { closeCode: 4000, reason: "bye" });
 * await server.shutdown();
 * ```
 */
export async function connect(
  url: string | URL,
  options: ConnectOptions = {},
): Promise<WebSocketConnection> {
  const target = new URL(url);
  if (target.protocol === "http:") target.protocol = "ws:";
  if (target.protocol === "https:") target.protocol = "wss:";
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(
      `Cannot connect: the scheme ${target.protocol} is not ws: or wss:`,
    );
  }
  if (target.hash !== "") {
    throw new TypeError("Cannot connect: a WebSocket URL has no fragment");
  }
  checkConnectOptions("connect", options);
  const secure = target.protocol === "wss:";
  const timeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  const signal = options.signal;
  signal?.throwIfAborted();

  let transport: Transport | undefined;
  let abort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    abort = () => {
      transport?.close();
      reject(
        new WebSocketError("Cannot connect: aborted", {
          code: "ERR_ABORTED",
          cause: signal?.reason,
        }),
      );
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
  aborted.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      transport?.close();
      reject(
        new WebSocketError(`Cannot connect: no answer within ${timeout} ms`, {
          code: "ERR_HANDSHAKE_TIMEOUT",
        }),
      );
    }, timeout);
  });
  expired.catch(() => {});

  try {
    const opening = openTransport(target, secure, options);
    const raw = await Promise.race([opening, aborted, expired]).catch(
      (error) => {
        // The connect may still complete after the race is lost.
        opening.then((late) => toTransport(late).close(), () => {});
        throw error;
      },
    );
    transport = toTransport(raw);

    const key = generateKey();
    const protocols = options.protocols ?? [];
    const headers = new Headers(options.headers);
    const lines = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      `Host: ${target.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
    ];
    if (protocols.length > 0) {
      lines.push(`Sec-WebSocket-Protocol: ${protocols.join(", ")}`);
    }
    const deflateOption = options.perMessageDeflate ?? true;
    const deflate = deflateOption === false
      ? undefined
      : deflateOption === true
      ? {}
      : deflateOption;
    if (deflate) {
      lines.push(
        `Sec-WebSocket-Extensions: ${formatExtensions(deflateOffers(deflate))}`,
      );
    }
    headers.delete("sec-websocket-extensions");
    headers.forEach((value, name) => lines.push(`${name}: ${value}`));
    await Promise.race([
      transport.write(encoder.encode(lines.join("\r\n") + "\r\n\r\n")),
      aborted,
      expired,
    ]);

    let head;
    try {
      head = await Promise.race([
        readHttpHead(
          transport,
          options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
          timeout,
        ),
        aborted,
        expired,
      ]);
    } catch (error) {
      if (error instanceof HandshakeRejection) {
        throw new WebSocketError(
          error.message.replace("Cannot upgrade", "Cannot connect"),
          { code: "ERR_HANDSHAKE" },
        );
      }
      throw error;
    }
    const result = await validateServerResponse(
      Number(head.start[1]),
      head.headers,
      { key, protocols, extensions: deflate ? [PERMESSAGE_DEFLATE] : [] },
    );
    const accepted = parseExtensions(result.extensions);
    const negotiated = accepted.length > 0
      ? validateDeflateResponse(accepted, deflate!)
      : undefined;
    return new TransportWebSocket(transport as unknown as ByteDuplex, {
      ...options,
      role: "client",
      url: target.href,
      protocol: result.protocol,
      extensions: result.extensions,
      head: head.rest,
      perMessageDeflate: negotiated,
    });
  } catch (error) {
    transport?.close();
    throw error;
  } finally {
    clearTimeout(timer);
    if (abort) signal?.removeEventListener("abort", abort);
  }
}

async function openTransport(
  url: URL,
  secure: boolean,
  options: ConnectOptions,
): Promise<Deno.Conn | ByteDuplex> {
  if (options.dial) return await options.dial(url);
  // URL keeps IPv6 literals in brackets; Deno.connect wants them bare.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  if (secure) {
    return await Deno.connectTls({ hostname, port, caCerts: options.caCerts });
  }
  const conn = await Deno.connect({ hostname, port });
  conn.setNoDelay(true);
  return conn;
}
