// A topics server in a worker, for tests/broadcast_test.ts: topics reach
// the other workers through a BroadcastChannelBackplane. It posts
// `{ port }` once it listens; a client connects to `/?t=a,b`, is sent
// "ready", and each text it sends as `topic\npayload` is published. The
// message "stop" shuts it down; it posts "stopped".

// Not from mod.ts: a worker is type-checked without the window types, and
// lib/net/websocket.ts names `Location`.
import { BroadcastChannelBackplane } from "../../lib/broadcast_backplane.ts";
import { serve } from "../../lib/net/serve.ts";
import { Topics } from "../../lib/topics.ts";

// The worker's scope, typed here.
const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};

const backplane = new BroadcastChannelBackplane({ name: "broadcast-test" });
const topics = new Topics({ backplane });
const server = serve(
  {
    port: 0,
    hostname: "127.0.0.1",
    onListen: (addr) => scope.postMessage({ port: addr.port }),
  },
  async (connection, request) => {
    const names = new URL(request.url).searchParams.get("t")!.split(",");
    await Promise.all(names.map((name) => topics.subscribe(connection, name)));
    const writer = connection.writable.getWriter();
    await writer.write("ready");
    writer.releaseLock();
    try {
      for await (const message of connection.readable) {
        const text = message as string;
        const at = text.indexOf("\n");
        await topics.publish(text.slice(0, at), text.slice(at + 1));
      }
    } catch {
      // The connection failed: it has left its topics.
    }
  },
);

scope.onmessage = async (event: MessageEvent) => {
  if (event.data !== "stop") return;
  await server.shutdown();
  topics.close();
  backplane.close();
  scope.postMessage("stopped");
  scope.close();
};
