/**
 * A chat room on topics: it serves an HTML page at `/` and a WebSocket at
 * `/ws` with `serve()`, and publishes every message to the topic "chat",
 * which every member subscribes to. Each message is framed (and
 * compressed) once for all members, and a member that stops reading is
 * closed with 1008 instead of growing the server's memory.
 *
 * `deno run -A examples/chat.ts [--port 8000] [--hostname 127.0.0.1]`
 *
 * It prints the URL to open in a browser. `examples/chat_cluster.ts` runs
 * the same room over several processes through Redis.
 *
 * @module
 */

import {
  type Backplane,
  serve,
  Topics,
  type UpgradeDecision,
  type WebSocketConnection,
} from "../mod.ts";
import { CHAT_PAGE } from "./chat_page.ts";

/** A running chat server. */
export interface ChatServer {
  /** The page's URL. */
  url: string;
  /** How many members are connected to this process now. */
  readonly members: number;
  /** Closes every member with 1001 and stops the server. */
  shutdown(): Promise<void>;
}

/** Options for {@linkcode startChat}. */
export interface ChatOptions {
  /** The port; 0 picks a free one. */
  port?: number;
  /** The address to listen on. */
  hostname?: string;
  /** Reaches the members of other processes. */
  backplane?: Backplane;
  /** Put before guest names, to tell processes apart. */
  prefix?: string;
}

/**
 * The bytes that may wait for one member: a member this far behind is
 * closed with 1008 instead of growing the server's memory for everyone.
 */
const MAX_PENDING_PER_MEMBER = 256 * 1024;
const MAX_TEXT = 4096;
const ROOM = "chat";

/**
 * Starts the chat server.
 *
 * @param options The port, address, backplane and name prefix.
 * @returns The running server.
 */
export function startChat(options: ChatOptions = {}): ChatServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const prefix = options.prefix ?? "";
  const topics = new Topics({
    maxBufferedAmount: MAX_PENDING_PER_MEMBER,
    slowSubscriber: "close",
    slowCloseCode: 1008,
    backplane: options.backplane,
  });
  let guests = 0;
  let stopping = false;

  function say(from: string, text: string): Promise<void> {
    return topics.publish(ROOM, JSON.stringify({ from, text }));
  }

  async function join(member: WebSocketConnection): Promise<void> {
    const name = `${prefix}guest-${++guests}`;
    try {
      await topics.subscribe(member, ROOM);
      await say("server", `${name} joined`);
      for await (const message of member.readable) {
        if (typeof message !== "string") continue;
        await say(name, message.slice(0, MAX_TEXT));
      }
    } catch {
      // The member failed, or the backplane did; it has left the room.
    }
    if (!stopping) await say("server", `${name} left`).catch(() => {});
  }

  const server = serve({
    port: options.port ?? 0,
    hostname,
    onListen() {},
    maxMessageSize: 64 * 1024,
    onUpgrade(request): UpgradeDecision | void {
      if (new URL(request.url).pathname !== "/ws") {
        return { reject: 404, body: "Cannot chat: WebSockets go to /ws" };
      }
    },
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === "/ws") {
        return new Response("Cannot chat: this path takes WebSockets", {
          status: 426,
          headers: { upgrade: "websocket" },
        });
      }
      if (pathname === "/") {
        return new Response(CHAT_PAGE, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      return new Response("Not found", { status: 404 });
    },
  }, join);

  return {
    url: `http://${
      hostname.includes(":") ? `[${hostname}]` : hostname
    }:${server.addr.port}/`,
    get members() {
      return topics.subscribers(ROOM);
    },
    async shutdown() {
      stopping = true;
      await server.shutdown();
      topics.close();
    },
  };
}

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

if (import.meta.main) {
  const chat = startChat({
    port: Number(flag("port", "8000")),
    hostname: flag("hostname", "127.0.0.1"),
  });
  console.log(`chat: open ${chat.url} in two browser tabs`);
  Deno.addSignalListener(
    "SIGINT",
    () => chat.shutdown().then(() => Deno.exit()),
  );
}
