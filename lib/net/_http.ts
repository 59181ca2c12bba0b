// A bounded reader of an HTTP/1.1 head (request or status line, headers),
// for the opening handshake on raw sockets. Bounded in size (against huge
// headers) and in time (against slowloris); bytes after the blank line
// belong to the first WebSocket frames and are handed back, not lost.

import { WebSocketError } from "../errors.ts";
import { HandshakeRejection } from "../handshake/server.ts";
import { isConnectionGone, type Transport } from "./_transport.ts";

/** The default limit on the size of a handshake head: 16 KiB. */
export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
/** The default handshake timeout: 10 s. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

export interface HttpHead {
  /** The first line's three parts. */
  start: [string, string, string];
  headers: Headers;
  /** Bytes read past the head. */
  rest: Uint8Array;
  /**
   * Every byte read: the head and `rest` (a view, not a copy), for a
   * server that hands the request to an HTTP implementation as it came.
   */
  bytes: Uint8Array;
}

const latin1 = new TextDecoder("latin1");

/**
 * Reads one HTTP head. Throws HandshakeRejection (431 or 400) for a head
 * over `maxSize` or a malformed one, WebSocketError ERR_HANDSHAKE_TIMEOUT
 * after `timeout` ms, and ERR_HANDSHAKE when the peer closes first.
 */
export async function readHttpHead(
  transport: Transport,
  maxSize: number,
  timeout: number,
): Promise<HttpHead> {
  // Most heads are a few hundred bytes: start small and grow to maxSize, so
  // that each handshake does not churn a 16 KiB allocation.
  let buffer = new Uint8Array(Math.min(1024, maxSize));
  let fill = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new WebSocketError(
          `Cannot open WebSocket: the handshake took longer than ${timeout} ms`,
          { code: "ERR_HANDSHAKE_TIMEOUT" },
        ),
      );
    }, timeout);
  });
  try {
    while (true) {
      if (fill === maxSize) {
        throw new HandshakeRejection(
          431,
          `Cannot upgrade: the request head exceeds ${maxSize} bytes`,
        );
      }
      if (fill === buffer.length) {
        const grown = new Uint8Array(Math.min(buffer.length * 2, maxSize));
        grown.set(buffer);
        buffer = grown;
      }
      const n = await Promise.race([
        transport.read(buffer.subarray(fill)).catch((error) => {
          // A reset peer is a peer that closed.
          if (isConnectionGone(error)) return null;
          throw error;
        }),
        expired,
      ]);
      if (n === null) {
        throw new WebSocketError(
          "Cannot open WebSocket: the peer closed the connection during the handshake",
          { code: "ERR_HANDSHAKE" },
        );
      }
      const from = Math.max(0, fill - 3);
      fill += n;
      const end = indexOfBlankLine(buffer, from, fill);
      if (end >= 0) {
        return parseHead(
          latin1.decode(buffer.subarray(0, end)),
          buffer.slice(end + 4, fill),
          buffer.subarray(0, fill),
        );
      }
    }
  } finally {
    clearTimeout(timer);
    expired.catch(() => {});
  }
}

function indexOfBlankLine(bytes: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) return i;
  }
  return -1;
}

function parseHead(
  text: string,
  rest: Uint8Array,
  bytes: Uint8Array,
): HttpHead {
  const lines = text.split("\r\n");
  const first = lines[0] ?? "";
  const a = first.indexOf(" ");
  // A status line may have no reason phrase: "HTTP/1.1 101".
  const b = first.indexOf(" ", a + 1) < 0
    ? first.length
    : first.indexOf(" ", a + 1);
  if (a < 0) {
    throw new HandshakeRejection(
      400,
      `Cannot upgrade: malformed start line "${first}"`,
    );
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new HandshakeRejection(
        400,
        `Cannot upgrade: malformed header line "${line}"`,
      );
    }
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      throw new HandshakeRejection(
        400,
        `Cannot upgrade: invalid header "${line}"`,
      );
    }
  }
  return {
    start: [first.slice(0, a), first.slice(a + 1, b), first.slice(b + 1)],
    headers,
    rest,
    bytes,
  };
}
