/**
 * The command line: a WebSocket client and server for the terminal and for
 * scripts, after `wscat` and `websocat`, on this package's own connection.
 *
 * ```sh
 * deno run -A jsr:@seed/websocket-streams/cli connect ws://127.0.0.1:8080/
 * echo hello | deno run -A jsr:@seed/websocket-streams/cli connect ws://127.0.0.1:8080/ --json
 * deno run -A jsr:@seed/websocket-streams/cli listen 8080 --broadcast
 * deno run -A jsr:@seed/websocket-streams/cli --help
 * ```
 *
 * `connect <url>` is interactive on a terminal; otherwise stdin lines become
 * messages and messages become stdout lines. `--trace` prints the handshake
 * and every frame's header to stderr. Exit status: 0 after a close with
 * 1000, 1001 or 1005; 1 when it cannot connect; 2 for bad usage; 3 after a
 * close with any other code or an abnormal end.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { parseArgs, SYNOPSIS, USAGE, UsageError } from "./cli/_args.ts";
import { EXIT_USAGE, runConnect } from "./cli/_client.ts";
import { printError } from "./cli/_io.ts";
import { runListen } from "./cli/_listen.ts";

async function main(args: string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printError(
      `error: ${error.message}\n${SYNOPSIS}\nRun with --help for the options.`,
    );
    return EXIT_USAGE;
  }
  switch (command.command) {
    case "help":
      console.log(USAGE);
      return 0;
    case "version":
      console.log(`${denoJson.name} ${denoJson.version}`);
      return 0;
    case "connect":
      return await runConnect(command);
    case "listen":
      return await runListen(command);
  }
}

if (import.meta.main) {
  let status: number;
  try {
    status = await main(Deno.args);
  } catch (error) {
    // The last guard: one line, never a stack trace.
    printError(`error: ${error instanceof Error ? error.message : error}`);
    status = 1;
  }
  Deno.exit(status);
}
