import { assertEquals } from "@std/assert";
import { echoExchange } from "../examples/echo_client.ts";
import { startEchoServer } from "../examples/echo_server.ts";
import { describe } from "../examples/frame_dump.ts";
import { encodeFrame } from "../mod.ts";

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
