// The command line's grammar: subcommands, flags and their checks, and the
// help text. Pure: no I/O, so that tests and the entry point share it.

/** A command line that breaks the grammar: usage and exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** `connect <url>`. */
export interface ConnectCommand {
  command: "connect";
  url: URL;
  headers: [string, string][];
  protocols: string[];
  binary: boolean;
  deflate: boolean;
  /** Seconds between pings, or undefined for none. */
  ping: number | undefined;
  /** Seconds to wait for each pong. */
  pingTimeout: number;
  json: boolean;
  trace: boolean;
}

/** `listen <port>`. */
export interface ListenCommand {
  command: "listen";
  port: number;
  hostname: string;
  broadcast: boolean;
  /** Connections open or in their handshake at once; more get 503. */
  maxConnections: number;
  protocol: string | undefined;
  deflate: boolean;
  trace: boolean;
}

/** What the command line asks for. */
export type Command =
  | ConnectCommand
  | ListenCommand
  | { command: "help" }
  | { command: "version" };

/** The grammar in short: what a usage error prints. */
export const SYNOPSIS = `Usage:
  deno run -A jsr:@seed/websocket-streams/cli connect <url> [options]
  deno run -A jsr:@seed/websocket-streams/cli listen <port> [options]
  deno run -A jsr:@seed/websocket-streams/cli --help | --version`;

/** What --help prints. */
export const USAGE =
  `websocket-streams cli: a WebSocket client and server (RFC 6455)

${SYNOPSIS}

connect <url>   Opens a WebSocket to <url> (ws://, wss://; no scheme means ws://).
                On a terminal: type a line to send it; "< " marks what arrives.
                Otherwise: each stdin line is a message, each message a stdout
                line; at the end of stdin it closes with 1000 and waits for the
                server's close (at most 5 s).
  -H, --header "Name: value"  an extra request header (repeatable)
  -p, --protocol <name>       offer a subprotocol (repeatable)
  --binary                    send each stdin line as a binary message
  --no-deflate                do not offer permessage-deflate
  --ping <seconds>            ping <seconds> after opening and after each pong
  --ping-timeout <seconds>    with --ping: no pong within <seconds> fails the
                              connection (1006); default 10
  --json                      print each message as one JSON object:
                              {"type":"text","data":"…"} or
                              {"type":"binary","data":"<base64>"}
  --trace                     print the handshake and every frame's header
                              (FIN, RSV1-3, opcode, MASK, length, key) to stderr

listen <port>   An echo server on ws://127.0.0.1:<port>/ (0 picks a free port).
                Connections and their close codes go to stderr.
  --host <address>            the address to listen on (default 127.0.0.1)
  --broadcast                 send each message to every client, the sender too
  --max-connections <n>       answer 503 past n connections at once (default 1024)
  -p, --protocol <name>       accept this subprotocol when a client offers it
  --no-deflate                decline permessage-deflate
  --trace                     print every frame's header to stderr

Binary messages print as base64. Exit status: 0 closed with 1000, 1001 or
1005 (no code); 1 cannot connect (or another runtime error); 2 bad usage;
3 closed with any other code, or abnormally (1006): "closed: <code> <reason>".

Examples (CLI="deno run -A jsr:@seed/websocket-streams/cli"):
  $CLI listen 8080 --broadcast                  # a room on ws://127.0.0.1:8080/
  $CLI connect ws://127.0.0.1:8080/             # interactive
  echo hello | $CLI connect 127.0.0.1:8080 --json
  $CLI connect wss://example.com/socket -H "Authorization: Bearer abc" -p chat
  $CLI connect ws://127.0.0.1:8080/ --trace --no-deflate < messages.txt
`;

const CONNECT_FLAGS = new Set([
  "-H",
  "--header",
  "-p",
  "--protocol",
  "--binary",
  "--no-deflate",
  "--ping",
  "--ping-timeout",
  "--json",
  "--trace",
]);
const LISTEN_FLAGS = new Set([
  "--host",
  "--max-connections",
  "--broadcast",
  "-p",
  "--protocol",
  "--no-deflate",
  "--trace",
]);
const TAKES_VALUE = new Set([
  "-H",
  "--header",
  "-p",
  "--protocol",
  "--ping",
  "--ping-timeout",
  "--host",
  "--max-connections",
]);
// RFC 7230 §3.2.6: a header name and a subprotocol (RFC 6455 §4.1) are tokens.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Seconds to wait for a pong: long enough for a loaded machine or a slow
// link, as a heartbeat's timeout should be.
const DEFAULT_PING_TIMEOUT = 10;
// The longest timer, in seconds (2^31 - 1 ms).
const MAX_PING_SECONDS = 2147483;

/**
 * Parses the arguments after the program name.
 *
 * @throws {UsageError} For anything the grammar does not allow.
 */
