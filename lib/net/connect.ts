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
import { checkConnectOptions, show } from "../_options.ts";
import {
  TransportWebSocket,
  type WebSocketConnection,
  type WebSocketConnectionOptions,
} from "./connection.ts";
import { WebSocketError, WebSocketHandshakeError } from "../errors.ts";
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
   * Subprotocols to offer, in order of preference: an array of tokens
   * (RFC 6455 §4.1), none twice; anything else is refused with a
   * `TypeError` before dialling.
   *
   * @default {none}
   */
  protocols?: string[];
  /**
   * Extra request headers (for example `Authorization` or `Origin`). A
   * `Host` replaces the URL's host in the request (not where it connects).
   * The headers the handshake writes itself (`Upgrade`, `Connection`,
   * `Sec-WebSocket-Key`/`-Version`/`-Accept`) and the offers set by
   * `protocols` and `perMessageDeflate` are refused with a `TypeError`.
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
   * Whether the URL's userinfo (`ws://user:pass@host/`) is sent: `"omit"`
   * never sends it (the browser's `WebSocket` sends it only to a server
   * that asks, after a 401; a client library that sent it unasked would
   * leak a password to whatever a URL points at), `"url"` sends it as
   * `Authorization: Basic` (RFC 7617), percent-decoded. An `Authorization`
   * in `headers` wins over it.
   *
   * @default {"omit"}
   */
  credentials?: "omit" | "url";
  /**
   * How many redirects (301, 302, 303, 307, 308 with a `Location`) to
   * follow, from 0 to 20. Each hop is a new handshake with its own
   * `handshakeTimeout`; one to another origin drops `Authorization`,
   * `Cookie` and the URL's credentials, and one from `wss:` to `ws:` is not
   * followed. Past the limit, the last 3xx rejects as a
   * {@linkcode WebSocketHandshakeError}.
   *
   * @default {0 (a 3xx rejects)}
   */
  maxRedirects?: number;
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
 * Security defaults: no redirect is followed unless `maxRedirects` allows
 * it (a 3xx answer rejects like any other status that is not 101, with its
 * `Location` in the error's `headers`), and the URL's userinfo is not sent
 * unless `credentials: "url"`; it never appears in an error message.
 *
 * @param url The server's URL, with path and query. IPv6 hosts go in
 * brackets: `ws://[::1]:8080/`.
 * @param options Subprotocols, headers, abort signal, timeouts, TLS CAs, a
 * custom `dial`, credentials, redirects, and the connection's limits.
 * @returns The open connection.
 * @throws {WebSocketError} Naming the URL, with the underlying error as
 * `cause`: `ERR_CONNECTION_REFUSED`, `ERR_DNS`, `ERR_TLS`,
 * `ERR_HANDSHAKE_TIMEOUT`, `ERR_ABORTED`, or `ERR_HANDSHAKE` (it says what
 * was wrong; a {@linkcode WebSocketHandshakeError} with `status`,
 * `statusText` and `headers` when the server answered other than 101). The
 * socket is closed.
 * @throws {TypeError} For a URL that is not `ws:` or `wss:`, or has a
 * fragment; `protocols` that are not distinct tokens in an array; a
 * header that the handshake writes itself.
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
  let target = new URL(url);
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
  const credentials = options.credentials ?? "omit";
  if (credentials !== "omit" && credentials !== "url") {
    throw new TypeError(
      `Cannot connect: credentials must be "omit" or "url", not ${
        JSON.stringify(credentials)
      }`,
    );
  }
  checkProtocols("connect", options.protocols);
  checkRequestHeaders("connect", options.headers);
  const maxRedirects = options.maxRedirects ?? 0;
  let hop = options;
  for (let redirects = 0;; redirects++) {
    try {
      return await connectOnce(target, hop);
    } catch (error) {
      const next = redirects < maxRedirects
        ? redirectTarget(error, target)
        : undefined;
      if (next === undefined) throw error;
      if (next.origin !== target.origin) {
        // As fetch does: credentials are for the origin they were given to.
        const headers = new Headers(hop.headers);
        for (const name of CREDENTIAL_HEADERS) headers.delete(name);
        // A Host given for the first origin is not the new one's.
        headers.delete("host");
        hop = { ...hop, headers, credentials: "omit" };
      }
      target = next;
    }
  }
}

// The headers the handshake writes itself (RFC 6455 §4.1), and the option
// that sets each instead. A second copy would make the request invalid
// (RFC 7230 §3.2.2 allows no repeated singleton headers) or, for the
// protocol and extension offers, contradict what the client then checks.
const HANDSHAKE_HEADERS: Record<string, string> = {
  "upgrade": "the handshake sets it",
  "connection": "the handshake sets it",
  "sec-websocket-key": "the handshake sets it",
  "sec-websocket-version": "the handshake sets it",
  "sec-websocket-accept": "the server sends it",
  "sec-websocket-protocol": "pass the offers in protocols",
  "sec-websocket-extensions": "set compression with perMessageDeflate",
};

