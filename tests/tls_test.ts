// wss:// end to end: our serve() on Deno.listenTls with a test CA's
// certificate (tests/fixtures), reached by our connect() and Deno's client.

import { assertEquals, assertRejects } from "@std/assert";
import { connect, serve, WebSocketError } from "../mod.ts";
import { prng, randomBytes } from "./_helpers.ts";

const fixtures = new URL("./fixtures/", import.meta.url);
const cert = Deno.readTextFileSync(new URL("cert.pem", fixtures));
const key = Deno.readTextFileSync(new URL("key.pem", fixtures));
const ca = Deno.readTextFileSync(new URL("ca.pem", fixtures));

function tlsEchoServer() {
  return serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, tls: { cert, key } },
    (connection) => {
      connection.readable.pipeTo(connection.writable).catch(() => {});
    },
  );
}

Deno.test("wss:// end to end with a test CA", async (t) => {
  const server = tlsEchoServer();
  const url = `wss://localhost:${server.addr.port}/secure`;

  await t.step("our client echoes text and 4 MiB of binary", async () => {
    const client = await connect(url, { caCerts: [ca] });
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const big = randomBytes(prng(31), 4 << 20);
    await writer.write("over TLS");
    await writer.write(big);
    assertEquals((await reader.read()).value, "over TLS");
    assertEquals((await reader.read()).value, big);
    reader.releaseLock();
    writer.releaseLock();
    client.close({ closeCode: 1000, reason: "tls done" });
    assertEquals(await client.closed, { closeCode: 1000, reason: "tls done" });
  });

  await t.step(
    "a client that does not trust the CA fails the handshake",
    async () => {
      await assertRejects(() => connect(url), Error);
    },
  );

  await t.step(
    "the server keeps serving after a client refused its certificate",
    async () => {
      const client = await connect(url, { caCerts: [ca] });
      const writer = client.writable.getWriter();
      await writer.write("still here");
      const reader = client.readable.getReader();
      assertEquals((await reader.read()).value, "still here");
      reader.releaseLock();
      writer.releaseLock();
      client.close();
      assertEquals(await client.closed, { closeCode: 1005, reason: "" });
    },
  );

  await server.shutdown();
});

Deno.test("Deno's native WebSocket over wss:// to our server", async () => {
  const server = tlsEchoServer();
  // The native client trusts only the CAs given to the process (--cert), so
  // it runs in a child Deno.
  const code = `
    const ws = new WebSocket("wss://localhost:${server.addr.port}/native");
    ws.onopen = () => ws.send("native over tls");
    ws.onmessage = (e) => { console.log(e.data); ws.close(1000, "ok"); };
    ws.onclose = (e) => console.log(e.code, e.reason, e.wasClean);
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--cert", new URL("ca.pem", fixtures).pathname, code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(
    new TextDecoder().decode(output.stdout).trim().split("\n"),
    ["native over tls", "1000 ok true"],
    new TextDecoder().decode(output.stderr),
  );
  await server.shutdown();
});

Deno.test("ws:// to a TLS port fails the handshake, not the process", async () => {
  const server = tlsEchoServer();
  const failure = await connect(`ws://127.0.0.1:${server.addr.port}/`, {
    handshakeTimeout: 2000,
  }).then(() => undefined, (e) => e);
  assertEquals(failure instanceof WebSocketError, true, String(failure));
  await server.shutdown();
});
