/**
 * A chat room on `Deno.serve`: it serves an HTML page at `/` and a WebSocket
 * at `/ws` through `upgradeWebSocket`, and broadcasts every message to every
 * member. This is the shape of a Deno Deploy handler.
 *
 * `deno run -A examples/chat.ts [--port 8000] [--hostname 127.0.0.1]`
 *
 * It prints the URL to open in a browser.
 *
 * @module
 */

import { upgradeWebSocket, type WebSocketConnection } from "../mod.ts";
import { CHAT_PAGE } from "./chat_page.ts";

/** A running chat server. */
export interface ChatServer {
  /** The page's URL. */
  url: string;
  /** How many members are connected now. */
  readonly members: number;
  /** Closes every member with 1001 and stops the server. */
  shutdown(): Promise<void>;
}

/**
 * The bound on messages waiting for one member: a member this far behind is
 * closed with 1008 instead of growing the server's memory for everyone.
 */
const MAX_PENDING_PER_MEMBER = 256;
const MAX_TEXT = 4096;

/**
 * Starts the chat server.
 *
 * @param port The port; 0 picks a free one.
 * @param hostname The address to listen on.
 * @returns The running server.
 */
export function startChat(port: number, hostname = "127.0.0.1"): ChatServer {
  const members = new Map<
    WebSocketConnection,
    WritableStreamDefaultWriter<string>
  >();
  let guests = 0;

  function broadcast(from: string, text: string): void {
    const line = JSON.stringify({ from, text });
    for (const [member, writer] of members) {
      // WritableStream's default high-water mark is 1, so desiredSize is
      // 1 minus the messages still waiting for this member.
      if ((writer.desiredSize ?? 0) < -MAX_PENDING_PER_MEMBER) {
        member.close({ closeCode: 1008, reason: "Cannot keep up" });
        members.delete(member);
        continue;
      }
      writer.write(line).catch(() => members.delete(member));
    }
  }

  async function join(member: WebSocketConnection): Promise<void> {
    const name = `guest-${++guests}`;
    try {
      await member.opened;
    } catch {
      return;
    }
    members.set(member, member.writable.getWriter());
    broadcast("server", `${name} joined`);
    try {
      for await (const message of member.readable) {
        if (typeof message !== "string") continue;
        broadcast(name, message.slice(0, MAX_TEXT));
      }
    } catch {
      // The member failed; it is dropped below.
    }
    if (members.delete(member)) broadcast("server", `${name} left`);
  }

  const server = Deno.serve({ port, hostname, onListen() {} }, (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/ws") {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Cannot chat: this path takes WebSockets", {
          status: 426,
          headers: { upgrade: "websocket" },
        });
      }
      const { response, connection } = upgradeWebSocket(request, {
        maxMessageSize: 64 * 1024,
      });
      join(connection);
      return response;
    }
    if (pathname === "/") {
      return new Response(CHAT_PAGE, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    return new Response("Not found", { status: 404 });
  });

  return {
    url: `http://${
      hostname.includes(":") ? `[${hostname}]` : hostname
    }:${server.addr.port}/`,
    get members() {
      return members.size;
    },
    async shutdown() {
      const closing = [...members.keys()].map((member) => {
        member.close({ closeCode: 1001, reason: "server shutting down" });
        return member.closed.catch(() => {});
      });
      members.clear();
      await Promise.all(closing);
      await server.shutdown();
    },
  };
}

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

if (import.meta.main) {
  const chat = startChat(
    Number(flag("port", "8000")),
    flag("hostname", "127.0.0.1"),
  );
  console.log(`chat: open ${chat.url} in two browser tabs`);
  Deno.addSignalListener(
    "SIGINT",
    () => chat.shutdown().then(() => Deno.exit()),
  );
}
