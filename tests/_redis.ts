// A real redis-server for the tests: on a free loopback port, with no
// persistence, stopped afterwards. CI installs it (.ci/run); elsewhere a
// test that needs it is skipped when it is missing.

/** Whether redis-server can run here; with CI set, a missing one fails. */
export const hasRedis: boolean = (() => {
  try {
    Deno.statSync("/usr/bin/redis-server");
    return true;
  } catch {
    return !!Deno.env.get("CI");
  }
})();

/** A free loopback port (the race until the server binds it is accepted). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A running redis-server. */
export interface RedisServer {
  port: number;
  url: string;
  /** Stops it (SIGKILL: a crash, nothing saved). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes it (SIGSTOP): its sockets stay open, and nothing answers. */
  pause(): void;
  /** Thaws it (SIGCONT) after {@linkcode RedisServer.pause}. */
  resume(): void;
}

/** Starts redis-server on a free port, and waits until it answers. */
export async function startRedis(): Promise<RedisServer> {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = new Deno.Command("redis-server", {
        args: [
          "--save",
          "",
          "--appendonly",
          "no",
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      for (let i = 0; i < 500; i++) {
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          await conn.write(new TextEncoder().encode("PING\r\n"));
          const buffer = new Uint8Array(16);
          const n = await conn.read(buffer);
          conn.close();
          if (
            n && new TextDecoder().decode(buffer.subarray(0, n)) === "+PONG\r\n"
          ) {
            return;
          }
        } catch {
          // Not listening yet.
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`redis-server did not answer on port ${port}`);
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async stop() {
      if (!child) return;
      child.kill("SIGKILL");
      await child.status;
      child = undefined;
    },
  };
  await server.start();
  return server;
}
