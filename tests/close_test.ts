import { assert, assertEquals, assertFalse, assertThrows } from "@std/assert";
import { CloseCode, WebSocketError } from "../mod.ts";
import {
  decodeCloseBody,
  encodeCloseBody,
  isValidCloseCode,
} from "../lib/codec/mod.ts";
import { fitCloseReason } from "../lib/codec/close.ts";
import { assertWsError, hex, thrown } from "./_helpers.ts";

Deno.test("isValidCloseCode() follows RFC 6455 §7.4 and the IANA registry", () => {
  const valid = (code: number) =>
    (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
  for (let code = 0; code <= 70000; code++) {
    assertEquals(isValidCloseCode(code), valid(code), `code ${code}`);
  }
  for (const code of [1004, 1005, 1006, 1015, 999, 1016, 2999, 5000]) {
    assertFalse(isValidCloseCode(code));
  }
  assertFalse(isValidCloseCode(1000.5));
  assertEquals(CloseCode.ServiceRestart, 1012);
  assertEquals(CloseCode.TryAgainLater, 1013);
  assertEquals(CloseCode.BadGateway, 1014);
});

Deno.test("close bodies encode and decode", () => {
  assertEquals(encodeCloseBody(1000, "bye"), hex("03 e8 62 79 65"));
  assertEquals(encodeCloseBody(undefined), new Uint8Array(0));
  assertEquals(decodeCloseBody(hex("0f a0")), { closeCode: 4000, reason: "" });
  const reason = "é".repeat(61) + "a"; // 123 bytes exactly
  assertEquals(decodeCloseBody(encodeCloseBody(3000, reason)).reason, reason);
});

Deno.test("close body misuse and violations", () => {
  assertThrows(
    () => encodeCloseBody(1005),
    RangeError,
    "Cannot encode close body",
  );
  assertThrows(() => encodeCloseBody(1000, "x".repeat(124)), RangeError);
  assertThrows(() => encodeCloseBody(undefined, "why"), TypeError);
  assertWsError(
    thrown(() => decodeCloseBody(hex("03"))),
    "ERR_INVALID_CLOSE_BODY",
    1002,
  );
  assertWsError(
    thrown(() => decodeCloseBody(hex("03 ed"))),
    "ERR_INVALID_CLOSE_CODE",
    1002,
  );
  assertWsError(
    thrown(() => decodeCloseBody(hex("03 e8 ed a0 80"))),
    "ERR_INVALID_UTF8",
    1007,
  );
});

Deno.test("reasons are cut to 123 bytes on a UTF-8 boundary", () => {
  const cut = fitCloseReason("€".repeat(50)); // 150 bytes
  assertEquals(new TextEncoder().encode(cut).length, 123);
  assertEquals(cut, "€".repeat(41));
  const error = new WebSocketError("Cannot decode: " + "ж".repeat(100), {
    code: "ERR_INVALID_UTF8",
  });
  assert(new TextEncoder().encode(error.reason).length <= 123);
  assertEquals(error.closeCode, 1007);
  assertEquals(
    new WebSocketError("Cannot x: y", {
      code: "ERR_INVALID_UTF8",
      closeCode: 1011,
    })
      .closeCode,
    1011,
  );
});
