import { assert, assertEquals, assertThrows } from "@std/assert";
import type { WebSocketErrorCode } from "../mod.ts";
import {
  encodeMessage,
  FrameDecoderStream,
  MessageAssembler,
  MessageDecoderStream,
  MessageEncoderStream,
  Opcode,
} from "../lib/codec/mod.ts";
import {
  assertWsError,
  concat,
  decodeMessages,
  hex,
  prng,
  randInt,
  randomBytes,
  rawFrame,
  splitName,
  SPLITS,
  thrown,
} from "./_helpers.ts";

const te = new TextEncoder();
const KEY = hex("37 fa 21 3d");

Deno.test("reassembles fragments and lets interleaved control frames through at once", async (t) => {
  const wire = concat(
    rawFrame(0x01, te.encode("Hel")),
    rawFrame(0x89, te.encode("p1")),
    rawFrame(0x00, te.encode("l")),
    rawFrame(0x8a, te.encode("p2")),
    rawFrame(0x80, te.encode("o")),
    rawFrame(0x02, new Uint8Array([1])),
    rawFrame(0x80, new Uint8Array([2, 3])),
    rawFrame(0x88, hex("03 e8 62 79 65")),
  );
  for (const split of SPLITS) {
    await t.step(splitName(split), async () => {
      const { items, error } = await decodeMessages(wire, split, {
        role: "client",
      });
      assertEquals(error, undefined);
      assertEquals(items, [
        { type: "ping", data: te.encode("p1") },
        { type: "pong", data: te.encode("p2") },
        { type: "text", data: "Hello" },
        { type: "binary", data: new Uint8Array([1, 2, 3]) },
        { type: "close", closeCode: 1000, reason: "bye" },
      ]);
    });
  }
});

Deno.test("empty messages, an empty close, and a leading BOM are kept", async () => {
  const wire = concat(
    rawFrame(0x81, new Uint8Array(0)),
    rawFrame(0x82, new Uint8Array(0)),
    rawFrame(0x01, new Uint8Array(0)),
    rawFrame(0x80, new Uint8Array(0)),
    rawFrame(0x81, hex("ef bb bf 41")),
    rawFrame(0x88, new Uint8Array(0)),
  );
  const { items, error } = await decodeMessages(wire, "bytes", {
    role: "client",
  });
  assertEquals(error, undefined);
  assertEquals(items, [
    { type: "text", data: "" },
    { type: "binary", data: new Uint8Array(0) },
    { type: "text", data: "" },
    { type: "text", data: "\ufeffA" },
    { type: "close", closeCode: 1005, reason: "" },
  ]);
});

const VIOLATIONS: {
  name: string;
  wire: Uint8Array;
  code: WebSocketErrorCode;
  maxMessageSize?: number;
  maxFragments?: number;
}[] = [
  {
    name: "a continuation with no message open",
    wire: rawFrame(0x80, te.encode("x")),
    code: "ERR_UNEXPECTED_CONTINUATION",
  },
  {
    name: "a new text frame inside an unfinished message",
    wire: concat(
      rawFrame(0x01, te.encode("a")),
      rawFrame(0x81, te.encode("b")),
    ),
    code: "ERR_EXPECTED_CONTINUATION",
  },
  {
    name: "a new binary frame inside an unfinished message",
    wire: concat(
      rawFrame(0x02, te.encode("a")),
      rawFrame(0x02, te.encode("b")),
    ),
    code: "ERR_EXPECTED_CONTINUATION",
  },
  {
    name: "a message over maxMessageSize, summed over fragments",
    wire: concat(
      rawFrame(0x02, new Uint8Array(60)),
      rawFrame(0x00, new Uint8Array(60)),
      rawFrame(0x80, new Uint8Array(60)),
    ),
    code: "ERR_MESSAGE_TOO_LARGE",
    maxMessageSize: 100,
  },
  {
    name: "a message of more than maxFragments frames",
    wire: concat(
      rawFrame(0x02, new Uint8Array(1)),
      rawFrame(0x00, new Uint8Array(1)),
      rawFrame(0x00, new Uint8Array(1)),
      rawFrame(0x80, new Uint8Array(1)),
    ),
    code: "ERR_TOO_MANY_FRAGMENTS",
    maxFragments: 3,
  },
  {
    name: "a stream that ends inside a fragmented message",
    wire: rawFrame(0x01, te.encode("a")),
    code: "ERR_TRUNCATED_MESSAGE",
  },
  {
    name: "a close frame with a 1-byte body",
    wire: rawFrame(0x88, new Uint8Array([3])),
    code: "ERR_INVALID_CLOSE_BODY",
  },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
    name: `a close frame with code ${code}`,
    wire: rawFrame(0x88, new Uint8Array([code >> 8, code & 255])),
    code: "ERR_INVALID_CLOSE_CODE" as const,
  })),
  {
    name: "a close frame whose reason is not UTF-8",
    wire: rawFrame(0x88, hex("03 e8 ff")),
    code: "ERR_INVALID_UTF8",
  },
];

