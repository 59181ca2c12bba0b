// The command line, run as a subprocess against live servers on loopback, in
// pipe mode: what it prints, what the server sees, and its exit status.

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { connect, serve, type WebSocketConnection } from "../mod.ts";
import { encodeFrame, Opcode } from "../lib/codec/mod.ts";
import { acceptKey } from "../lib/handshake/mod.ts";
import { FrameTracer } from "../cli/_trace.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI with `stdin` written and then ended; with `keepStdin`,
 * stdin stays open until the process has exited (the server ends it).
 */
async function run(
  args: string[],
  stdin = "",
  keepStdin = false,
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(stdin));
  if (!keepStdin) await writer.close();
  const output = await child.output();
  if (keepStdin) await writer.close().catch(() => {});
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** An in-process server; `seen` collects what its handler was given. */
function server(
  handler: (connection: WebSocketConnection, request: Request) => void,
  options: Parameters<typeof serve>[0] = {},
) {
  const connections: Promise<unknown>[] = [];
  const ws = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    (connection, request) => {
      connections.push(connection.closed.catch((error) => error));
      handler(connection, request);
    },
  );
  return {
    url: `ws://127.0.0.1:${ws.addr.port}/`,
    connections,
    shutdown: () => ws.shutdown(),
  };
}

const echo = (connection: WebSocketConnection) => {
  connection.readable.pipeTo(connection.writable).catch(() => {});
};

Deno.test("cli connect: stdin lines go out and come back as stdout lines; the end of stdin closes with 1000", async () => {
  const s = server(echo);
  const result = await run(["connect", s.url], "one\ntwo\r\n\nthree");
  assertEquals(result.stdout, "one\ntwo\n\nthree\n");
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  // The server saw the close handshake finish with 1000.
  assertEquals(await s.connections[0], { closeCode: 1000, reason: "" });
  await s.shutdown();
});

Deno.test("cli connect --json prints one object per message; binary as base64", async () => {
  const s = server(async (connection) => {
    const writer = connection.writable.getWriter();
    await writer.write("tab\there");
    await writer.write(new Uint8Array([1, 2, 3, 0xff]));
    writer.releaseLock();
    echo(connection);
  });
  const result = await run(["connect", s.url, "--json", "--binary"], "x\n");
  assertEquals(result.stdout.split("\n"), [
    '{"type":"text","data":"tab\\there"}',
    '{"type":"binary","data":"AQID/w=="}',
    '{"type":"binary","data":"eA=="}', // --binary sent "x" as binary
    "",
  ]);
  assertEquals(result.code, 0);
  await s.shutdown();
});

Deno.test("cli connect --trace prints the header fields of each frame, both ways", async () => {
  const s = server(async (connection) => {
    const writer = connection.writable.getWriter();
    await writer.write("Hello");
    writer.releaseLock();
    echo(connection);
  });
  const result = await run(
    ["connect", s.url, "--trace", "--no-deflate"],
    "abc\n",
  );
  assertEquals(result.code, 0);
  // --no-deflate: nothing offered.
  assert(!/^> Sec-WebSocket-Extensions/im.test(result.stderr), result.stderr);
  assertEquals(result.stdout, "Hello\nabc\n");
  const lines = result.stderr.split("\n");
  assert(lines.includes("> GET / HTTP/1.1"), result.stderr);
  assert(lines.includes("< HTTP/1.1 101 Switching Protocols"), result.stderr);
  // "Hello" from the server, as RFC 6455 §5.7 shows it: 0x81 0x05.
  assert(
    lines.includes(
      "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 (text) MASK=0 length=5",
    ),
    result.stderr,
  );
  // Our "abc", masked with a fresh key.
  assert(
    lines.some((line) =>
      /^> FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 \(text\) MASK=1 length=3 key=([0-9a-f]{2} ){3}[0-9a-f]{2}$/
        .test(line)
    ),
    result.stderr,
  );
  // The close handshake, our 1000 and the server's echo of it.
  assert(
    lines.some((line) =>
      /^> FIN=1 .* opcode=0x8 \(close\) MASK=1 length=2 key=.* code=1000$/
        .test(line)
    ),
    result.stderr,
  );
  assert(
    lines.includes(
      "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x8 (close) MASK=0 length=2 code=1000",
    ),
    result.stderr,
  );
  await s.shutdown();
});

