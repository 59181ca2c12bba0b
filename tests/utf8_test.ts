// decodeUtf8 (the fast strict decoder) must agree with a fatal TextDecoder
// on every input: valid text, a real U+FFFD, a BOM, and each invalid form.

import { assertEquals, assertThrows } from "@std/assert";
import { decodeUtf8 } from "../lib/codec/utf8.ts";
import { MessageAssembler, Opcode } from "../lib/codec/mod.ts";
import { assertWsError, hex, prng, randInt } from "./_helpers.ts";

const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function agree(bytes: Uint8Array): void {
  let expected: string | undefined;
  try {
    expected = fatal.decode(bytes);
  } catch {
    expected = undefined;
  }
  if (expected === undefined) {
    assertThrows(() => decodeUtf8(bytes), TypeError);
  } else {
    assertEquals(decodeUtf8(bytes), expected);
  }
}

Deno.test("decodeUtf8 agrees with a fatal TextDecoder", async (t) => {
  const cases: [string, string][] = [
    ["ASCII", "48 65 6c 6c 6f"],
    ["a real U+FFFD", "61 ef bf bd 62"],
    ["a leading BOM is kept", "ef bb bf 61"],
    ["4-byte U+1F600", "f0 9f 98 80"],
    ["U+10FFFF", "f4 8f bf bf"],
    ["lone continuation", "80"],
    ["overlong NUL", "c0 80"],
    ["surrogate U+D800", "ed a0 80"],
    ["above U+10FFFF", "f4 90 80 80"],
    ["truncated", "e2 82"],
    ["0xFF", "ff"],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => agree(hex(bytes)));
  }
  assertEquals(decodeUtf8(hex("ef bb bf 61")), "\uFEFFa");
  await t.step("5,000 seeded random byte strings", () => {
    const random = prng(77);
    const alphabet = [
      0x61,
      0x7f,
      0x80,
      0xbf,
      0xc2,
      0xe2,
      0xed,
      0xef,
      0xf0,
      0xf4,
      0xff,
    ];
    for (let i = 0; i < 5000; i++) {
      const bytes = new Uint8Array(randInt(random, 12));
      for (let j = 0; j < bytes.length; j++) {
        bytes[j] = randInt(random, 2)
          ? alphabet[randInt(random, alphabet.length)]!
          : randInt(random, 256);
      }
      agree(bytes);
    }
  });
});

Deno.test("text in pieces: ASCII pieces skip the decoder only at code point boundaries", async (t) => {
  const te = new TextEncoder();
  const run = (pieces: Uint8Array[]) => {
    const seen: unknown[] = [];
    const assembler = new MessageAssembler({}, {
      message: (data) => seen.push(data),
      control: () => {},
    });
    const total = pieces.reduce((n, p) => n + p.length, 0);
    let offset = 0;
    for (const piece of pieces) {
      assembler.push(
        { fin: true, opcode: Opcode.Text, payloadLength: total },
        piece,
        offset,
      );
      offset += piece.length;
    }
    return seen;
  };
  await t.step("a code point split across pieces, then ASCII", () => {
    assertEquals(
      run([te.encode("abc"), hex("e2 82"), hex("ac"), te.encode("def")]),
      ["abc€def"],
    );
  });
  await t.step(
    "a code point cut short by an ASCII piece fails on that piece",
    () => {
      let failedAt = -1;
      const pieces = [
        te.encode("abc"),
        hex("e2"),
        te.encode("d"),
        te.encode("e"),
      ];
      const assembler = new MessageAssembler({}, {
        message: () => {},
        control: () => {},
      });
      let offset = 0;
      for (const [i, piece] of pieces.entries()) {
        try {
          assembler.push(
            { fin: true, opcode: Opcode.Text, payloadLength: 6 },
            piece,
            offset,
          );
        } catch (error) {
          assertWsError(error, "ERR_INVALID_UTF8", 1007);
          failedAt = i;
          break;
        }
        offset += piece.length;
      }
      assertEquals(failedAt, 2);
    },
  );
  await t.step("a message that ends inside a code point fails", () => {
    assertThrows(() => run([te.encode("ab"), hex("f0 9f")]));
  });
  await t.step("long ASCII pieces with one bad byte deep inside fail", () => {
    const long = new Uint8Array(5000).fill(0x61);
    long[4321] = 0xff;
    assertThrows(() => run([new Uint8Array(3000).fill(0x61), long]));
  });
});
