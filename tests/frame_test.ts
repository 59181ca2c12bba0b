import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "@std/assert";
import type { WebSocketErrorCode } from "../mod.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameEncoderStream,
  FrameParser,
  Opcode,
  type Role,
} from "../lib/codec/mod.ts";
import {
  assertWsError,
  concat,
  decodeFrames,
  hex,
  rawFrame,
  splitName,
  SPLITS,
} from "./_helpers.ts";

const KEY = hex("37 fa 21 3d");
const HELLO = new TextEncoder().encode("Hello");

function frame(
  opcode: Opcode,
  payload: Uint8Array,
  fin = true,
  mask?: Uint8Array,
): Frame {
  return { fin, rsv1: false, rsv2: false, rsv3: false, opcode, mask, payload };
}

// RFC 6455 §5.7, byte for byte.
const RFC_EXAMPLES: {
  name: string;
  wire: Uint8Array;
  role: Role; // the receiver's role
  frames: Frame[];
}[] = [
  {
    name: "a single-frame unmasked text message",
    wire: hex("81 05 48 65 6c 6c 6f"),
    role: "client",
    frames: [frame(Opcode.Text, HELLO)],
  },
  {
    name: "a single-frame masked text message",
    wire: hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
    role: "server",
    frames: [frame(Opcode.Text, HELLO, true, KEY)],
  },
  {
    name: "a fragmented unmasked text message",
    wire: hex("01 03 48 65 6c 80 02 6c 6f"),
    role: "client",
    frames: [
      frame(Opcode.Text, HELLO.subarray(0, 3), false),
      frame(Opcode.Continuation, HELLO.subarray(3)),
    ],
  },
  {
    name: "an unmasked ping",
    wire: hex("89 05 48 65 6c 6c 6f"),
    role: "client",
    frames: [frame(Opcode.Ping, HELLO)],
  },
  {
    name: "a masked pong",
    wire: hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
    role: "server",
    frames: [frame(Opcode.Pong, HELLO, true, KEY)],
  },
  {
    name: "256 bytes of binary in one unmasked frame",
    wire: concat(hex("82 7e 01 00"), new Uint8Array(256).fill(0xab)),
    role: "client",
    frames: [frame(Opcode.Binary, new Uint8Array(256).fill(0xab))],
  },
  {
    name: "64 KiB of binary in one unmasked frame",
    wire: concat(
      hex("82 7f 00 00 00 00 00 01 00 00"),
      new Uint8Array(65536).fill(0xcd),
    ),
    role: "client",
    frames: [frame(Opcode.Binary, new Uint8Array(65536).fill(0xcd))],
  },
];

function shape(f: Frame) {
  return {
    fin: f.fin,
    rsv1: f.rsv1,
    rsv2: f.rsv2,
    rsv3: f.rsv3,
    opcode: f.opcode,
    mask: f.mask ? Array.from(f.mask) : undefined,
    payload: Array.from(f.payload),
  };
}

Deno.test("RFC 6455 §5.7 examples", async (t) => {
  for (const example of RFC_EXAMPLES) {
    await t.step(`encode ${example.name}`, () => {
      const encoded = concat(...example.frames.map(encodeFrame));
      assertEquals(encoded, example.wire);
    });
    await t.step(`decodeFrame() ${example.name}`, () => {
      let rest = example.wire;
      const frames: Frame[] = [];
      while (rest.length > 0) {
        const result = decodeFrame(rest, { role: example.role });
        if (!result) throw new Error("a whole frame is in the buffer");
        frames.push(result.frame);
        rest = rest.subarray(result.byteLength);
      }
      assertEquals(frames.map(shape), example.frames.map(shape));
    });
    for (const split of SPLITS) {
      await t.step(`decode ${example.name}, ${splitName(split)}`, async () => {
        const { items, error } = await decodeFrames(example.wire, split, {
          role: example.role,
        });
        assertEquals(error, undefined);
        assertEquals(items.map(shape), example.frames.map(shape));
      });
    }
  }
});

