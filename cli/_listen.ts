// `listen <port>`: an echo server, or a broadcast hub. It accepts on its own
// Deno.listen loop with the public acceptWebSocket, so that --trace can put
// its tap under a connection; without --trace each connection runs on its
// Deno.Conn directly.

import {
  acceptWebSocket,
  type WebSocketConnection,
  WebSocketError,
} from "../mod.ts";
// The `./handshake` entry point.
import {
  errorResponse,
  HandshakeRejection,
  isUpgradeRequest,
} from "../lib/handshake/mod.ts";
import type { ListenCommand } from "./_args.ts";
import { printError, reasonOf } from "./_io.ts";
import { FrameTracer, tapConn } from "./_trace.ts";

// The handshake's bounds, as the library's serve() has them.
const MAX_HEAD = 16 * 1024;
const HEAD_TIMEOUT = 10_000;
/**
 * A broadcast member this many bytes behind is closed with 1008 instead of
 * growing the server's memory for everyone.
 */
const MAX_BEHIND = 4 * 1024 * 1024;
const encoder = new TextEncoder();

/**
 * Runs `listen` until SIGINT or SIGTERM; resolves with the exit status.
 *
 * @param command The parsed command line.
 */
export async function runListen(command: ListenCommand): Promise<number> {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: command.hostname, port: command.port });
  } catch (error) {
    printError(
      `error: Cannot listen on ${command.hostname}:${command.port}: ${
        reasonOf(error)
      }`,
    );
    return 1;
  }
  const addr = listener.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  printError(
    `listening on ws://${host}:${addr.port}/${
      command.broadcast ? " (broadcast)" : " (echo)"
    }`,
  );

  const live = new Map<
    WebSocketConnection,
    WritableStreamDefaultWriter<string | Uint8Array> | undefined
  >();
  const tasks = new Set<Promise<void>>();
  let count = 0;

  const broadcast = (message: string | Uint8Array) => {
    for (const [member, writer] of live) {
      if (!writer) continue;
      if ((writer.desiredSize ?? 0) < -MAX_BEHIND) {
        member.close({ closeCode: 1008, reason: "Cannot keep up" });
        live.set(member, undefined);
        continue;
      }
      writer.write(message).catch(() => {});
    }
  };

  const handle = async (conn: Deno.TcpConn) => {
    const id = `#${++count}`;
    const remote = conn.remoteAddr as Deno.NetAddr;
    // Nagle's algorithm meeting delayed ACKs costs tens of ms per round trip.
    conn.setNoDelay(true);
    const sent = command.trace
      ? new FrameTracer(`${id} >`, "client", printError)
      : undefined;
    const received = command.trace
      ? new FrameTracer(`${id} <`, "server", printError)
      : undefined;
    let connection: WebSocketConnection;
    let target: string;
    try {
      const head = await readHead(conn, (chunk) => received?.push(chunk));
      if (!head) {
        conn.close();
        return;
      }
      target = head.request.url;
      if (!isUpgradeRequest(head.request)) {
        await reject(
          conn,
          new HandshakeRejection(
            426,
            "Cannot serve: this is a WebSocket server",
          ),
        );
        printError(`${id} refused ${remote.hostname}:${remote.port}: 426`);
        return;
      }
      connection = await acceptWebSocket(
        command.trace
          ? tapConn(
            conn,
            (chunk) => received!.push(chunk),
            (chunk) => sent!.push(chunk),
          )
          : conn,
        head.request,
        {
          head: head.rest,
          perMessageDeflate: command.deflate,
          protocol: (offered) =>
            command.protocol !== undefined &&
              offered.includes(command.protocol)
              ? command.protocol
              : undefined,
        },
      );
    } catch (error) {
      // acceptWebSocket has answered a HandshakeRejection and closed.
      if (!(error instanceof HandshakeRejection)) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      printError(
        `${id} refused ${remote.hostname}:${remote.port}: ${reasonOf(error)}`,
      );
      return;
    }
    const path = new URL(target).pathname;
    printError(
      `${id} connected from ${remote.hostname}:${remote.port} ${path}${
        connection.protocol ? ` protocol=${connection.protocol}` : ""
      }${connection.extensions ? ` extensions=${connection.extensions}` : ""}`,
    );
    if (command.broadcast) {
      live.set(connection, connection.writable.getWriter());
      try {
        for await (const message of connection.readable) broadcast(message);
      } catch {
        // Failed: `closed` says how.
      }
    } else {
      live.set(connection, undefined);
      await connection.readable.pipeTo(connection.writable).catch(() => {});
    }
    try {
      const info = await connection.closed;
      printError(
        `${id} closed: ${info.closeCode}${
          info.reason ? ` ${info.reason}` : ""
        }`,
      );
    } catch (error) {
      const code = error instanceof WebSocketError && error.closeCode !== null
        ? error.closeCode
        : 1006;
      printError(`${id} closed: ${code} ${reasonOf(error)}`);
    } finally {
      live.delete(connection);
    }
  };

  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  const onSignal = () => stop();
  // Windows has no SIGTERM (Deno throws on it): Ctrl-C alone stops there.
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        // Counted with the handshakes under way, so a burst cannot overshoot.
        if (tasks.size >= command.maxConnections) {
          const remote = conn.remoteAddr as Deno.NetAddr;
          printError(
            `#- refused ${remote.hostname}:${remote.port}: ${command.maxConnections} connections open`,
          );
          reject(
            conn,
            new HandshakeRejection(
              503,
              `Cannot upgrade: the server has ${command.maxConnections} connections open`,
              { "Retry-After": "1" },
            ),
          );
          continue;
        }
        const task = handle(conn).catch((error) =>
          printError(`error: ${reasonOf(error)}`)
        );
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch {
      // The listener closed under the loop.
    }
  })();

  await stopped;
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  listener.close();
  await accepting;
  // RFC 6455 §7.4.1: 1001, going away. Each close handshake is bounded by
  // the connection's closeTimeout (5 s).
  for (const member of live.keys()) {
    member.close({ closeCode: 1001, reason: "server shutting down" });
  }
  await Promise.all(tasks);
  printError("stopped");
  return 0;
}