/**
 * Refuses, with a `TypeError`, a header in `headers` that the handshake
 * writes itself. WebSocket and WebSocketStream run it in their constructors.
 *
 * @param action What the caller does ("connect", "create WebSocket").
 * @param init The `headers` option.
 */
export function checkRequestHeaders(
  action: string,
  init: HeadersInit | undefined,
): void {
  if (init === undefined) return;
  new Headers(init).forEach((_, name) => {
    const instead = HANDSHAKE_HEADERS[name];
    if (instead !== undefined) {
      throw new TypeError(
        `Cannot ${action}: header ${
          JSON.stringify(name)
        } is not one to pass in headers; ${instead}`,
      );
    }
  });
}

// RFC 7230 §3.2.6's token: the Sec-WebSocket-Protocol grammar (RFC 6455
// §4.1), which keeps CR, LF and separators out of the request head.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The one check of subprotocol offers, for connect(), WebSocket and
 * WebSocketStream: an array of strings, each a token, none twice (compared
 * ignoring case, as the WebSockets Standard does).
 *
 * @param action What the caller does ("connect", "create WebSocket").
 * @param protocols The offers.
 * @param syntaxError Throw the standard's `SyntaxError` `DOMException` for a
 * name that is not a token or comes twice, instead of a `TypeError`.
 * @throws {TypeError} For a value that is not an array of strings, or (by
 * default) a name that is not a token or comes twice.
 */
export function checkProtocols(
  action: string,
  protocols: unknown,
  syntaxError = false,
): void {
  if (protocols === undefined) return;
  if (!Array.isArray(protocols)) {
    throw new TypeError(
      `Cannot ${action}: protocols must be an array of strings, not ${
        show(protocols)
      }`,
    );
  }
  const fail = (message: string) =>
    syntaxError
      ? new DOMException(`Cannot ${action}: ${message}`, "SyntaxError")
      : new TypeError(`Cannot ${action}: ${message}`);
  const seen = new Set<string>();
  for (const protocol of protocols) {
    if (typeof protocol !== "string") {
      throw new TypeError(
        `Cannot ${action}: protocols must be an array of strings, not one holding ${
          show(protocol)
        }`,
      );
    }
    if (!TOKEN.test(protocol)) {
      throw fail(`the protocol ${JSON.stringify(protocol)} is not a token`);
    }
    const key = protocol.toLowerCase();
    if (seen.has(key)) {
      throw fail(`the protocol ${JSON.stringify(protocol)} is offered twice`);
    }
    seen.add(key);
  }
}