Deno.test("decodeFrame() waits for a whole frame and leaves its input alone", () => {
  const wire = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
  const copy = wire.slice();
  for (let n = 0; n < wire.length; n++) {
    assertEquals(
      decodeFrame(wire.subarray(0, n), { role: "server" }),
      undefined,
    );
  }
  assertEquals(decodeFrame(wire, { role: "server" })?.byteLength, 11);
  assertEquals(wire, copy);
});

Deno.test("payload lengths at every boundary of the 7/16/64-bit forms", async (t) => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]) {
    await t.step(`${n} bytes`, async () => {
      const payload = new Uint8Array(n).map((_, i) => i * 7);
      const wire = encodeFrame(frame(Opcode.Binary, payload, true, KEY));
      const expectedHeader = n < 126 ? 6 : n < 65536 ? 8 : 14;
      assertEquals(wire.length, expectedHeader + n);
      for (const split of ["whole" as const, { seed: n }]) {
        const { items, error } = await decodeFrames(wire, split, {
          role: "server",
        });
        assertEquals(error, undefined);
        assertEquals(items.length, 1);
        assertEquals(items[0]!.payload, payload);
      }
    });
  }
});

// Each protocol violation, with the close code and error code it must fail
// with. Wire bytes are built by hand so the encoder's own checks are not in
// the way.
const VIOLATIONS: {
  name: string;
  wire: Uint8Array;
  role: Role;
  code: WebSocketErrorCode;
  closeCode: number;
  maxFrameSize?: number;
  allowedRsv?: number;
}[] = [
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op) => ({
    name: `reserved opcode 0x${op.toString(16)}`,
    wire: rawFrame(0x80 | op, new Uint8Array(0)),
    role: "client" as const,
    code: "ERR_RESERVED_OPCODE" as const,
    closeCode: 1002,
  })),
  ...[0x40, 0x20, 0x10, 0x70].map((bits) => ({
    name: `RSV bits 0x${bits.toString(16)} with no extension`,
    wire: rawFrame(0x80 | bits | 1, HELLO),
    role: "client" as const,
    code: "ERR_UNEXPECTED_RSV" as const,
    closeCode: 1002,
  })),
  {
    name: "RSV2 when only RSV1 is negotiated",
    wire: rawFrame(0x80 | 0x20 | 1, HELLO),
    role: "client",
    code: "ERR_UNEXPECTED_RSV",
    closeCode: 1002,
    allowedRsv: 4,
  },
  {
    name: "an unmasked frame to a server",
    wire: rawFrame(0x81, HELLO),
    role: "server",
    code: "ERR_EXPECTED_MASK",
    closeCode: 1002,
  },
  {
    name: "a masked frame to a client",
    wire: rawFrame(0x81, HELLO, KEY),
    role: "client",
    code: "ERR_UNEXPECTED_MASK",
    closeCode: 1002,
  },
  {
    name: "a ping of 126 bytes",
    wire: rawFrame(0x89, new Uint8Array(126)),
    role: "client",
    code: "ERR_CONTROL_FRAME_TOO_LONG",
    closeCode: 1002,
  },
  {
    name: "a close frame of 126 bytes",
    wire: rawFrame(0x88, new Uint8Array(126), KEY),
    role: "server",
    code: "ERR_CONTROL_FRAME_TOO_LONG",
    closeCode: 1002,
  },
  {
    name: "a fragmented ping",
    wire: rawFrame(0x09, HELLO),
    role: "client",
    code: "ERR_FRAGMENTED_CONTROL_FRAME",
    closeCode: 1002,
  },
  {
    name: "a 64-bit length with its most significant bit set",
    wire: hex("82 7f 80 00 00 00 00 00 00 01 00"),
    role: "client",
    code: "ERR_INVALID_PAYLOAD_LENGTH",
    closeCode: 1002,
  },
  {
    name: "a frame over maxFrameSize, refused from its header",
    // The header declares 1 MiB; not one payload byte follows.
    wire: hex("82 7f 00 00 00 00 00 10 00 00"),
    role: "client",
    code: "ERR_FRAME_TOO_LARGE",
    closeCode: 1009,
    maxFrameSize: 1024,
  },
  {
    name: "a stream that ends inside a frame",
    wire: hex("81 05 48 65"),
    role: "client",
    code: "ERR_TRUNCATED_FRAME",
    closeCode: 1002,
  },
];

