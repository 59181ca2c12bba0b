// Decompression-bomb safety (RFC 7692 with maxMessageSize): a ~1 MiB message
// that would inflate to 1 GiB is refused with 1009, and the peak RSS of the
// process grows by less than twice the 32 MiB limit. It runs in a child
// process (tests/peers/bomb_child.ts) so that the RSS is its own. Then fifty
// at once on a live server (tests/peers/bombs_child.ts).

import { assert, assertEquals } from "@std/assert";

Deno.test("a 1 MiB message that inflates to 1 GiB gets 1009 and bounded RSS", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./peers/bomb_child.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert(output.success, stderr);
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  assert(result.compressedBytes < 1.1 * (1 << 20), `${result.compressedBytes}`);
  assertEquals(result.inflatedBytes, 1 << 30);
  assertEquals(result.code, "ERR_MESSAGE_TOO_LARGE");
  assertEquals(result.closeCode, 1009);
  assert(
    result.peakGrowth < 2 * result.limit,
    `peak RSS grew ${result.peakGrowth} bytes; limit ${result.limit}`,
  );
});

Deno.test("fifty bombs at once on a live server: each peer reads 1009, ten inflate at a time, and the garbage is freed as it goes", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./peers/bombs_child.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert(output.success, stderr);
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  assertEquals(result.codes, new Array(50).fill(1009));
  assert(result.zlibMost <= 10, `${result.zlibMost} zlib operations at once`);
  assertEquals(result.zlibRunning, 0);
  // Ten inflating at once, each stopped just past its limit (4 MiB), and
  // each stopped output freed at once rather than left to the GC: measured
  // 8 MiB of peak growth; the 50 outputs left as garbage made 160 MiB.
  const bound = 10 * result.limit + 32 * 1024 * 1024;
  assert(
    result.peakGrowth < bound,
    `peak RSS grew ${result.peakGrowth} bytes; bound ${bound}`,
  );
});
