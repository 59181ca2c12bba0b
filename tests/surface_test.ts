// The public surface, value by value: what each entry point of deno.json
// exports at run time. A new export is a decision, made here on purpose;
// internals (pools, default constants, the engine, the option checks,
// helpers such as closeBodyFor) must never appear. Types leave no trace at
// run time; `deno doc --lint` on each entry point (deno task ok) checks them.

import { assertEquals } from "@std/assert";

const expected: Record<string, string[]> = {
  ".": [
    "BroadcastChannelBackplane",
    "CloseCode",
    "ERROR_CODES",
    "Topics",
    "WebSocket",
    "WebSocketDuplex",
    "WebSocketError",
    "WebSocketHandshakeError",
    "WebSocketStream",
    "acceptWebSocket",
    "asWebSocketStream",
    "connect",
    "serve",
    "upgradeWebSocket",
  ],
  "./codec": [
    "CloseCode",
    "ERROR_CODES",
    "FrameDecoderStream",
    "FrameEncoderStream",
    "FrameParser",
    "MessageAssembler",
    "MessageDecoderStream",
    "MessageEncoderStream",
    "Opcode",
    "Utf8Validator",
    "WebSocketError",
    "assertSendableFrame",
    "controlMessage",
    "decodeCloseBody",
    "decodeFrame",
    "encodeCloseBody",
    "encodeFrame",
    "encodeMessage",
    "encodedHeaderLength",
    "frameHeaderLength",
    "isControlOpcode",
    "isValidCloseCode",
    "isValidUtf8",
    "mask",
    "messagePayload",
    "parseFrameHeader",
    "writeFrameHeader",
  ],
  "./handshake": [
    "HandshakeRejection",
    "WEBSOCKET_GUID",
    "acceptKey",
    "checkOrigin",
    "errorResponse",
    "formatExtensions",
    "generateKey",
    "isUpgradeRequest",
    "parseExtensions",
    "serverResponseHead",
    "validateServerResponse",
    "validateUpgradeRequest",
  ],
  "./deflate": [
    "Deflater",
    "Inflater",
    "PERMESSAGE_DEFLATE",
    "acceptDeflate",
    "deflateOffers",
    "validateDeflateResponse",
  ],
  "./sse": [
    "ERROR_CODES",
    "EventStreamParser",
    "ServerSentEventClient",
    "ServerSentEventParseStream",
    "ServerSentEventStream",
    "WebSocketError",
    "encodeServerSentEvent",
    "sseResponse",
  ],
  "./polling": [
    "ERROR_CODES",
    "PollingClientConnection",
    "PollingServer",
    "WebSocketError",
    "connectPolling",
    "decodeBatch",
    "encodeBatch",
  ],
  "./realtime": [
    "ERROR_CODES",
    "REALTIME_TRANSPORTS",
    "WebSocketError",
    "connectRealtime",
    "encodeIframeChunk",
    "iframeResponse",
    "realtime",
  ],
  // A program, not a library: importing it runs nothing and exports nothing.
  "./cli": [],
  "./redis": ["RedisBackplane"],
};

const config = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
) as { exports: Record<string, string> };

Deno.test("deno.json's entry points are exactly these nine", () => {
  assertEquals(
    Object.keys(config.exports).sort(),
    Object.keys(expected).sort(),
  );
});

for (const [entry, names] of Object.entries(expected)) {
  Deno.test(`${entry} exports exactly its public values`, async () => {
    const module = await import(
      new URL(config.exports[entry]!, new URL("../", import.meta.url)).href
    );
    assertEquals(Object.keys(module).sort(), [...names].sort());
  });
}