/**
 * Reads the request head, at most 16 KiB for at most 10 s, showing each
 * chunk to `onBytes`. Resolves with the request and the bytes read past
 * its head, or `undefined` when the client leaves first.
 */
async function readHead(
  conn: Deno.Conn,
  onBytes: (chunk: Uint8Array) => void,
): Promise<{ request: Request; rest: Uint8Array } | undefined> {
  const buffer = new Uint8Array(MAX_HEAD);
  let filled = 0;
  const timer = setTimeout(() => conn.close(), HEAD_TIMEOUT);
  try {
    while (true) {
      if (filled === buffer.length) {
        throw new HandshakeRejection(
          431,
          "Cannot upgrade: the request head is over 16 KiB",
        );
      }
      let n: number | null;
      try {
        n = await conn.read(buffer.subarray(filled));
      } catch {
        return undefined; // Reset, or closed by the timer.
      }
      if (n === null) return undefined;
      onBytes(buffer.subarray(filled, filled + n));
      filled += n;
      const end = indexOfBlankLine(buffer.subarray(0, filled));
      if (end < 0) continue;
      const lines = new TextDecoder().decode(buffer.subarray(0, end)).split(
        "\r\n",
      );
      const [method, target, version] = lines[0]!.split(" ");
      if (version !== "HTTP/1.1" || !target?.startsWith("/")) {
        throw new HandshakeRejection(
          400,
          "Cannot upgrade: the request line is not HTTP/1.1",
        );
      }
      try {
        const headers = new Headers();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
        }
        const request = new Request(
          `http://${headers.get("host") ?? "localhost"}${target}`,
          { method, headers },
        );
        return { request, rest: buffer.slice(end + 4, filled) };
      } catch {
        throw new HandshakeRejection(
          400,
          "Cannot upgrade: the request head makes no request",
        );
      }
    }
  } catch (error) {
    if (error instanceof HandshakeRejection) await reject(conn, error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (
      bytes[i] === 0x0d && bytes[i + 1] === 0x0a && bytes[i + 2] === 0x0d &&
      bytes[i + 3] === 0x0a
    ) return i;
  }
  return -1;
}

async function reject(
  conn: Deno.Conn,
  rejection: HandshakeRejection,
): Promise<void> {
  try {
    const bytes = encoder.encode(
      errorResponse(rejection.status, rejection.message, rejection.headers),
    );
    let written = 0;
    while (written < bytes.length) {
      written += await conn.write(bytes.subarray(written));
    }
  } catch {
    // The client is gone.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
