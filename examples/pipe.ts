/**
 * stdin lines → WebSocket → stdout, as one pipeline of streams: each line
 * typed is a text message, and each message received is a line printed.
 *
 * `deno run -A examples/pipe.ts [ws://host:port/path]`
 *
 * With no URL it starts an echo server on 127.0.0.1 and talks to it. When
 * stdin ends it waits for the peer to go quiet (`--linger` ms, 300 by
 * default) so that answers in flight are printed, then closes with 1000.
 *
 * @module
 */

import { TextLineStream } from "@std/streams";
import { connect, type WebSocketConnection } from "../mod.ts";
import { startEchoServer } from "./echo_server.ts";

/**
 * Pipes `input` lines to the connection and its messages to `output`, one
 * line each (binary messages are shown by size).
 *
 * @param connection An open connection.
 * @param input Bytes of text, split into lines.
 * @param output Where the received lines go.
 * @param linger Milliseconds of quiet to wait for after `input` ends.
 * @returns The close code and reason.
 */
export async function pipeLines(
  connection: WebSocketConnection,
  input: ReadableStream<Uint8Array>,
  output: WritableStream<Uint8Array>,
  linger = 300,
): Promise<{ closeCode: number; reason: string }> {
  let lastHeard = performance.now();
  const receiving = connection.readable
    .pipeThrough(
      new TransformStream<string | Uint8Array, string>({
        transform(message, controller) {
          lastHeard = performance.now();
          controller.enqueue(
            typeof message === "string"
              ? `${message}\n`
              : `<${message.byteLength} bytes of binary>\n`,
          );
        },
      }),
    )
    .pipeThrough(new TextEncoderStream())
    .pipeTo(output, { preventClose: true });

  await input
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new TextLineStream())
    // Keep the connection open when stdin ends: answers may be in flight.
    .pipeTo(connection.writable, { preventClose: true });

  // Wait for `linger` ms without a message (at most 10 s), then close.
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    const quiet = performance.now() - lastHeard;
    if (quiet >= linger) break;
    await new Promise((resolve) => setTimeout(resolve, linger - quiet));
  }
  connection.close({ closeCode: 1000, reason: "stdin ended" });
  await receiving.catch(() => {});
  return await connection.closed;
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--linger");
  const linger = i >= 0 ? Number(Deno.args[i + 1]) : 300;
  const url = Deno.args.find((arg) => /^(ws|wss|http|https):/.test(arg));
  const server = url ? undefined : startEchoServer(0, "127.0.0.1", () => {});
  const target = url ?? `ws://127.0.0.1:${server!.addr.port}/`;
  const connection = await connect(target);
  console.error(`connected to ${target}; type lines, end with Ctrl-D`);
  const { closeCode, reason } = await pipeLines(
    connection,
    Deno.stdin.readable,
    Deno.stdout.writable,
    linger,
  );
  console.error(`closed: ${closeCode} "${reason}"`);
  await server?.shutdown();
}
