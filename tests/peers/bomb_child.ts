// Run by tests/bomb_test.ts in its own process, so that its peak RSS is its
// own: our serve() receives a ~1 MiB permessage-deflate message that would
// inflate to 1 GiB. Prints one JSON line: the error, the close code the peer
// got, and how much the peak RSS (VmHWM) grew.

import { constants, deflateRawSync } from "node:zlib";
import { serve, type WebSocketConnection } from "../../mod.ts";
import { rawFrame } from "../_helpers.ts";

function vmHwm(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

// 1 MiB of zeros, full-flushed: a block that refers to nothing before it,
// so 1024 copies in a row are one valid stream of 1 GiB of zeros.
const block = deflateRawSync(new Uint8Array(1 << 20), {
  level: 9,
  finishFlush: constants.Z_FULL_FLUSH,
});
const copies = 1024;
const bomb = new Uint8Array(block.length * copies);
for (let i = 0; i < copies; i++) bomb.set(block, i * block.length);
// RFC 7692 §7.2.1: the sender strips the final 00 00 ff ff.
const payload = bomb.subarray(0, bomb.length - 4);

const peer = Promise.withResolvers<WebSocketConnection>();
const server = serve(
  { port: 0, hostname: "127.0.0.1", onListen() {} },
  (connection) => {
    peer.resolve(connection);
    connection.readable.pipeTo(new WritableStream()).catch(() => {});
  },
);
const conn = await Deno.connect({
  hostname: "127.0.0.1",
  port: server.addr.port,
});
await conn.write(new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
));
const head = new Uint8Array(4096);
await conn.read(head);
const connection = await peer.promise;

const frame = rawFrame(
  0x80 | 0x40 | 0x2,
  payload,
  new Uint8Array([9, 8, 7, 6]),
);
// Let the baseline settle before measuring.
await new Promise((resolve) => setTimeout(resolve, 50));
const before = vmHwm();
const writing = conn.write(frame).catch(() => 0);
const error = await connection.closed.then(() => undefined, (e) => e);
await writing;
const reply = new Uint8Array(64);
const n = await conn.read(reply).catch(() => null);
const closeCode = n && n >= 4 ? (reply[2]! << 8) | reply[3]! : null;
const after = vmHwm();
conn.close();
await server.shutdown();
console.log(JSON.stringify({
  compressedBytes: payload.length,
  inflatedBytes: copies * (1 << 20),
  code: error?.code,
  closeCode,
  peakGrowth: after - before,
  limit: 32 * 1024 * 1024,
}));
