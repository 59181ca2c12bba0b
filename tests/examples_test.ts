import { assertEquals, assertStringIncludes } from "@std/assert";
import { TextLineStream } from "@std/streams";
import { startChat } from "../examples/chat.ts";
import { echoExchange } from "../examples/echo_client.ts";
import { startEchoServer } from "../examples/echo_server.ts";
import { describe } from "../examples/frame_dump.ts";
import { pipeLines } from "../examples/pipe.ts";
import { connect } from "../mod.ts";
import { encodeFrame } from "../lib/codec/mod.ts";
import { concat } from "./_helpers.ts";

Deno.test("the demo's echo server and client exchange messages", async () => {
  const server = startEchoServer(0, "127.0.0.1", () => {});
  const lines: string[] = [];
  const sent = ["hello", new Uint8Array([1, 2, 3])];
  const echoes = await echoExchange(
    `ws://127.0.0.1:${server.addr.port}/`,
    sent,
    (l) => lines.push(l),
  );
  assertEquals(echoes, sent);
  assertEquals(lines.at(-1), 'closed cleanly: 1000 "done"');
  await server.shutdown();
});

Deno.test("the frame dump names each field of a frame", () => {
  const wire = encodeFrame({
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: 1,
    mask: new Uint8Array([0x37, 0xfa, 0x21, 0x3d]),
    payload: new TextEncoder().encode("Hello"),
  });
  const text = describe("hello", wire, "client");
  for (
    const part of [
      "FIN    1",
      "opcode 0x1  text",
      "MASK   1",
      "length 5 (7-bit form)",
      "mask key 37 fa 21 3d",
      "payload  7f 9f 4d 51 58",
    ]
  ) {
    if (!text.includes(part)) throw new Error(`missing "${part}" in:\n${text}`);
  }
});

Deno.test("the chat serves its page and broadcasts to every member", async () => {
  const chat = startChat({ port: 0 });
  const page = await fetch(chat.url);
  assertEquals(page.status, 200);
  assertStringIncludes(await page.text(), "<title>websocket-streams chat");
  const notWs = await fetch(new URL("/ws", chat.url));
  assertEquals(notWs.status, 426);
  await notWs.body?.cancel();

  const wsUrl = new URL("/ws", chat.url).href.replace("http", "ws");
  const alice = await connect(wsUrl);
  const aliceIn = alice.readable.getReader();
  const next = async (reader: ReadableStreamDefaultReader<unknown>) =>
    JSON.parse((await reader.read()).value as string);
  assertEquals(await next(aliceIn), { from: "server", text: "guest-1 joined" });
  const bob = await connect(wsUrl);
  const bobIn = bob.readable.getReader();
  assertEquals(await next(bobIn), { from: "server", text: "guest-2 joined" });
  assertEquals(await next(aliceIn), { from: "server", text: "guest-2 joined" });
  assertEquals(chat.members, 2);

  const aliceOut = alice.writable.getWriter();
  await aliceOut.write("hello, room");
  assertEquals(await next(aliceIn), { from: "guest-1", text: "hello, room" });
  assertEquals(await next(bobIn), { from: "guest-1", text: "hello, room" });

  bobIn.releaseLock();
  bob.close({ closeCode: 1000 });
  await bob.closed;
  assertEquals(await next(aliceIn), { from: "server", text: "guest-2 left" });

  aliceIn.releaseLock();
  aliceOut.releaseLock();
  await chat.shutdown();
  assertEquals(await alice.closed, {
    closeCode: 1001,
    reason: "server shutting down",
  });
});

Deno.test("pipeLines sends each line and prints each answer", async () => {
  const server = startEchoServer(0, "127.0.0.1", () => {});
  const connection = await connect(`ws://127.0.0.1:${server.addr.port}/`);
  const chunks: Uint8Array[] = [];
  const info = await pipeLines(
    connection,
    // A line split across chunks, and a last line with no newline.
    ReadableStream.from(["first li", "ne\nsecond\nκόσμε", "\nlast"])
      .pipeThrough(
        new TextEncoderStream(),
      ),
    new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
    100,
  );
  assertEquals(info, { closeCode: 1000, reason: "stdin ended" });
  assertEquals(
    new TextDecoder().decode(concat(...chunks)),
    "first line\nsecond\nκόσμε\nlast\n",
  );
  await server.shutdown();
});

Deno.test("examples/pipe.ts pipes stdin through its embedded echo server", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/pipe.ts", "--linger", "100"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("one\ntwo\nthree\n"));
  await writer.close();
  const output = await child.output();
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(new TextDecoder().decode(output.stdout), "one\ntwo\nthree\n");
  assertStringIncludes(stderr, 'closed: 1000 "stdin ended"');
  assertEquals(output.code, 0, stderr);
});

Deno.test("examples/echo_server.ts takes --port and prints one line", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/echo_server.ts", "--port", "0"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TextLineStream(),
  );
  const reader = lines.getReader();
  const line = String((await reader.read()).value);
  const match = /^echo server listening on (ws:\/\/127\.0\.0\.1:\d+\/)$/.exec(
    line,
  );
  if (!match) throw new Error(`unexpected first line: ${line}`);
  const echoes = await echoExchange(match[1]!, ["over a child"], () => {});
  assertEquals(echoes, ["over a child"]);
  child.kill("SIGINT");
  assertEquals((await child.status).code, 0);
  reader.releaseLock();
  await lines.cancel();
});
