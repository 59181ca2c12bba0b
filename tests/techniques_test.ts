// examples/techniques/main.ts as a user runs it: `--port`, one line out, the
// page, the bundled client and the figures served.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { TextLineStream } from "@std/streams";

Deno.test("examples/techniques/main.ts takes --port, prints its URL and serves the page, the client and the figures", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/techniques/main.ts", "--port", "0"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const lines = child.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new TextLineStream());
    const reader = lines.getReader();
    const { value: line } = await reader.read();
    reader.releaseLock();
    lines.cancel().catch(() => {});
    const url = String(line).match(/http:\/\/\S+\//)?.[0] ?? "";
    assert(url !== "", String(line));
    const page = await (await fetch(url)).text();
    assertStringIncludes(page, "/page.js");
    const client = await (await fetch(`${url}client.js`)).text();
    assertStringIncludes(client, "connectRealtime");
    // Plain JavaScript: the bundle kept no TypeScript syntax.
    assert(!/\bimport type\b|: RealtimeTransport\b/.test(client));
    const stats = await (await fetch(`${url}stats`)).json();
    assertEquals(Object.keys(stats), [
      "websocket",
      "sse",
      "long-polling",
      "polling",
      "iframe",
    ]);
  } finally {
    child.kill();
    await child.status;
  }
});
