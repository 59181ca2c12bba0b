/**
 * The seed's five techniques side by side: WebSocket, server-sent events,
 * long polling, short polling and the iframe forever frame, each connected
 * from one page to the same echo service through `realtime()`, with live
 * charts of round-trip latency, bytes on the wire per message and requests
 * per minute.
 *
 * `deno run -A examples/techniques/main.ts --port 8080` (or `deno task
 * techniques`), then open http://127.0.0.1:8080/.
 *
 * The browser runs `lib/realtime/client.ts` as plain ESM: at start-up this
 * server bundles it with `deno bundle --platform browser` (esbuild, which
 * Deno fetches once from the npm registry and then keeps in its cache) and
 * serves the result at `/client.js`.
 *
 * The bytes are counted here, on the server, because a page cannot see
 * header bytes: for HTTP, the request head as `Deno.serve` received it and
 * the response head it sends (rebuilt from the headers, plus the `date`
 * and length or chunk framing Deno adds); for WebSocket, the handshake
 * once and each frame's header and payload (Deno owns the frames, so they
 * are computed from the message sizes).
 *
 * @module
 */

import {
  realtime,
  type RealtimeConnection,
  type RealtimeTransport,
} from "../../lib/realtime/mod.ts";

/** The options of {@linkcode startTechniques}. */
export interface TechniquesOptions {
  /** The port; 0 picks a free one. */
  port: number;
  /** The address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Answer 403 to WebSocket upgrades, to watch the fallback. */
  refuseWebSocket?: boolean;
  /** Called once listening. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** A running techniques demo. */
export interface TechniquesServer {
  /** Where it listens. */
  addr: Deno.NetAddr;
  /** Stops it. */
  shutdown(): Promise<void>;
}

interface Figures {
  requests: number[]; // start times of requests (and upgrades), last minute
  bytes: number;
  messages: number;
}

const HERE = new URL(".", import.meta.url);
const TRANSPORTS: RealtimeTransport[] = [
  "websocket",
  "sse",
  "long-polling",
  "polling",
  "iframe",
];

/**
 * Bundles the browser client: `lib/realtime/client.ts` and what it imports,
 * as one ES module.
 *
 * @returns The JavaScript text.
 */
export async function bundleClient(): Promise<string> {
  const out = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const { success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "--format",
        "esm",
        "-o",
        out,
        new URL("../../lib/realtime/client.ts", import.meta.url).pathname,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(
        `Cannot bundle the client: ${new TextDecoder().decode(stderr)}`,
      );
    }
    return await Deno.readTextFile(out);
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

// A WebSocket frame's bytes for a payload of n bytes (RFC 6455 §5.2).
function frameBytes(n: number, masked: boolean): number {
  return 2 + (n > 65535 ? 8 : n > 125 ? 2 : 0) + (masked ? 4 : 0) + n;
}

const encoder = new TextEncoder();

function headBytes(first: string, headers: Headers): number {
  let size = first.length + 2 + 2;
  headers.forEach((value, name) => {
    size += name.length + 2 + encoder.encode(value).length + 2;
  });
  return size;
}

/**
 * Starts the demo server.
 *
 * @param options The port, the address, and whether to refuse WebSocket.
 * @returns The running server.
 */
export async function startTechniques(
  options: TechniquesOptions,
): Promise<TechniquesServer> {
  const client = await bundleClient();
  const page = await Deno.readTextFile(new URL("page.html", HERE));
  const script = await Deno.readTextFile(new URL("page.js", HERE));
  const figures = new Map<string, Figures>(
    TRANSPORTS.map((t) => [t, { requests: [], bytes: 0, messages: 0 }]),
  );
  const sessions = new Map<string, RealtimeTransport>();
  const members = new Map<
    WritableStreamDefaultWriter<string | Uint8Array>,
    RealtimeTransport
  >();
  const started = Date.now();

  const handler = realtime({
    path: "/rt",
    pollTimeout: 15_000,
  }, (connection: RealtimeConnection, info) => {
    const figure = figures.get(info.transport)!;
    const writer = connection.writable.getWriter();
    members.set(writer, info.transport);
    connection.closed.catch(() => {}).finally(() => members.delete(writer));
    (async () => {
      for await (const message of connection.readable) {
        const size = typeof message === "string"
          ? encoder.encode(message).length
          : message.length;
        // One message in, and each one out, counted under the transport
        // that carries it.
        figure.messages++;
        if (info.transport === "websocket") {
          figure.bytes += frameBytes(size, true);
        }
        // "all:" goes to every member: the broadcast half of the service.
        const to = typeof message === "string" && message.startsWith("all:")
          ? [...members]
          : [[writer, info.transport] as const];
        for (const [member, transport] of to) {
          const out = figures.get(transport)!;
          out.messages++;
          if (transport === "websocket") out.bytes += frameBytes(size, false);
          if (member === writer) await member.write(message);
          else member.write(message).catch(() => {});
        }
      }
    })().catch(() => {});
  });

  // Counts every request of the /rt family under its transport.
  async function counted(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const endpoint = url.pathname.slice("/rt/".length);
    let transport: RealtimeTransport | undefined = endpoint === "ws"
      ? "websocket"
      : endpoint === "session"
      ? url.searchParams.get("transport") as RealtimeTransport
      : sessions.get(url.searchParams.get("sid") ?? "");
    if (endpoint === "ws" && options.refuseWebSocket) {
      return new Response("WebSocket refused by --refuse-websocket", {
        status: 403,
      });
    }
    const figure = transport ? figures.get(transport) : undefined;
    if (!figure) return handler(request);
    const now = Date.now();
    figure.requests.push(now);
    while (figure.requests[0]! < now - 60_000) figure.requests.shift();
    figure.bytes += headBytes(
      `${request.method} ${url.pathname}${url.search} HTTP/1.1`,
      request.headers,
    ) + Number(request.headers.get("content-length") ?? 0);
    const response = await handler(request);
    if (endpoint === "session" && response.ok) {
      const { sid } = await response.clone().json();
      sessions.set(sid, transport!);
    }
    // Deno adds a date header (37 bytes with its line end) and a length or
    // chunked framing; a 101 has neither body nor length.
    const length = response.headers.get("content-length");
    const chunked = response.body !== null && length === null &&
      response.status !== 101;
    figure.bytes += headBytes(
      `HTTP/1.1 ${response.status} ${response.statusText || "OK"}`,
      response.headers,
    ) + 37 + (chunked ? 28 : response.status === 101 ? 0 : 20);
    if (!response.body || response.status === 101) return response;
    transport = undefined;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          // Chunked framing: the size in hex, two line ends.
          figure.bytes += chunk.length +
            (chunked ? chunk.length.toString(16).length + 4 : 0);
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, {
      status: response.status,
      headers: response.headers,
    });
  }

  function stats(): Response {
    const minutes = Math.min(1, (Date.now() - started) / 60_000) || 1 / 60;
    const out: Record<string, unknown> = {};
    for (const [transport, figure] of figures) {
      out[transport] = {
        bytes: figure.bytes,
        messages: figure.messages,
        bytesPerMessage: figure.messages ? figure.bytes / figure.messages : 0,
        requestsPerMinute: figure.requests.length / minutes,
      };
    }
    return Response.json(out, { headers: { "cache-control": "no-store" } });
  }

  const server = Deno.serve({
    port: options.port,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: options.onListen ?? (() => {}),
  }, (request) => {
    const { pathname } = new URL(request.url);
    if (pathname.startsWith("/rt/")) return counted(request);
    if (pathname === "/stats") return stats();
    if (pathname === "/client.js" || pathname === "/page.js") {
      return new Response(pathname === "/page.js" ? script : client, {
        headers: { "content-type": "text/javascript; charset=utf-8" },
      });
    }
    if (pathname === "/") {
      return new Response(page, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    return new Response("Not Found", { status: 404 });
  });
  return {
    addr: server.addr,
    async shutdown() {
      handler.close();
      await server.shutdown();
    },
  };
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const port = at === -1 ? 8080 : Number(Deno.args[at + 1]);
  await startTechniques({
    port,
    refuseWebSocket: Deno.args.includes("--refuse-websocket"),
    onListen(addr) {
      console.log(
        `the five techniques, side by side: http://${addr.hostname}:${addr.port}/`,
      );
    },
  });
}
