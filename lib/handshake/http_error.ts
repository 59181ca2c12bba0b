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
