// Run by tests/bomb_test.ts in its own process, so that its peak RSS is its
// own: fifty raw clients open permessage-deflate connections to our serve()
// and each sends, all at once, a 64 KiB message that would inflate to
// 64 MiB, past a maxMessageSize of MAX (4 MiB). Prints one JSON line: the
// close codes the clients read, how much the peak RSS (VmHWM) grew, and the
// most zlib operations that ran at once.

import { constants, deflateRawSync } from "node:zlib";
import { serve } from "../../mod.ts";
import { zlibStats } from "../../lib/deflate/zlib.ts";
import { rawClient, rawFrame, readUntilClose } from "../_helpers.ts";

const CLIENTS = Number(Deno.env.get("BOMB_CLIENTS") ?? 50);
const MAX = 4 << 20;

function vmHwm(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const bomb = deflateRawSync(new Uint8Array(64 << 20), {
  finishFlush: constants.Z_SYNC_FLUSH,
});
// RFC 7692 §7.2.1: the sender strips the final 00 00 ff ff.
const frame = rawFrame(
  0x80 | 0x40 | 0x2,
  bomb.subarray(0, bomb.length - 4),
  new Uint8Array([9, 8, 7, 6]),
);

const server = serve(
  { port: 0, hostname: "127.0.0.1", onListen() {}, maxMessageSize: MAX },
  (connection) => {
    connection.readable.pipeTo(new WritableStream()).catch(() => {});
  },
);
const clients = await Promise.all(
  Array.from(
    { length: CLIENTS },
    () =>
      rawClient(server.addr.port, {
        "Sec-WebSocket-Extensions": "permessage-deflate",
      }),
  ),
);
// Let the baseline settle before measuring.
await new Promise((resolve) => setTimeout(resolve, 100));
const before = vmHwm();
const heard = await Promise.all(clients.map(async ({ conn, frames }) => {
  const reading = readUntilClose(conn, frames);
  await conn.write(frame).catch(() => {});
  const { code } = await reading;
  conn.close();
  return code;
}));
const after = vmHwm();
await server.shutdown();
console.log(JSON.stringify({
  compressedBytes: frame.length,
  codes: heard,
  peakGrowth: after - before,
  baseline: before,
  limit: MAX,
  zlibMost: zlibStats().most,
  zlibRunning: zlibStats().running,
}));