Deno.test("each frame-level protocol violation fails with its close code", async (t) => {
  for (const v of VIOLATIONS) {
    for (const split of SPLITS) {
      await t.step(`${v.name}, ${splitName(split)}`, async () => {
        const { error } = await decodeFrames(v.wire, split, {
          role: v.role,
          maxFrameSize: v.maxFrameSize,
          allowedRsv: v.allowedRsv,
        });
        assertWsError(error, v.code, v.closeCode);
      });
    }
  }
});

Deno.test("a negotiated RSV1 passes the frame decoder", async () => {
  const { items, error } = await decodeFrames(rawFrame(0xc1, HELLO), "whole", {
    role: "client",
    allowedRsv: 4,
  });
  assertEquals(error, undefined);
  assert(items[0]!.rsv1);
});

Deno.test("FrameParser hands on pieces as they arrive with partial", () => {
  const pieces: [number, number][] = [];
  const parser = new FrameParser(
    { role: "server", partial: true },
    (header, payload, offset) => {
      pieces.push([offset, payload.length]);
      assertEquals(header.payloadLength, 1000);
    },
  );
  const wire = encodeFrame(
    frame(Opcode.Binary, new Uint8Array(1000), true, KEY),
  );
  parser.push(wire.subarray(0, 100));
  assertEquals(pieces, [[0, 92]]); // 8 header bytes, then the first piece
  assertEquals(parser.idle, false);
  parser.push(wire.subarray(100));
  assertEquals(pieces, [[0, 92], [92, 908]]);
  assert(parser.idle);
});

Deno.test("FrameParser tells which pieces of a text message it found ASCII while unmasking", () => {
  const text = new Uint8Array(300).fill(0x61);
  text.set([0xc3, 0xa9], 250); // "é": the piece holding either byte is not ASCII
  const wire = concat(
    encodeFrame(frame(Opcode.Text, text.subarray(0, 200), false, KEY)),
    encodeFrame(frame(Opcode.Ping, HELLO, true, KEY)),
    encodeFrame(frame(Opcode.Continuation, text.subarray(200), true, KEY)),
    encodeFrame(frame(Opcode.Binary, new Uint8Array(100), true, KEY)),
  );
  for (const size of [1, 7, 64, 108, wire.length]) {
    const seen: { opcode: number; from: number; to: number; ascii: boolean }[] =
      [];
    const parser = new FrameParser(
      { role: "server", partial: true },
      (header, payload, offset, ascii) => {
        const from = offset + (header.opcode === Opcode.Continuation ? 200 : 0);
        seen.push({
          opcode: header.opcode,
          from,
          to: from + payload.length,
          ascii,
        });
      },
    );
    // The parser unmasks in place: each run gets its own copy.
    const bytes = wire.slice();
    for (let at = 0; at < bytes.length; at += size) {
      parser.push(bytes.subarray(at, Math.min(at + size, bytes.length)));
    }
    for (const { opcode, from, to, ascii } of seen) {
      if (opcode === Opcode.Ping) continue;
      if (opcode === Opcode.Binary) {
        assertEquals(ascii, false, "binary pieces are not looked at");
        continue;
      }
      // A piece outside the Wasm read buffers is always checked.
      assertEquals(ascii, to <= 250 || from >= 252, `${size}: ${from}-${to}`);
    }
    assertEquals(
      seen.filter((s) => s.opcode === Opcode.Binary).length > 0,
      true,
    );
  }
});

