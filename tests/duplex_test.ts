// One engine under every face: the connection over TCP, the public duplex
// stream and the codec streams put the same bytes on the wire for the same
// messages; the duplex hands out bytes that stay its reader's; the message
// decoder inflates RSV1 messages with the extension and fails without it.

import { assert, assertEquals } from "@std/assert";
import { constants, deflateRawSync } from "node:zlib";
import { type WebSocketConnection, WebSocketDuplex } from "../mod.ts";
import { TransportWebSocket } from "../lib/net/connection.ts";
import {
  FrameDecoderStream,
  FrameEncoderStream,
  MessageDecoderStream,
  MessageEncoderStream,
  type Role,
  type WebSocketMessage,
} from "../lib/codec/mod.ts";
import {
  assertWsError,
  concat,
  prng,
  randInt,
  randomBytes,
  rawFrame,
} from "./_helpers.ts";

const KEY = new Uint8Array([9, 8, 7, 6]);

/** What one face sends for a script: messages, pings, then a close. */
type Step =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; data: Uint8Array };

function script(seed: number): Step[] {
  const random = prng(seed);
  const steps: Step[] = [];
  const count = 1 + randInt(random, 12);
  for (let i = 0; i < count; i++) {
    const kind = randInt(random, 10);
    // Sizes from 0 B to 1 MiB, most of them small.
    const size = kind === 0
      ? randInt(random, 1 << 20)
      : kind < 3
      ? randInt(random, 70000)
      : randInt(random, 300);
    if (kind % 3 === 0) {
      steps.push({
        type: "ping",
        data: randomBytes(random, randInt(random, 126)),
      });
    } else if (kind % 3 === 1) {
      // ASCII and multi-byte text.
      let text = "";
      for (let j = 0; j < size; j++) {
        const c = randInt(random, 20);
        text += c === 0 ? "é" : c === 1 ? "€" : c === 2 ? "😀" : "a";
      }
      steps.push({ type: "text", data: text });
    } else {
      steps.push({ type: "binary", data: randomBytes(random, size) });
    }
  }
  return steps;
}

/** Plays a script on a connection's face, then closes with 4000. */
async function play(connection: WebSocketConnection, steps: Step[]) {
  const writer = connection.writable.getWriter();
  for (const step of steps) {
    if (step.type === "ping") connection.ping(step.data).catch(() => {});
    else await writer.write(step.data);
  }
  writer.releaseLock();
  connection.close({ closeCode: 4000, reason: "end of script" });
}

/** Whether `bytes` hold a whole close frame, walking the frame headers. */
function hasCloseFrame(bytes: Uint8Array): boolean {
  let pos = 0;
  while (pos + 2 <= bytes.length) {
    const opcode = bytes[pos]! & 15;
    let length = bytes[pos + 1]! & 127;
    let at = pos + 2;
    if (length === 126) {
      if (at + 2 > bytes.length) return false;
      length = (bytes[at]! << 8) | bytes[at + 1]!;
      at += 2;
    } else if (length === 127) {
      if (at + 8 > bytes.length) return false;
      length = Number(
        new DataView(bytes.buffer, bytes.byteOffset + at).getBigUint64(0),
      );
      at += 8;
    }
    if (bytes[pos + 1]! & 0x80) at += 4;
    if (at + length > bytes.length) return false;
    if (opcode === 0x8) return true;
    pos = at + length;
  }
  return false;
}

/** Reads bytes until a whole close frame has come out. */
async function readUntilCloseFrame(
  readable: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  let bytes: Uint8Array = new Uint8Array(0);
  const reader = readable.getReader();
  while (!hasCloseFrame(bytes)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("ended before the close frame");
    bytes = concat(bytes, value);
  }
  reader.releaseLock();
  return bytes;
}

/** The close frame a peer of `role` answers with (masked from a client). */
function closeAnswer(role: Role): Uint8Array {
  const body = new Uint8Array([0x0f, 0xa0]);
  return role === "server" ? rawFrame(0x88, body, KEY) : rawFrame(0x88, body);
}