Deno.test("cli connect --trace shows RSV1 on a compressed message", async () => {
  const s = server(async (connection) => {
    const writer = connection.writable.getWriter();
    await writer.write("x".repeat(4096));
    writer.releaseLock();
    echo(connection);
  });
  const result = await run(["connect", s.url, "--trace"], "");
  assertEquals(result.code, 0);
  assertEquals(result.stdout, "x".repeat(4096) + "\n");
  assertMatch(result.stderr, /^< FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=0x1 /m);
  await s.shutdown();
});

Deno.test("cli connect -H and -p reach the server; the agreed subprotocol is used", async () => {
  let token: string | null = null;
  let offered: string[] = [];
  const s = server((connection) => {
    const writer = connection.writable.getWriter();
    writer.write(`protocol=${connection.protocol}`).catch(() => {});
    writer.releaseLock();
    echo(connection);
  }, {
    onUpgrade(request, info) {
      token = request.headers.get("authorization");
      offered = info.protocols;
      return { protocol: info.protocols.includes("chat") ? "chat" : undefined };
    },
  });
  const result = await run([
    "connect",
    s.url,
    "-H",
    "Authorization: Bearer abc",
    "-p",
    "superchat",
    "--protocol=chat",
  ]);
  assertEquals(result.code, 0);
  assertEquals(token, "Bearer abc");
  assertEquals(offered, ["superchat", "chat"]);
  assertEquals(result.stdout, "protocol=chat\n");
  await s.shutdown();
});

Deno.test("cli connect: a close with another code exits 3 and names it; 1001 exits 0", async () => {
  for (
    const [closeCode, code, stderr] of [
      [4000, 3, "closed: 4000 go away\n"],
      [1011, 3, "closed: 1011 go away\n"],
      [1001, 0, ""],
    ] as const
  ) {
    const s = server((connection) => {
      connection.close({ closeCode, reason: "go away" });
    });
    const result = await run(["connect", s.url], "", true);
    assertEquals([result.code, result.stderr], [code, stderr]);
    await s.shutdown();
  }
});

/**
 * A raw server that answers one handshake and then runs `after` on the
 * socket: the misbehaving peers our server would never be.
 */
function rawServer(after: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      head += decoder.decode(buffer.subarray(0, n));
    }
    const key = /sec-websocket-key: *(\S+)/i.exec(head)![1]!;
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptKey(
          key,
        )}\r\n\r\n`,
    ));
    await after(conn);
  })();
  return {
    url: `ws://127.0.0.1:${listener.addr.port}/`,
    async done() {
      await serving;
      listener.close();
    },
  };
}

Deno.test("cli connect: an abnormal end (TCP closed, no close frame) exits 3 with 1006", async () => {
  // The server drops the socket after the handshake.
  const s = rawServer((conn) => Promise.resolve(conn.close()));
  const result = await run(["connect", s.url], "", true);
  await s.done();
  assertEquals(result.code, 3);
  assertMatch(result.stderr, /^closed: 1006 [^\n]+\n$/);
});

Deno.test("cli connect: at the end of stdin, the wait for the server's close is bounded", async () => {
  // The server reads our close frame and never answers it.
  const s = rawServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    try {
      while (await conn.read(buffer) !== null) {
        // Drop it.
      }
    } finally {
      conn.close();
    }
  });
  const result = await run(["connect", s.url], "");
  await s.done();
  assertEquals(result.code, 3);
  assertMatch(result.stderr, /^closed: 1006 .*close/);
});

Deno.test("cli connect: a refused connection is one line and exit 1", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const result = await run(["connect", `ws://127.0.0.1:${port}/`]);
  assertEquals(result.code, 1);
  // The same with --trace, where the CLI dials.
  const traced = await run(["connect", `ws://127.0.0.1:${port}/`, "--trace"]);
  assertEquals([traced.code, traced.stderr], [result.code, result.stderr]);
  assertEquals(
    result.stderr,
    `error: Cannot connect to ws://127.0.0.1:${port}/: the connection was refused (is a server listening there?)\n`,
  );
  assertEquals(result.stdout, "");
});

