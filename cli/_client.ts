// `connect <url>`: stdin lines become messages and messages become stdout
// lines, through Web Streams end to end, so that a slow stdout slows the
// socket's reads (backpressure) instead of filling memory.

import { connect, type WebSocketConnection, WebSocketError } from "../mod.ts";
import type { ConnectCommand } from "./_args.ts";
import {
  LineStream,
  messageJson,
  messageText,
  printError,
  reasonOf,
} from "./_io.ts";
import { FrameTracer, tapConn } from "./_trace.ts";

/** Exit status: closed with 1000, 1001 or 1005. */
export const EXIT_OK = 0;
/** Exit status: cannot connect, or another runtime error. */
export const EXIT_ERROR = 1;
/** Exit status: bad usage. */
export const EXIT_USAGE = 2;
/** Exit status: closed with another code, or abnormally. */
export const EXIT_CLOSED = 3;

// Close codes that mean the conversation ended as planned (RFC 6455 §7.4.1):
// normal, going away, and no code at all.
const NORMAL_CODES = new Set([1000, 1001, 1005]);
const encoder = new TextEncoder();

/**
 * Runs `connect`; resolves with the exit status.
 *
 * @param command The parsed command line.
 */
export async function runConnect(command: ConnectCommand): Promise<number> {
  const interactive = Deno.stdin.isTerminal();
  const target = command.url.href;
  const dial = command.trace
    ? async (url: URL) => {
      const conn = await dialTcp(url);
      const sent = new FrameTracer(">", "server", printError);
      const received = new FrameTracer("<", "client", printError);
      return tapConn(
        conn,
        (chunk) => received.push(chunk),
        (chunk) => sent.push(chunk),
      );
    }
    : undefined;

  let connection: WebSocketConnection;
  try {
    connection = await connect(command.url, {
      headers: command.headers,
      protocols: command.protocols,
      perMessageDeflate: command.deflate,
      heartbeat: command.ping === undefined ? undefined : {
        interval: Math.max(1, Math.round(command.ping * 1000)),
        timeout: Math.max(1, Math.round(command.pingTimeout * 1000)),
      },
      dial,
    });
  } catch (error) {
    // connect()'s errors name the URL and say what to check; others get
    // the same shape here.
    const message = error instanceof Error ? error.message : "";
    printError(
      message.startsWith("Cannot connect to ")
        ? `error: ${message.split("\n")[0]}`
        : `error: Cannot connect to ${target}: ${reasonOf(error)}`,
    );
    return EXIT_ERROR;
  }

  if (interactive) {
    const settled = [
      connection.protocol && `protocol: ${connection.protocol}`,
      connection.extensions && `extensions: ${connection.extensions}`,
    ].filter(Boolean).join(", ");
    printError(
      `connected to ${target}${
        settled ? ` (${settled})` : ""
      }; Ctrl-D or Ctrl-C closes`,
    );
  }

  // Messages → stdout. Interactive: each arrives on its own line marked
  // "< ", and the prompt comes back after it.
  const format = command.json ? messageJson : messageText;
  const output = connection.readable
    .pipeThrough(
      new TransformStream<string | Uint8Array, string>({
        start(controller) {
          if (interactive) controller.enqueue("> ");
        },
        transform(message, controller) {
          controller.enqueue(
            interactive
              ? `\r\x1b[K< ${format(message)}\n> `
              : `${format(message)}\n`,
          );
        },
      }),
    )
    .pipeThrough(new TextEncoderStream())
    .pipeTo(Deno.stdout.writable, { preventClose: true, preventAbort: true })
    .catch(() => {
      // The connection failed: `closed` says how.
    });

  // stdin lines → messages. At the end of stdin, the lines sent, close
  // with 1000; the close handshake is bounded by the connection's
  // closeTimeout (5 s).
  let inputError = false;
  const input = Deno.stdin.readable
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new LineStream())
    .pipeThrough(
      new TransformStream<string, string | Uint8Array>({
        transform(line, controller) {
          controller.enqueue(command.binary ? encoder.encode(line) : line);
          if (interactive) Deno.stdout.writeSync(encoder.encode("> "));
        },
      }),
    )
    // Not aborted on a stdin error: we close, with 1000, below.
    .pipeTo(connection.writable, { preventClose: true, preventAbort: true })
    .then(
      () => connection.close({ closeCode: 1000 }),
      (error) => {
        // A writable refused because the connection ended is not news;
        // stdin that cannot be read or split is: exit 1 after the close.
        if (!(error instanceof WebSocketError || error instanceof TypeError)) {
          inputError = true;
          printError(`error: ${error?.message ?? error}`);
          connection.close({ closeCode: 1000 });
        }
      },
    );
  input.catch(() => {});

  let interrupted = 0;
  const onInterrupt = () => {
    // The first Ctrl-C closes cleanly; the second leaves at once.
    if (interrupted++ > 0) Deno.exit(130);
    connection.close({ closeCode: 1000 });
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const info = await connection.closed;
    await output;
    const line = `closed: ${info.closeCode}${
      info.reason ? ` ${info.reason}` : ""
    }`;
    if (NORMAL_CODES.has(info.closeCode)) {
      if (interactive) printError(`\r\x1b[K${line}`);
      return inputError ? EXIT_ERROR : EXIT_OK;
    }
    printError(line);
    return EXIT_CLOSED;
  } catch (error) {
    await output;
    const code = error instanceof WebSocketError && error.closeCode !== null
      ? error.closeCode
      : 1006;
    printError(`closed: ${code} ${reasonOf(error)}`);
    return EXIT_CLOSED;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

async function dialTcp(url: URL): Promise<Deno.Conn> {
  // URL keeps IPv6 literals in brackets; Deno.connect wants them bare.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (url.protocol === "wss:") {
    return await Deno.connectTls({
      hostname,
      port: url.port ? Number(url.port) : 443,
    });
  }
  const conn = await Deno.connect({
    hostname,
    port: url.port ? Number(url.port) : 80,
  });
  conn.setNoDelay(true);
  return conn;
}