/** The wire bytes of a script from a connection over real TCP. */
async function overTcp(steps: Step[], role: Role, fragmentSize: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peerConn = Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const ours = await listener.accept();
  listener.close();
  const peer = await peerConn;
  const connection = new TransportWebSocket(ours, {
    role,
    fragmentSize,
    perMessageDeflate: undefined,
  });
  connection.readable.pipeTo(new WritableStream()).catch(() => {});
  const playing = play(connection, steps);
  const bytes = await readUntilCloseFrame(peer.readable);
  await playing;
  await peer.write(closeAnswer(role));
  // RFC 6455 §7.1.1: the server ends TCP (here the peer, for a client).
  if (role === "client") peer.close();
  await connection.closed;
  if (role === "server") peer.close();
  return bytes;
}

/** The same from the public duplex stream. */
async function overDuplex(steps: Step[], role: Role, fragmentSize: number) {
  const duplex = new WebSocketDuplex({ role, fragmentSize });
  const connection = duplex.connection;
  connection.readable.pipeTo(new WritableStream()).catch(() => {});
  const playing = play(connection, steps);
  const bytes = await readUntilCloseFrame(duplex.readable);
  await playing;
  const writer = duplex.writable.getWriter();
  await writer.write(closeAnswer(role));
  if (role === "client") await writer.close();
  await connection.closed;
  if (role === "server") await writer.close().catch(() => {});
  await duplex.readable.cancel();
  return bytes;
}

/** The same through the codec streams. */
async function overCodec(steps: Step[], role: Role, fragmentSize: number) {
  const messages: WebSocketMessage[] = [
    ...steps,
    { type: "close", closeCode: 4000, reason: "end of script" },
  ];
  const chunks = await Array.fromAsync(
    ReadableStream.from(messages)
      .pipeThrough(new MessageEncoderStream({ fragmentSize }))
      .pipeThrough(new FrameEncoderStream({ role })),
  );
  return concat(...chunks);
}

/** The frames of wire bytes from `role`, unmasked, as comparable values. */
async function framesOf(bytes: Uint8Array, role: Role) {
  const frames = await Array.fromAsync(
    ReadableStream.from([bytes.slice()]).pipeThrough(
      new FrameDecoderStream({
        role: role === "server" ? "client" : "server",
        maxFrameSize: Infinity,
      }),
    ),
  );
  return frames.map((f) => [f.fin, f.opcode, f.rsv1, [...f.payload].join()]);
}

async function messagesOf(bytes: Uint8Array, role: Role) {
  return await Array.fromAsync(
    ReadableStream.from([bytes.slice()])
      .pipeThrough(
        new FrameDecoderStream({
          role: role === "server" ? "client" : "server",
          maxFrameSize: Infinity,
        }),
      )
      .pipeThrough(new MessageDecoderStream({ maxMessageSize: Infinity })),
  );
}

Deno.test("seeded: the connection, the duplex and the codec streams send the same frames", async (t) => {
  for (let seed = 1; seed <= 16; seed++) {
    const role: Role = seed % 2 ? "server" : "client";
    const fragmentSize = seed % 4 < 2 ? Infinity : 1 + (seed * 977) % 40000;
    await t.step(
      `seed ${seed}, ${role}, fragmentSize ${fragmentSize}`,
      async () => {
        const steps = script(seed);
        const tcp = await overTcp(steps, role, fragmentSize);
        const duplex = await overDuplex(steps, role, fragmentSize);
        const codec = await overCodec(steps, role, fragmentSize);
        if (role === "server") {
          // No masking: byte for byte.
          assertEquals(duplex, tcp);
          assertEquals(codec, tcp);
        } else {
          // Each client frame has a fresh key: compare the frames unmasked.
          const frames = await framesOf(tcp, role);
          assertEquals(await framesOf(duplex, role), frames);
          assertEquals(await framesOf(codec, role), frames);
        }
        // And they decode to the script, then the close.
        const expected: unknown[] = steps.map((s) =>
          s.type === "ping" ? { type: "ping", data: s.data } : s
        );
        expected.push({
          type: "close",
          closeCode: 4000,
          reason: "end of script",
        });
        assertEquals(await messagesOf(tcp, role), expected);
      },
    );
  }
});