// One handshake, no redirects: connect() after its checks.
async function connectOnce(
  target: URL,
  options: ConnectOptions,
): Promise<WebSocketConnection> {
  const credentials = options.credentials ?? "omit";
  const where = displayUrl(target);
  const secure = target.protocol === "wss:";
  const timeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  const signal = options.signal;
  signal?.throwIfAborted();

  let transport: Transport | undefined;
  let abort: (() => void) | undefined;
  // The abort's or the timeout's error, once either has fired.
  let stopped: WebSocketError | undefined;
  const aborted = new Promise<never>((_, reject) => {
    abort = () => {
      transport?.close();
      reject(
        stopped ??= new WebSocketError(`Cannot connect to ${where}: aborted`, {
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
        stopped ??= new WebSocketError(
          `Cannot connect to ${where}: no answer within ${timeout} ms`,
          { code: "ERR_HANDSHAKE_TIMEOUT" },
        ),
      );
    }, timeout);
  });
  expired.catch(() => {});

  try {
    const opening = openTransport(target, secure, options).catch((error) => {
      throw dialError(error, where, secure);
    });
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
    if (
      credentials === "url" && (target.username || target.password) &&
      !headers.has("authorization")
    ) {
      headers.set("authorization", basicAuthorization(target));
    }
    // A Host in headers replaces the URL's (a virtual host reached by
    // address); it goes out once either way.
    const host = headers.get("host") ?? target.host;
    headers.delete("host");
    const lines = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      `Host: ${host}`,
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
    const status = Number(head.start[1]);
    if (status !== 101) {
      const location = head.headers.get("location");
      throw new WebSocketHandshakeError(
        `Cannot connect to ${where}: the server answered ${status}${
          head.start[2] ? ` ${head.start[2]}` : ""
        }, not 101${
          location !== null && status >= 300 && status < 400
            ? ` (a redirect to ${location}; maxRedirects allows following it)`
            : ""
        }`,
        { status, statusText: head.start[2] ?? "", headers: head.headers },
      );
    }
    const result = await validateServerResponse(
      status,
      head.headers,
      { key, protocols, extensions: deflate ? [PERMESSAGE_DEFLATE] : [] },
    );
    // The accept key's digest is asynchronous: an abort or the timeout
    // meanwhile has closed the transport, so it fails the attempt too.
    // Checked after the digest rather than raced with it, so that no
    // digest is left running once connect() has settled.
    if (stopped) throw stopped;
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
    throw withUrl(error, where);
  } finally {
    clearTimeout(timer);
    if (abort) signal?.removeEventListener("abort", abort);
  }
}

// RFC 9110 §15.4: the redirects whose Location names the resource again.
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization"];

/**
 * Where a refused handshake redirects to, if it is one to follow: a 3xx
 * with a Location that makes a `ws:`/`wss:` URL (`http(s):` mapped), never
 * from `wss:` down to `ws:`.
 */
function redirectTarget(error: unknown, from: URL): URL | undefined {
  if (
    !(error instanceof WebSocketHandshakeError) ||
    !REDIRECT_STATUSES.includes(error.status)
  ) {
    return undefined;
  }
  const location = error.headers.get("location");
  if (location === null || !URL.canParse(location, from)) return undefined;
  const next = new URL(location, from);
  if (next.protocol === "http:") next.protocol = "ws:";
  if (next.protocol === "https:") next.protocol = "wss:";
  if (next.protocol !== "ws:" && next.protocol !== "wss:") return undefined;
  if (from.protocol === "wss:" && next.protocol === "ws:") return undefined;
  next.hash = "";
  return next;
}

// The URL as messages show it: never with its userinfo, which may hold a
// password.
function displayUrl(url: URL): string {
  if (url.username === "" && url.password === "") return url.href;
  const copy = new URL(url);
  copy.username = "";
  copy.password = "";
  return copy.href;
}

// RFC 7617 §2: base64 of "user:password" in UTF-8; the URL keeps them
// percent-encoded.
function basicAuthorization(url: URL): string {
  const pair = `${decodeURIComponent(url.username)}:${
    decodeURIComponent(url.password)
  }`;
  const bytes = encoder.encode(pair);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

// Every failure of connect() names the URL it was connecting to.
function withUrl(error: unknown, where: string): unknown {
  if (
    !(error instanceof WebSocketError) ||
    error instanceof WebSocketHandshakeError || error.message.includes(where)
  ) {
    return error;
  }
  const renamed = new WebSocketError(
    error.message.replace(/^Cannot [^:]*:/, `Cannot connect to ${where}:`),
    { code: error.code, cause: error.cause },
  );
  return renamed;
}

// Deno reports a failed DNS lookup as a plain Error (getaddrinfo's text);
// these are its wordings on Linux, macOS and Windows.
const DNS_FAILURE =
  /failed to lookup address|name or service not known|nodename nor servname|no such host|temporary failure in name resolution/i;

/** Turns what dialing threw into an error that says what to check. */
function dialError(error: unknown, where: string, secure: boolean): unknown {
  if (error instanceof WebSocketError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new WebSocketError(
      `Cannot connect to ${where}: the connection was refused (is a server listening there?)`,
      { code: "ERR_CONNECTION_REFUSED", cause: error },
    );
  }
  if (DNS_FAILURE.test(message)) {
    return new WebSocketError(
      `Cannot connect to ${where}: the host name did not resolve (${message})`,
      { code: "ERR_DNS", cause: error },
    );
  }
  if (secure && error instanceof TlsFailure) {
    return new WebSocketError(
      `Cannot connect to ${where}: the TLS handshake failed (${error.message}); for a private CA, pass its certificate in caCerts`,
      { code: "ERR_TLS", cause: error.cause },
    );
  }
  return error;
}

// Marks an error of the TLS handshake itself, as opposed to the TCP
// connect under it.
class TlsFailure extends Error {}

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
    const conn = await Deno.connectTls({
      hostname,
      port,
      caCerts: options.caCerts,
    });
    // Deno runs the TLS handshake on the first read or write; run it now, so
    // that a certificate the client does not trust fails here, as ERR_TLS.
    try {
      await conn.handshake();
    } catch (error) {
      conn.close();
      throw new TlsFailure(
        error instanceof Error ? error.message : String(error),
        { cause: error },
      );
    }
    return conn;
  }
  const conn = await Deno.connect({ hostname, port });
  conn.setNoDelay(true);
  return conn;
}