Deno.test("cli connect: a refused handshake is one line and exit 1", async () => {
  const s = server(echo, { onUpgrade: () => ({ reject: 403 }) });
  const result = await run(["connect", s.url]);
  assertEquals(result.code, 1);
  assertEquals(result.stderr.split("\n").length, 2, result.stderr);
  assertMatch(
    result.stderr,
    new RegExp(`^error: Cannot connect to ${s.url}: .*403`),
  );
  await s.shutdown();
});

Deno.test("cli: --help, --version, and bad usage (exit 2)", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  for (const part of ["Usage:", "connect <url>", "listen <port>", "Examples"]) {
    assertStringIncludes(help.stdout, part);
  }
  const version = await run(["--version"]);
  assertEquals(version.code, 0);
  const { default: config } = await import("../deno.json", {
    with: { type: "json" },
  });
  assertEquals(version.stdout, `${config.name} ${config.version}\n`);
  const cases: [string[], string][] = [
    [["connect", "ws://x/", "--bogus"], "unknown option --bogus"],
    [["connect"], "the URL is missing"],
    [["connect", "ftp://x/"], "the scheme ftp: is not ws: or wss:"],
    [["connect", "ws://x/", "-H", "no colon"], 'is not "Name: value"'],
    [["connect", "ws://x/", "--ping", "0"], "--ping takes seconds"],
    [["connect", "ws://x/", "--ping-timeout", "1"], "needs --ping"],
    [["listen", "http"], "is not an integer from 0 to 65535"],
    [["listen", "0", "--max-connections", "0"], "takes a positive integer"],
    [["frob"], 'unknown command "frob"'],
  ];
  for (const [args, message] of cases) {
    const bad = await run(args);
    assertEquals(bad.code, 2, args.join(" "));
    const [first, second] = bad.stderr.split("\n");
    assert(first!.startsWith("error: Cannot "), bad.stderr);
    assertStringIncludes(first!, message);
    assertEquals(second, "Usage:");
  }
});