export function parseArgs(args: string[]): Command {
  if (args.includes("--help") || args.includes("-h")) {
    return { command: "help" };
  }
  if (args.includes("--version") || args.includes("-V")) {
    return { command: "version" };
  }
  const [command, ...rest] = args;
  if (command === undefined) throw new UsageError("Cannot run: no command");
  if (command !== "connect" && command !== "listen") {
    throw new UsageError(
      `Cannot run: unknown command "${command}" (connect or listen)`,
    );
  }
  const allowed = command === "connect" ? CONNECT_FLAGS : LISTEN_FLAGS;
  const positional: string[] = [];
  const flags: [string, string][] = [];
  for (let i = 0; i < rest.length; i++) {
    let arg = rest[i]!;
    if (arg === "--") {
      positional.push(...rest.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (!allowed.has(arg)) {
      throw new UsageError(`Cannot ${command}: unknown option ${arg}`);
    }
    if (TAKES_VALUE.has(arg)) {
      if (value === undefined) {
        value = rest[++i];
        if (value === undefined) {
          throw new UsageError(`Cannot ${command}: ${arg} needs a value`);
        }
      }
    } else if (value !== undefined) {
      throw new UsageError(`Cannot ${command}: ${arg} takes no value`);
    }
    flags.push([arg, value ?? ""]);
  }
  if (positional.length !== 1) {
    throw new UsageError(
      positional.length === 0
        ? `Cannot ${command}: the ${
          command === "connect" ? "URL" : "port"
        } is missing`
        : `Cannot ${command}: unexpected argument "${positional[1]}"`,
    );
  }
  const has = (name: string) => flags.some(([flag]) => flag === name);
  const values = (...names: string[]) =>
    flags.filter(([flag]) => names.includes(flag)).map(([, v]) => v);
  const protocols = values("-p", "--protocol");
  for (const protocol of protocols) {
    if (!TOKEN.test(protocol)) {
      throw new UsageError(
        `Cannot ${command}: the subprotocol "${protocol}" is not a token`,
      );
    }
  }
  const deflate = !has("--no-deflate");
  const trace = has("--trace");

  if (command === "listen") {
    const port = Number(positional[0]);
    if (!/^\d+$/.test(positional[0]!) || port > 65535) {
      throw new UsageError(
        `Cannot listen: the port "${
          positional[0]
        }" is not an integer from 0 to 65535`,
      );
    }
    if (protocols.length > 1) {
      throw new UsageError("Cannot listen: give -p at most once");
    }
    const hosts = values("--host");
    const max = values("--max-connections").at(-1) ?? "1024";
    if (!/^\d+$/.test(max) || Number(max) < 1) {
      throw new UsageError(
        `Cannot listen: --max-connections takes a positive integer, not "${max}"`,
      );
    }
    return {
      command,
      port,
      hostname: hosts.at(-1) ?? "127.0.0.1",
      broadcast: has("--broadcast"),
      maxConnections: Number(max),
      protocol: protocols[0],
      deflate,
      trace,
    };
  }

  let url: URL;
  const raw = positional[0]!;
  try {
    // As wscat: "localhost:8080/x" means ws://localhost:8080/x.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `ws://${raw}`);
  } catch {
    throw new UsageError(`Cannot connect: "${raw}" is not a URL`);
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(
      `Cannot connect: the scheme ${url.protocol} is not ws: or wss:`,
    );
  }
  if (url.hash !== "") {
    throw new UsageError("Cannot connect: a WebSocket URL has no fragment");
  }
  const headers: [string, string][] = [];
  for (const header of values("-H", "--header")) {
    const colon = header.indexOf(":");
    const name = header.slice(0, colon).trim();
    const value = header.slice(colon + 1).trim();
    if (colon < 0 || !TOKEN.test(name) || /[\r\n\0]/.test(value)) {
      throw new UsageError(
        `Cannot connect: the header "${header}" is not "Name: value"`,
      );
    }
    headers.push([name, value]);
  }
  const seconds = (flag: string) => {
    const given = values(flag).at(-1);
    if (given === undefined) return undefined;
    const value = Number(given);
    if (!(value > 0 && value <= MAX_PING_SECONDS)) {
      throw new UsageError(
        `Cannot connect: ${flag} takes seconds above 0 and up to ${MAX_PING_SECONDS}, not "${given}"`,
      );
    }
    return value;
  };
  const ping = seconds("--ping");
  const pingTimeout = seconds("--ping-timeout");
  if (pingTimeout !== undefined && ping === undefined) {
    throw new UsageError("Cannot connect: --ping-timeout needs --ping");
  }
  return {
    command,
    url,
    headers,
    protocols,
    binary: has("--binary"),
    deflate,
    ping,
    pingTimeout: pingTimeout ?? DEFAULT_PING_TIMEOUT,
    json: has("--json"),
    trace,
  };
}