Deno.test("each message-level violation fails with its close code", async (t) => {
  for (const v of VIOLATIONS) {
    for (const split of SPLITS) {
      await t.step(`${v.name}, ${splitName(split)}`, async () => {
        const { error } = await decodeMessages(v.wire, split, {
          role: "client",
          maxMessageSize: v.maxMessageSize,
          maxFragments: v.maxFragments,
        });
        assertWsError(error, v.code);
      });
    }
  }
});

Deno.test("maxMessageSize is decided from the header, before the payload arrives", () => {
  const seen: unknown[] = [];
  const assembler = new MessageAssembler({ maxMessageSize: 1000 }, {
    message: (data) => seen.push(data),
    control: () => {},
  });
  assembler.push(
    { fin: false, opcode: Opcode.Binary, payloadLength: 600 },
    new Uint8Array(600),
    0,
  );
  // The second frame declares 600 more: refused with none of its bytes.
  const error = thrown(() =>
    assembler.push(
      { fin: true, opcode: 0, payloadLength: 600 },
      new Uint8Array(0),
      0,
    )
  );
  assertWsError(error, "ERR_MESSAGE_TOO_LARGE", 1009);
  assertEquals(seen, []);
});

Deno.test("100,000 fragments of 16 bytes make one message (ws refuses past 16,384)", async () => {
  const fragment = new Uint8Array(16).fill(9);
  const parts = [rawFrame(0x02, fragment)];
  for (let i = 1; i < 99_999; i++) parts.push(rawFrame(0x00, fragment));
  parts.push(rawFrame(0x80, fragment));
  const { items, error } = await decodeMessages(concat(...parts), "whole", {
    role: "client",
  });
  assertEquals(error, undefined);
  assertEquals(items.length, 1);
  const message = items[0]!;
  if (message.type !== "binary") throw new Error("expected binary");
  assertEquals(message.data.length, 1_600_000);
  assert(message.data.every((b) => b === 9));
});

Deno.test("UTF-8 validation", async (t) => {
  const valid: [string, string][] = [
    ["ASCII", "48 65 6c 6c 6f"],
    ["2-byte U+00E9", "c3 a9"],
    ["3-byte U+20AC", "e2 82 ac"],
    ["4-byte U+1F600", "f0 9f 98 80"],
    ["the largest code point U+10FFFF", "f4 8f bf bf"],
    ["U+D7FF, just below the surrogates", "ed 9f bf"],
    ["U+E000, just above the surrogates", "ee 80 80"],
    ["U+FFFF", "ef bf bf"],
    ["κόσμε", "ce ba e1 bd b9 cf 83 ce bc ce b5"],
  ];
  const invalid: [string, string][] = [
    ["overlong NUL C0 80", "c0 80"],
    ["overlong C1 BF", "c1 bf"],
    ["overlong 3-byte E0 80 AF", "e0 80 af"],
    ["overlong 4-byte F0 80 80 AF", "f0 80 80 af"],
    ["surrogate ED A0 80 (U+D800)", "ed a0 80"],
    ["surrogate ED BF BF (U+DFFF)", "ed bf bf"],
    ["above U+10FFFF: F4 90 80 80", "f4 90 80 80"],
    ["F5 lead byte", "f5 80 80 80"],
    ["FF byte", "ff"],
    ["stray continuation", "80"],
    ["lead byte then ASCII", "e2 41"],
    ["truncated at the end of the message", "e2 82"],
    ["truncated 4-byte at the end", "f0 9f 98"],
  ];
  for (const [name, bytes] of valid) {
    await t.step(`valid: ${name}`, async () => {
      const payload = hex(bytes);
      // As one frame, and as one fragment per byte.
      const single = rawFrame(0x81, payload);
      const fragmented = concat(
        ...Array.from(payload, (b, i) =>
          rawFrame(
            (i === 0 ? 0x01 : 0x00) | (i === payload.length - 1 ? 0x80 : 0),
            new Uint8Array([b]),
          )),
      );
      for (const wire of [single, fragmented]) {
        for (const split of SPLITS) {
          const { items, error } = await decodeMessages(wire, split, {
            role: "client",
          });
          assertEquals(error, undefined);
          assertEquals(items, [{
            type: "text",
            data: new TextDecoder().decode(payload),
          }]);
        }
      }
    });
  }
  for (const [name, bytes] of invalid) {
    await t.step(`invalid: ${name}`, async () => {
      const payload = hex(bytes);
      for (const split of SPLITS) {
        const { error } = await decodeMessages(rawFrame(0x81, payload), split, {
          role: "client",
        });
        assertWsError(error, "ERR_INVALID_UTF8", 1007);
        const fragmented = concat(
          rawFrame(0x01, payload),
          rawFrame(0x80, new Uint8Array(0)),
        );
        const second = await decodeMessages(fragmented, split, {
          role: "client",
        });
        assertWsError(second.error, "ERR_INVALID_UTF8", 1007);
      }
    });
  }
});

