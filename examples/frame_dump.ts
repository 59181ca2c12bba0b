/**
 * Prints an annotated dump of a few real frames: the frame diagram of
 * RFC 6455 §5.2, made live. Run it with `deno run examples/frame_dump.ts`.
 *
 * @module
 */

import {
  encodeFrame,
  encodeMessage,
  type Frame,
  Opcode,
  parseFrameHeader,
} from "../lib/codec/mod.ts";

// Each opcode's name, lower-cased, from the codec's own table.
const OPCODES: Record<number, string> = Object.fromEntries(
  Object.entries(Opcode).map(([name, code]) => [code, name.toLowerCase()]),
);

function hex(bytes: Uint8Array, max = 16): string {
  const shown = Array.from(
    bytes.subarray(0, max),
    (b) => b.toString(16).padStart(2, "0"),
  );
  return shown.join(" ") +
    (bytes.length > max ? ` … (${bytes.length} bytes)` : "");
}

/** Describes one encoded frame, field by field, as the wire carries it. */
export function describe(
  title: string,
  wire: Uint8Array,
  role: "client" | "server",
): string {
  const header = parseFrameHeader(wire, 0, {
    role: role === "client" ? "server" : "client",
    allowedRsv: 7,
  });
  const len7 = wire[1]! & 0x7f;
  const form = len7 < 126 ? "7-bit" : len7 === 126 ? "7+16-bit" : "7+64-bit";
  const lines = [
    `── ${title} (sent by a ${role}) ──`,
    `  wire     ${hex(wire, 24)}`,
    `  byte 0   ${wire[0]!.toString(2).padStart(8, "0")}`,
    `    FIN    ${+header.fin}  ${
      header.fin ? "final fragment" : "more fragments follow"
    }`,
    `    RSV1-3 ${+header.rsv1}${+header.rsv2}${+header
      .rsv3}  (extensions only)`,
    `    opcode 0x${header.opcode.toString(16)}  ${OPCODES[header.opcode]}`,
    `  byte 1   ${wire[1]!.toString(2).padStart(8, "0")}`,
    `    MASK   ${header.mask ? 1 : 0}  ${
      header.mask ? "masked: client to server" : "unmasked: server to client"
    }`,
    `    length ${len7}${
      len7 >= 126 ? ` → extended ${form}: ${header.payloadLength}` : ""
    } (${form} form)`,
  ];
  if (header.mask) lines.push(`  mask key ${hex(header.mask)}`);
  const payload = wire.subarray(header.headerLength);
  lines.push(`  payload  ${hex(payload)}${header.mask ? "  (masked)" : ""}`);
  return lines.join("\n");
}

function frames(
  message: Parameters<typeof encodeMessage>[0],
  fragmentSize?: number,
): Frame[] {
  return encodeMessage(message, { fragmentSize });
}

const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]); // RFC 6455 §5.7's key

if (import.meta.main) {
  const out: string[] = [];
  const [hello] = frames("Hello");
  out.push(describe('"Hello" (RFC 6455 §5.7)', encodeFrame(hello!), "server"));
  out.push(
    describe(
      '"Hello", masked (RFC 6455 §5.7)',
      encodeFrame({ ...hello!, mask: KEY }),
      "client",
    ),
  );
  const [first, second] = frames("Hello", 3);
  out.push(
    describe('"Hel", the first fragment', encodeFrame(first!), "server"),
  );
  out.push(
    describe('"lo", the final fragment', encodeFrame(second!), "server"),
  );
  out.push(
    describe(
      "ping",
      encodeFrame(
        frames({ type: "ping", data: new TextEncoder().encode("Hello") })[0]!,
      ),
      "server",
    ),
  );
  out.push(
    describe(
      'close 1000 "bye"',
      encodeFrame(
        frames({ type: "close", closeCode: 1000, reason: "bye" })[0]!,
      ),
      "server",
    ),
  );
  out.push(
    describe(
      "256 bytes of binary",
      encodeFrame(frames(new Uint8Array(256))[0]!),
      "server",
    ),
  );
  out.push(
    describe(
      "64 KiB of binary",
      encodeFrame(frames(new Uint8Array(65536))[0]!),
      "server",
    ),
  );
  console.log(out.join("\n\n"));
}
