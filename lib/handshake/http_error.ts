/**
 * Raw HTTP/1.1 error responses, for a server that answers on a socket of
 * its own before (or instead of) the upgrade.
 *
 * @module
 */

const encoder = new TextEncoder();

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
 * import { errorResponse } from "@seed/websocket-streams/handshake";
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

// RFC 9110 §15's reason phrases, for the statuses a refusal may carry.
const STATUS_TEXT: Record<number, string> = {
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  511: "Network Authentication Required",
};
