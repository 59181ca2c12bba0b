/**
 * A client that sends a few messages to an echo server and prints the
 * answers.
 *
 * `deno run -A examples/echo_client.ts ws://127.0.0.1:8080/`
 *
 * @module
 */

import { connect } from "../mod.ts";

/**
 * Sends `messages` and returns what came back, in order.
 *
 * @param url The echo server's URL.
 * @param messages What to send.
 * @param log Called with each line of the exchange.
 * @returns The echoes.
 */
export async function echoExchange(
  url: string,
  messages: (string | Uint8Array)[],
  log: (line: string) => void = console.log,
): Promise<(string | Uint8Array)[]> {
  const connection = await connect(url);
  log(
    `connected to ${url}` +
      (connection.extensions ? ` with ${connection.extensions}` : ""),
  );
  const writer = connection.writable.getWriter();
  const reader = connection.readable.getReader();
  const echoes: (string | Uint8Array)[] = [];
  for (const message of messages) {
    await writer.write(message);
    const { value } = await reader.read();
    echoes.push(value!);
    const shown = typeof value === "string"
      ? JSON.stringify(value)
      : `${value!.byteLength} bytes of binary`;
    const rtt = await connection.ping();
    log(`→ sent, ← echoed ${shown} (ping ${rtt.toFixed(2)} ms)`);
  }
  reader.releaseLock();
  writer.releaseLock();
  connection.close({ closeCode: 1000, reason: "done" });
  const { closeCode, reason } = await connection.closed;
  log(`closed cleanly: ${closeCode} "${reason}"`);
  return echoes;
}

if (import.meta.main) {
  await echoExchange(Deno.args[0] ?? "ws://127.0.0.1:8080/", [
    "hello",
    "κόσμε 😀",
    new Uint8Array(70_000),
  ]);
}