Deno.test("FrameParser copies only frames that span chunks", () => {
  const wire = concat(rawFrame(0x82, HELLO), rawFrame(0x82, HELLO));
  const seen: Uint8Array[] = [];
  const parser = new FrameParser({ role: "client" }, (_, payload) => {
    seen.push(payload);
  });
  // One frame, then the next one's header and first payload byte.
  parser.push(wire.subarray(0, 10));
  parser.push(wire.subarray(10));
  assertEquals(seen.length, 2);
  assertEquals(seen[0]!.buffer, wire.buffer, "a view of the input");
  assert(seen[1]!.buffer !== wire.buffer, "spanning bytes are copied");
  assertEquals(seen[1], HELLO);
});

Deno.test("FrameEncoderStream", async (t) => {
  const encode = (role: Role, frames: Frame[]) =>
    Array.fromAsync(
      ReadableStream.from(frames).pipeThrough(new FrameEncoderStream({ role })),
    );

  await t.step(
    "a client masks with fresh keys and never changes the payload",
    async () => {
      const payload = new Uint8Array(300).fill(7);
      const chunks = await encode("client", [
        frame(Opcode.Binary, payload),
        frame(Opcode.Binary, payload),
      ]);
      assertEquals(payload, new Uint8Array(300).fill(7));
      assertEquals(chunks.length, 2);
      const keys = chunks.map((c) => Array.from(c.subarray(4, 8)));
      assert(keys[0]!.join() !== keys[1]!.join(), "two frames, two keys");
      for (const bytes of chunks) {
        assertEquals(bytes[1]! & 0x80, 0x80);
        const decoded = decodeFrame(bytes, { role: "server" });
        assertEquals(decoded?.frame.payload, payload);
      }
    },
  );

  await t.step("a server writes a small frame as one chunk", async () => {
    const chunks = await encode("server", [frame(Opcode.Text, HELLO)]);
    assertEquals(chunks, [hex("81 05 48 65 6c 6c 6f")]);
  });

  await t.step("a server passes a large payload on uncopied", async () => {
    // Over the 16 KiB up to which a payload is copied in with its header.
    const payload = new Uint8Array(16 * 1024 + 1);
    const chunks = await encode("server", [frame(Opcode.Binary, payload)]);
    assertEquals(chunks.length, 2);
    assertEquals(chunks[0], hex("82 7e 40 01"));
    assert(chunks[1] === payload, "the same object, not a copy");
  });

  await t.step("a server refuses to mask", async () => {
    const stream = ReadableStream.from([frame(Opcode.Text, HELLO, true, KEY)])
      .pipeThrough(new FrameEncoderStream({ role: "server" }));
    const error = await Array.fromAsync(stream).catch((e) => e);
    assertInstanceOf(error, TypeError);
  });
});

Deno.test("encodeFrame() refuses frames that cannot be sent", () => {
  assertThrows(
    () => encodeFrame(frame(Opcode.Ping, new Uint8Array(126))),
    RangeError,
    "Cannot encode frame",
  );
  assertThrows(
    () => encodeFrame(frame(Opcode.Close, new Uint8Array(0), false)),
    TypeError,
    "Cannot encode frame",
  );
  assertThrows(
    () => encodeFrame(frame(3 as Opcode, new Uint8Array(0))),
    RangeError,
  );
  assertThrows(
    () => encodeFrame(frame(Opcode.Text, HELLO, true, new Uint8Array(3))),
    RangeError,
  );
});

Deno.test("FrameParser reads only up to end in a reused buffer", () => {
  // A reader reuses one buffer: bytes past `end` are stale and ignored,
  // whether a header or a payload is split at `end`.
  const wire = concat(rawFrame(0x82, HELLO), rawFrame(0x81, HELLO));
  for (let split = 1; split < wire.length; split++) {
    const seen: string[] = [];
    const parser = new FrameParser({ role: "client" }, (_, payload) => {
      seen.push(new TextDecoder().decode(payload));
    });
    const buffer = new Uint8Array(64).fill(0xff);
    buffer.set(wire.subarray(0, split));
    parser.push(buffer, split);
    buffer.fill(0xff).set(wire.subarray(split));
    parser.push(buffer, wire.length - split);
    assertEquals(seen, ["Hello", "Hello"], `split at ${split}`);
    assert(parser.idle);
  }
});