// The stream must fail on the invalid byte without the rest of the message:
// only the prefix is written and the writable is never closed.
async function failsOnPrefix(prefix: Uint8Array, role: "client" | "server") {
  const frames = new FrameDecoderStream({ role, partial: true });
  const messages = new MessageDecoderStream();
  const readable = frames.readable.pipeThrough(messages);
  const writer = frames.writable.getWriter();
  const reader = readable.getReader();
  const read = reader.read();
  // One byte per write, as if each came in its own TCP read.
  for (const byte of prefix) {
    await writer.write(new Uint8Array([byte])).catch(() => {});
  }
  const error = await read.then(() => undefined, (e) => e);
  writer.releaseLock();
  reader.releaseLock();
  return error;
}

Deno.test("invalid UTF-8 fails before the rest of the message is fed", async (t) => {
  await t.step(
    "in the middle of a 1 MiB frame that is still arriving",
    async () => {
      // The header declares 1 MiB; only 100 payload bytes follow, the 90th bad.
      const payload = new Uint8Array(100).fill(0x61);
      payload[90] = 0xff;
      const header = hex("81 7f 00 00 00 00 00 10 00 00");
      const error = await failsOnPrefix(concat(header, payload), "client");
      assertWsError(error, "ERR_INVALID_UTF8", 1007);
    },
  );
  await t.step(
    "a surrogate split across masked reads of a fragment",
    async () => {
      const first = rawFrame(0x01, te.encode("first fragment "), KEY);
      // The second fragment declares 1,000 bytes; 6 arrive, the bad ones last.
      const second = rawFrame(
        0x00,
        concat(te.encode("ok "), hex("ed a0 80"), new Uint8Array(994)),
        KEY,
      );
      const prefix = concat(first, second.subarray(0, 8 + 6));
      const error = await failsOnPrefix(prefix, "server");
      assertWsError(error, "ERR_INVALID_UTF8", 1007);
    },
  );
  await t.step(
    "directly on the assembler: the piece that holds the byte throws",
    () => {
      const assembler = new MessageAssembler({}, {
        message: () => {},
        control: () => {},
      });
      const header = { fin: true, opcode: Opcode.Text, payloadLength: 1 << 20 };
      assembler.push(header, te.encode("valid so far "), 0);
      assertThrows(
        () => assembler.push(header, hex("c0 80"), 13),
        Error,
        "invalid UTF-8",
      );
    },
  );
});

Deno.test("MessageEncoderStream round-trips control messages and refuses bad input", async () => {
  const messages = [
    { type: "ping" as const, data: new Uint8Array([1]) },
    { type: "close" as const, closeCode: 4000, reason: "done" },
  ];
  const frames = await Array.fromAsync(
    ReadableStream.from(messages).pipeThrough(new MessageEncoderStream()),
  );
  assertEquals(frames.map((f) => f.opcode), [Opcode.Ping, Opcode.Close]);
  assertEquals(frames[1]!.payload, concat(hex("0f a0"), te.encode("done")));
  assertThrows(() => encodeMessage(42 as unknown as string), TypeError);
  assertThrows(() => encodeMessage("x", { fragmentSize: 0 }), RangeError);
  assertThrows(
    () => new MessageEncoderStream({ fragmentSize: -1 }),
    RangeError,
  );
  assertThrows(
    () => encodeMessage({ type: "close", closeCode: 1006, reason: "" }),
    RangeError,
  );
  assertThrows(
    () => new MessageDecoderStream({ maxMessageSize: -1 }),
    RangeError,
  );
});

