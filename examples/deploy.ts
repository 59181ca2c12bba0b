/**
 * The chat room as Deno Deploy runs it: a default export with `fetch`, the
 * form that `deno serve` and Deno Deploy load. It serves the page at `/`,
 * upgrades `/ws` with `upgradeWebSocket`, and shares the room across
 * isolates with a `BroadcastChannel`: Deploy (and `deno serve --parallel`)
 * runs several isolates, each with its own members, and no memory shared.
 *
 * Each isolate sends its members' messages to its own members and to the
 * channel, and the channel's messages to its own members only. A
 * `BroadcastChannel` never delivers a message to the object that posted it,
 * and an isolate never posts what came from the channel, so nothing loops.
 *
 * ```sh
 * deno serve examples/deploy.ts                 # one isolate, port 8000
 * deno serve --parallel examples/deploy.ts      # one isolate per core
 * deployctl deploy --entrypoint=examples/deploy.ts
 * ```
 *
 * @module
 */

import {
  upgradeWebSocket,
  type WebSocketConnection,
  WebSocketHandshakeError,
} from "../mod.ts";
import { CHAT_PAGE } from "./chat_page.ts";

/**
 * A line of the room, as the page reads it. `isolate` names the isolate
 * that serves the receiver; it is on the welcome only.
 */
interface Line {
  from: string;
  text: string;
  isolate?: string;
}

// Names this isolate: under --parallel or on Deploy each isolate loads the
// module on its own, so each has its own.
const ISOLATE = crypto.randomUUID().slice(0, 8);
// A member this far behind is closed with 1008 rather than grow the
// isolate's memory for everyone: 256 lines of the longest text (MAX_TEXT
// characters; a line adds its JSON around it).
const MAX_TEXT = 4096;
const MAX_PENDING_PER_MEMBER = 256 * MAX_TEXT;

const members = new Map<
  WebSocketConnection,
  WritableStreamDefaultWriter<string>
>();
// Opened on the first member, closed when the last leaves: an open channel
// keeps the isolate alive (and a test's process running).
let channel: BroadcastChannel | undefined;

function deliver(line: string): void {
  for (const [member, writer] of members) {
    // The writable's queue is measured in UTF-16 units of text (bytes of
    // binary), so desiredSize is its high-water mark minus the text still
    // waiting for this member: below -MAX_PENDING_PER_MEMBER, more than that
    // waits (Deno's own send buffer, up to writableHighWaterMark, aside).
    if ((writer.desiredSize ?? 0) < -MAX_PENDING_PER_MEMBER) {
      member.close({ closeCode: 1008, reason: "Cannot keep up" });
      members.delete(member);
      continue;
    }
    writer.write(line).catch(() => members.delete(member));
  }
}

/** Says something to the whole room: here, and in every other isolate. */
function say(from: string, text: string): void {
  const line = JSON.stringify({ from, text } satisfies Line);
  deliver(line);
  channel?.postMessage(line);
}

function openChannel(): void {
  if (channel) return;
  channel = new BroadcastChannel("websocket-streams-chat");
  // From other isolates: to our members only, never back to the channel.
  channel.onmessage = (event: MessageEvent<unknown>) => {
    if (typeof event.data === "string") deliver(event.data);
  };
}

async function join(member: WebSocketConnection): Promise<void> {
  const name = `guest-${crypto.randomUUID().slice(0, 4)}`;
  try {
    await member.opened;
  } catch {
    return;
  }
  openChannel();
  const writer = member.writable.getWriter();
  members.set(member, writer);
  writer.write(JSON.stringify(
    {
      from: "server",
      text: `welcome, ${name} (isolate ${ISOLATE})`,
      isolate: ISOLATE,
    } satisfies Line,
  )).catch(() => {});
  say("server", `${name} joined`);
  try {
    for await (const message of member.readable) {
      if (typeof message !== "string") continue;
      say(name, message.slice(0, MAX_TEXT));
    }
  } catch {
    // The member failed; it is dropped below.
  }
  if (members.delete(member)) say("server", `${name} left`);
  if (members.size === 0) {
    channel?.close();
    channel = undefined;
  }
}

export default {
  fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/ws") {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Cannot chat: this path takes WebSockets", {
          status: 426,
          headers: { upgrade: "websocket" },
        });
      }
      let upgraded;
      try {
        upgraded = upgradeWebSocket(request, { maxMessageSize: 64 * 1024 });
      } catch (error) {
        // A malformed upgrade (no key, another version): its answer says
        // why, with its status (400 or 426), rather than a 500.
        if (error instanceof WebSocketHandshakeError) return error.toResponse();
        throw error;
      }
      join(upgraded.connection);
      return upgraded.response;
    }
    if (pathname === "/") {
      return new Response(CHAT_PAGE, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    return new Response("Not found", { status: 404 });
  },
} satisfies Deno.ServeDefaultExport;