/** A `listen` subprocess, with its stderr read line by line. */
async function listen(...args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "listen", "0", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiting: { test: RegExp; resolve: (line: string) => void }[] = [];
  const reading = (async () => {
    let rest = "";
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        for (const w of [...waiting]) {
          if (w.test.test(line)) {
            waiting.splice(waiting.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
  })();
  // At most 30 s (generous: the machine may be loaded).
  const waitFor = (test: RegExp) => {
    const found = lines.find((line) => test.test(line));
    if (found) return Promise.resolve(found);
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(() => {
      waiting.splice(waiting.indexOf(waiter), 1);
      reject(new Error(`no line ${test} in:\n${lines.join("\n")}`));
    }, 30_000);
    const waiter = {
      test,
      resolve: (line: string) => {
        clearTimeout(timer);
        resolve(line);
      },
    };
    waiting.push(waiter);
    return promise;
  };
  const first = await waitFor(/^listening on /);
  const url = /ws:\/\/\S+/.exec(first)![0];
  return {
    url,
    lines,
    waitFor,
    async stop() {
      child.kill("SIGINT");
      const status = await child.status;
      await reading;
      return status.code;
    },
  };
}

async function next(connection: WebSocketConnection) {
  const reader = connection.readable.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return value;
}

Deno.test("cli listen echoes, reports connections and close codes, and closes with 1001 on SIGINT", async () => {
  const server = await listen("--trace");
  const client = await connect(server.url, { perMessageDeflate: false });
  const writer = client.writable.getWriter();
  await writer.write("hello");
  await writer.write(new Uint8Array([7, 8]));
  assertEquals(await next(client), "hello");
  assertEquals(await next(client), new Uint8Array([7, 8]));
  writer.releaseLock();
  const other = await connect(server.url);
  other.close({ closeCode: 4001, reason: "done" });
  await other.closed;
  await server.waitFor(/^#2 closed: 4001 done$/);

  assertEquals(await server.stop(), 0);
  assertEquals(await client.closed, {
    closeCode: 1001,
    reason: "server shutting down",
  });
  assertMatch(
    server.lines.join("\n"),
    /^#1 connected from 127\.0\.0\.1:\d+ \/$/m,
  );
  assert(server.lines.includes("#1 closed: 1001 server shutting down"));
  // --trace: our masked "hello" as the server received it.
  assertMatch(
    server.lines.join("\n"),
    /^#1 < FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 \(text\) MASK=1 length=5 key=/m,
  );
  assert(
    server.lines.includes(
      "#1 > FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x2 (binary) MASK=0 length=2",
    ),
    server.lines.join("\n"),
  );
});

Deno.test("cli listen --broadcast sends each message to every client", async () => {
  const server = await listen("--broadcast", "-p", "chat");
  const alice = await connect(server.url, { protocols: ["chat"] });
  const bob = await connect(server.url);
  await server.waitFor(/^#2 connected/);
  assertEquals(alice.protocol, "chat");
  assertEquals(bob.protocol, "");
  const writer = alice.writable.getWriter();
  await writer.write("hi all");
  writer.releaseLock();
  assertEquals(await next(bob), "hi all");
  assertEquals(await next(alice), "hi all");
  const bobWriter = bob.writable.getWriter();
  await bobWriter.write(new Uint8Array([1]));
  bobWriter.releaseLock();
  assertEquals(await next(alice), new Uint8Array([1]));
  assertEquals(await next(bob), new Uint8Array([1]));
  bob.close({ closeCode: 1000 });
  await bob.closed;
  await server.waitFor(/^#2 closed: 1000$/);
  assertEquals(await server.stop(), 0);
  assertEquals((await alice.closed).closeCode, 1001);
});

Deno.test("cli connect talks to cli listen", async () => {
  const server = await listen();
  const result = await run(["connect", server.url, "--json"], "a\nb\n");
  assertEquals(
    result.stdout,
    '{"type":"text","data":"a"}\n{"type":"text","data":"b"}\n',
  );
  assertEquals(result.code, 0);
  await server.waitFor(/^#1 closed: 1000$/);
  assertEquals(await server.stop(), 0);
});

// util-linux `script` gives the CLI a terminal, as a person would.
const hasScript = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "cli connect on a terminal: a prompt, '< ' before what arrives, Ctrl-D closes with 1000",
  ignore: !hasScript,
  async fn() {
    const s = server(echo);
    const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
    const child = new Deno.Command("script", {
      args: [
        "-qfec",
        [Deno.execPath(), "run", "-A", CLI, "connect", s.url].map(quote)
          .join(" "),
        "/dev/null",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("hello\n"));
    let output = "";
    let ended = false;
    const reading = (async () => {
      for await (
        const text of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        output += text;
        // The echo is back: end stdin, which `script` passes on as Ctrl-D.
        if (!ended && output.includes("< hello")) {
          ended = true;
          await writer.close();
        }
      }
    })();
    const timer = setTimeout(() => child.kill(), 30_000);
    const status = await child.status;
    clearTimeout(timer);
    await reading;
    assertStringIncludes(output, `connected to ${s.url}`);
    assertStringIncludes(output, "\r\x1b[K< hello\r\n> ");
    assertStringIncludes(output, "closed: 1000");
    assertEquals(status.code, 0);
    assertEquals(await s.connections[0], { closeCode: 1000, reason: "" });
    await s.shutdown();
  },
});

Deno.test("cli connect --ping sends pings that the server answers", async () => {
  // The pong may take long on a loaded machine: the default timeout (10 s)
  // covers it; the interval only says when the first ping goes.
  const server = await listen("--trace");
  const client = run(["connect", server.url, "--ping", "0.05"], "", true);
  await server.waitFor(/^#1 < FIN=1 .* opcode=0x9 \(ping\) MASK=1 /);
  await server.waitFor(/^#1 > FIN=1 .* opcode=0xa \(pong\) MASK=0 /);
  assertEquals(await server.stop(), 0);
  const result = await client;
  // The server went away with 1001: a normal end.
  assertEquals([result.code, result.stderr], [0, ""]);
});

Deno.test("cli --trace: the tracer reads the same frames however the bytes are split, and leaves them unchanged", () => {
  const frame = (opcode: Opcode, payload: Uint8Array, mask?: Uint8Array) =>
    encodeFrame({
      fin: true,
      rsv1: false,
      rsv2: false,
      rsv3: false,
      opcode,
      mask,
      payload,
    });
  const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]); // RFC 6455 §5.7
  const wire = new Uint8Array([
    ...encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ...frame(Opcode.Text, encoder.encode("Hello"), key),
    ...frame(Opcode.Binary, new Uint8Array(300), key), // the 16-bit length form
    ...frame(Opcode.Binary, new Uint8Array(70000), key), // the 64-bit length form
    ...frame(Opcode.Ping, new Uint8Array(0), key),
    ...frame(Opcode.Close, new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65]), key),
  ]);
  const expected = [
    "< GET / HTTP/1.1",
    "< Host: x",
    "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 (text) MASK=1 length=5 key=37 fa 21 3d",
    "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x2 (binary) MASK=1 length=300 (16-bit) key=37 fa 21 3d",
    "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x2 (binary) MASK=1 length=70000 (64-bit) key=37 fa 21 3d",
    "< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x9 (ping) MASK=1 length=0 key=37 fa 21 3d",
    '< FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x8 (close) MASK=1 length=5 key=37 fa 21 3d code=1000 reason="bye"',
  ];
  const copy = wire.slice();
  // Whole, byte by byte, and in pieces of 7 and 1000 bytes.
  for (const size of [wire.length, 1, 7, 1000]) {
    const lines: string[] = [];
    const tracer = new FrameTracer("<", "server", (l) => lines.push(l));
    for (let i = 0; i < wire.length; i += size) {
      tracer.push(wire.subarray(i, i + size));
    }
    assertEquals(lines, expected, `in pieces of ${size}`);
  }
  assertEquals(wire, copy);

  // A frame that breaks RFC 6455 stops the trace, and says why.
  const lines: string[] = [];
  const tracer = new FrameTracer("<", "client", (l) => lines.push(l));
  tracer.push(encoder.encode("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
  tracer.push(frame(Opcode.Text, encoder.encode("Hi"), key)); // masked, to a client
  tracer.push(frame(Opcode.Text, encoder.encode("Hi")));
  assertEquals(lines.length, 2);
  assertMatch(lines[1]!, /^< \(trace stops: .*mask/i);

  // A refusal has a body, not frames.
  const refused: string[] = [];
  const other = new FrameTracer("<", "client", (l) => refused.push(l));
  other.push(encoder.encode("HTTP/1.1 403 Forbidden\r\n\r\n\x81\x05Hello"));
  assertEquals(refused, ["< HTTP/1.1 403 Forbidden"]);
});

Deno.test("cli listen --max-connections: past it, a client gets 503", async () => {
  const server = await listen("--max-connections", "1");
  const first = await connect(server.url);
  await server.waitFor(/^#1 connected/);
  let refusal: unknown;
  try {
    await connect(server.url);
  } catch (error) {
    refusal = error;
  }
  assertMatch(String(refusal), /503/);
  await server.waitFor(/^#- refused 127\.0\.0\.1:\d+: 1 connections open$/);
  first.close({ closeCode: 1000 });
  await first.closed;
  await server.waitFor(/^#1 closed: 1000$/);
  // The slot is free again.
  const second = await connect(server.url);
  second.close({ closeCode: 1000 });
  await second.closed;
  assertEquals(await server.stop(), 0);
});

Deno.test("cli connect: a stdin line over 16 MiB is an error: the lines before it go out, then a close with 1000, exit 1", async () => {
  const s = server(echo);
  const result = await run(
    ["connect", s.url],
    "first\n" + "x".repeat(16 * 1024 * 1024 + 1),
  );
  assertEquals(result.stdout, "first\n");
  assertEquals(
    result.stderr,
    "error: Cannot send: a line of stdin is over 16777216 characters\n",
  );
  assertEquals(result.code, 1);
  assertEquals(await s.connections[0], { closeCode: 1000, reason: "" });
  await s.shutdown();
});

Deno.test("cli listen: a port in use is one line and exit 1", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = await run(["listen", String(taken.addr.port)]);
  taken.close();
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    `error: Cannot listen on 127.0.0.1:${taken.addr.port}: address already in use\n`,
  );
});

Deno.test("cli connect --ping-timeout: a server that never answers pings fails the connection with 1006", async () => {
  // The server reads and drops everything, pings included.
  const s = rawServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    try {
      while (await conn.read(buffer) !== null) {
        // Drop it.
      }
    } finally {
      conn.close();
    }
  });
  const result = await run(
    ["connect", s.url, "--ping", "0.05", "--ping-timeout", "0.05"],
    "",
    true,
  );
  await s.done();
  assertEquals(result.code, 3);
  assertEquals(result.stderr, "closed: 1006 no pong within 50 ms\n");
});