Deno.test("a connection over a byte pair hands out bytes that stay the reader's", async () => {
  // The reader holds every chunk and reads them only at the end: a chunk
  // that is a view of a pooled block would change as the block is reused.
  const duplex = new WebSocketDuplex({ role: "server" });
  const held: Uint8Array[] = [];
  const collecting = duplex.readable.pipeTo(
    new WritableStream({ write: (chunk) => void held.push(chunk) }),
  );
  const writer = duplex.connection.writable.getWriter();
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const message = new Uint8Array(100 + i).fill(i);
    sent.push(message);
    await writer.write(message);
    // A turn between writes: one socket write (and block) each.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  writer.releaseLock();
  duplex.connection.close();
  const answer = duplex.writable.getWriter();
  await answer.write(rawFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
  await duplex.connection.closed;
  await answer.close().catch(() => {});
  await collecting.catch(() => {});
  const got = await messagesOf(concat(...held), "server");
  assertEquals(
    got.filter((m) => m.type === "binary").map((m) => m.data),
    sent,
  );
});

Deno.test("the wire's pipes resolve on a clean close and reject on a failure", async (t) => {
  await t.step("clean", async () => {
    const client = new WebSocketDuplex({ role: "client" });
    const server = new WebSocketDuplex({ role: "server" });
    const wire = Promise.all([
      client.readable.pipeTo(server.writable),
      server.readable.pipeTo(client.writable),
    ]);
    server.connection.readable.pipeTo(server.connection.writable);
    client.connection.close({ closeCode: 1000 });
    await client.connection.closed;
    await wire;
  });

  await t.step("failed", async () => {
    // A short linger: the peer here never ends its side.
    const server = new WebSocketDuplex({ role: "server", closeTimeout: 100 });
    server.connection.closed.catch(() => {});
    const out = server.readable.pipeTo(new WritableStream());
    // An unmasked frame from a client: 1002; what follows is refused.
    const writer = server.writable.getWriter();
    await writer.write(rawFrame(0x81, new Uint8Array([0x68, 0x69])));
    await server.connection.closed.catch(() => {});
    const error = await writer.write(new Uint8Array(4)).then(
      () => undefined,
      (e) => e,
    );
    assertWsError(error, "ERR_EXPECTED_MASK", 1002);
    await out;
    writer.releaseLock();
  });
});

Deno.test("MessageDecoderStream: RSV1 fails with 1002 without the extension, inflates with it", async (t) => {
  const compressed = (text: string) => {
    const bytes = deflateRawSync(new TextEncoder().encode(text), {
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    // RFC 7692 §7.2.1: the sender strips the final 00 00 ff ff.
    return new Uint8Array(bytes.subarray(0, bytes.length - 4));
  };
  const frame = (payload: Uint8Array, rsv1: boolean) => ({
    fin: true,
    rsv1,
    rsv2: false,
    rsv3: false,
    opcode: 0x1,
    payload,
  });

  await t.step("without the extension", async () => {
    const error = await Array.fromAsync(
      ReadableStream.from([frame(compressed("Hello"), true)])
        .pipeThrough(new MessageDecoderStream()),
    ).catch((e) => e);
    assertWsError(error, "ERR_UNEXPECTED_RSV", 1002);
  });

  await t.step("RSV2 fails with 1002 either way", async () => {
    const error = await Array.fromAsync(
      ReadableStream.from([{ ...frame(new Uint8Array(1), false), rsv2: true }])
        .pipeThrough(new MessageDecoderStream({ inflate: {} })),
    ).catch((e) => e);
    assertWsError(error, "ERR_UNEXPECTED_RSV", 1002);
  });

  await t.step("with the extension, in order with plain messages", async () => {
    const messages = await Array.fromAsync(
      ReadableStream.from([
        frame(compressed("Hello"), true),
        frame(new TextEncoder().encode("plain"), false),
        frame(compressed("again ".repeat(100)), true),
      ]).pipeThrough(
        // Each message is a zlib stream of its own here.
        new MessageDecoderStream({ inflate: { noContextTakeover: true } }),
      ),
    );
    assertEquals(messages, [
      { type: "text", data: "Hello" },
      { type: "text", data: "plain" },
      { type: "text", data: "again ".repeat(100) },
    ]);
  });

  await t.step(
    "an inflated message over maxMessageSize fails with 1009",
    async () => {
      const error = await Array.fromAsync(
        ReadableStream.from([frame(compressed("x".repeat(5000)), true)])
          .pipeThrough(
            new MessageDecoderStream({ inflate: {}, maxMessageSize: 1000 }),
          ),
      ).catch((e) => e);
      assertWsError(error, "ERR_MESSAGE_TOO_LARGE", 1009);
    },
  );
  assert(true);
});
