// Option checks at every entry point: each numeric option, given each of a
// few values that break most rules, either fails at once (before any I/O)
// with a message that names the option and the value, or is allowed.

import { assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import { parseFrameHeader, WebSocketConnection } from "../mod.ts";
import { assertWsError, thrown } from "./_helpers.ts";

/** Two ends of an in-memory byte pipe, as a connection's transport. */
function memoryPair() {
  const toServer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  return {
    server: { readable: toServer.readable, writable: toClient.writable },
    client: { readable: toClient.readable, writable: toServer.writable },
  };
}

Deno.test("a connection refuses fragmentSize 0, which made every send spin forever", () => {
  for (const fragmentSize of [0, -1, NaN]) {
    assertThrows(
      () =>
        new WebSocketConnection(memoryPair().server, {
          role: "server",
          fragmentSize,
        }),
      RangeError,
      `Cannot create connection: fragmentSize must be a positive integer or Infinity, not ${fragmentSize}`,
    );
  }
});

Deno.test("a connection refuses a NaN maxFrameSize, which turned the limit off", () => {
  const error = assertThrows(
    () =>
      new WebSocketConnection(memoryPair().server, {
        role: "server",
        maxFrameSize: NaN,
      }),
    RangeError,
  );
  assertInstanceOf(error, RangeError);
  assertEquals(
    error.message,
    "Cannot create connection: maxFrameSize must be a non-negative integer or Infinity, not NaN",
  );
});

Deno.test("parseFrameHeader, unchecked per frame, refuses every frame under a NaN maxFrameSize", () => {
  const header = new Uint8Array([0x82, 0x01]);
  assertWsError(
    thrown(() =>
      parseFrameHeader(header, 0, { role: "client", maxFrameSize: NaN })
    ),
    "ERR_FRAME_TOO_LARGE",
  );
});