Deno.test("reserve() gives room in the message's buffer, and a piece read there is kept uncopied", () => {
  for (const opcode of [Opcode.Binary, Opcode.Text]) {
    const seen: (string | Uint8Array)[] = [];
    const assembler = new MessageAssembler({}, {
      message: (data) => seen.push(data),
      control: () => {},
    });
    assertEquals(assembler.reserve(10), undefined, "no message in progress");
    const header = { fin: true, opcode, payloadLength: 300_000 };
    assembler.push(header, te.encode("a".repeat(1000)), 0);
    // The rest goes in two reads "into" the reserved views.
    let offset = 1000;
    for (const size of [200_000, 99_000]) {
      const room = assembler.reserve(300_000 - offset)!;
      assertEquals(room.length, 300_000 - offset);
      room.set(te.encode("b".repeat(size)));
      assembler.push(header, room.subarray(0, size), offset);
      offset += size;
    }
    assertEquals(seen.length, 1);
    const expected = "a".repeat(1000) + "b".repeat(299_000);
    assertEquals(
      seen[0],
      opcode === Opcode.Text ? expected : te.encode(expected),
    );
    assertEquals(assembler.reserve(10), undefined, "message done");
  }
});

Deno.test("seeded: with copy and shareBuffers, kept payloads stay exact in shared buffers", async (t) => {
  // The caller reuses one buffer for every piece, as a socket read loop
  // does, and scribbles over it after each push: a kept payload that still
  // pointed into it, or a slab handed out twice, would change.
  const run = (shareBuffers: boolean, seed: number) => {
    const random = prng(seed);
    const kept: Uint8Array[] = [];
    const sent: Uint8Array[] = [];
    const assembler = new MessageAssembler({ copy: true, shareBuffers }, {
      message: (data) => kept.push(data as Uint8Array),
      control: (_opcode, data) => kept.push(data),
    });
    const reused = new Uint8Array(1024);
    let transferDue = false;
    let transfers = 0;
    for (let i = 0; i < 500; i++) {
      const length = randInt(random, 700);
      const payload = randomBytes(random, length);
      reused.set(payload);
      const opcode = random() < 0.1 ? Opcode.Ping : Opcode.Binary;
      assembler.push(
        { fin: true, opcode, payloadLength: length },
        reused.subarray(0, length),
        0,
      );
      reused.fill(0xee);
      sent.push(payload);
      // The application transfers the buffer of a small payload now and
      // then, the slab in use when shared: what follows must still be
      // whole (a detached slab has byteLength 0).
      if (i % 131 === 130) transferDue = true;
      if (transferDue && length > 0 && length <= 512) {
        (kept[i]!.buffer as ArrayBuffer).transfer();
        transferDue = false;
        transfers++;
      }
    }
    assertEquals(transfers, 3);
    return { kept, sent };
  };
  await t.step(
    "shared: small payloads share 2 KiB buffers at multiples of 8",
    () => {
      const { kept, sent } = run(true, 7);
      const buffers = new Set<ArrayBufferLike>();
      for (let i = 0; i < sent.length; i++) {
        const data = kept[i]!;
        if (data.buffer.byteLength === 0) continue; // transferred by the test
        assertEquals(data, sent[i]);
        if (sent[i]!.length > 512) {
          assertEquals(data.byteOffset, 0);
          assertEquals(data.buffer.byteLength, sent[i]!.length);
        } else {
          assertEquals(data.byteOffset % 8, 0);
          assertEquals(data.buffer.byteLength, 2048);
          buffers.add(data.buffer);
        }
      }
      // ~365 payloads of 0-512 B (about 256 B each, padded) fill 2 KiB slabs
      // several at a time.
      assert(buffers.size < 120, `${buffers.size} slabs`);
    },
  );
  await t.step("not shared: every payload owns its buffer", () => {
    const { kept, sent } = run(false, 8);
    for (let i = 0; i < sent.length; i++) {
      if (kept[i]!.buffer.byteLength === 0) continue;
      assertEquals(kept[i], sent[i]);
      assertEquals(kept[i]!.buffer.byteLength, sent[i]!.length);
    }
  });
});
