// One script, two WebSocketStreams: `deno run --unstable-net -A
// websocket_stream_script.ts native|ours <echo base> <silent port> <drop
// port>`. It runs the same scenarios, as the proposal's web-platform-tests
// do, against tests/websocket_stream_test.ts's servers and prints each
// outcome as JSON, for that test to compare.

import * as ours from "../../mod.ts";

interface Impl {
  WebSocketStream: new (
    url: string,
    options?: { protocols?: string[]; signal?: AbortSignal },
  ) => ours.WebSocketStreamLike;
  WebSocketError: new (
    message?: string,
    init?: { closeCode?: number; reason?: string },
  ) => Error;
}

const [which, base, silentPort, dropPort] = Deno.args;
const native = globalThis as unknown as Impl;
const impl: Impl = which === "native"
  ? {
    WebSocketStream: native.WebSocketStream,
    WebSocketError: native.WebSocketError,
  }
  : ours as unknown as Impl;
const { WebSocketStream, WebSocketError } = impl;

// What a rejection or a throw looks like, across realms of error classes.
// (Deno's WebSocketError is a DOMException, ours an Error: see
// lib/errors.ts.)
function describe(error: unknown): unknown {
  if (error instanceof WebSocketError) {
    const e = error as Error & { closeCode: number | null };
    return `WebSocketError ${e.closeCode}`;
  }
  if (error instanceof DOMException) return `DOMException ${error.name}`;
  if (error instanceof Error) return error.constructor.name;
  return String(error);
}

async function outcome(promise: Promise<unknown>): Promise<unknown> {
  try {
    return { resolved: await promise };
  } catch (error) {
    return { rejected: describe(error) };
  }
}

function throws(fn: () => unknown): unknown {
  try {
    fn();
    return "no throw";
  } catch (error) {
    return describe(error);
  }
}

const results: Record<string, unknown> = {};
const scenarios: Record<string, () => Promise<unknown>> = {
  async "opened resolves to the four fields"() {
    const wss = new WebSocketStream(`${base}/echo`, { protocols: ["chat"] });
    const info = await wss.opened as unknown as Record<string, unknown>;
    wss.close();
    await wss.closed;
    return {
      keys: Object.keys(info).sort(),
      protocol: info.protocol,
      readable: info.readable instanceof ReadableStream,
      writable: info.writable instanceof WritableStream,
      url: wss.url,
    };
  },
  async "a message echoes"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { readable, writable } = await wss.opened;
    const writer = writable.getWriter();
    await writer.write("hi");
    await writer.write(new Uint8Array([1, 2]));
    const reader = readable.getReader();
    const got = [(await reader.read()).value, (await reader.read()).value];
    wss.close();
    await wss.closed;
    return got.map((v) => v instanceof Uint8Array ? [...v] : v);
  },
  async "close with a code and reason"() {
    const wss = new WebSocketStream(`${base}/echo`);
    await wss.opened;
    wss.close({ closeCode: 3456, reason: "pizza" });
    return await outcome(wss.closed);
  },
  async "close with no argument"() {
    const wss = new WebSocketStream(`${base}/echo`);
    await wss.opened;
    wss.close();
    return await outcome(wss.closed);
  },
  async "close with a reason alone"() {
    const wss = new WebSocketStream(`${base}/echo`);
    await wss.opened;
    wss.close({ reason: "non-empty" });
    return await outcome(wss.closed);
  },
  async "close argument checks"() {
    const wss = new WebSocketStream(`${base}/echo`);
    await wss.opened;
    const checks = {
      999: throws(() => wss.close({ closeCode: 999 })),
      1001: throws(() => wss.close({ closeCode: 1001 })),
      2999: throws(() => wss.close({ closeCode: 2999 })),
      5000: throws(() => wss.close({ closeCode: 5000 })),
      long: throws(() => wss.close({ reason: ".".repeat(124) })),
      true: throws(() => wss.close(true as never)),
    };
    wss.close();
    await wss.closed;
    return checks;
  },
  async "writer.close() closes cleanly"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.getWriter().close().catch(() => {});
    return await outcome(wss.closed);
  },
  async "the server's close"() {
    const wss = new WebSocketStream(`${base}/close-4000`);
    await wss.opened;
    return await outcome(wss.closed);
  },
  async "abort with a WebSocketError"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.abort(
      new WebSocketError("x", { closeCode: 4001, reason: "aborted" }),
    ).catch(() => {});
    return await outcome(wss.closed);
  },
  async "cancel with a WebSocketError"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { readable } = await wss.opened;
    await readable.cancel(
      new WebSocketError("x", { closeCode: 4002, reason: "canceled" }),
    ).catch(() => {});
    return await outcome(wss.closed);
  },
  // Code written against the proposal uses the runtime's global
  // WebSocketError (Deno's, with --unstable-net), whichever stream it has.
  async "abort with the runtime's own WebSocketError"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.abort(
      new native.WebSocketError("x", { closeCode: 4003, reason: "global" }),
    ).catch(() => {});
    return await outcome(wss.closed);
  },
  async "abort with a code and reason object ignores them"() {
    const wss = new WebSocketStream(`${base}/echo`);
    const { writable } = await wss.opened;
    await writable.abort({ closeCode: 3456, reason: "set" }).catch(() => {});
    return await outcome(wss.closed);
  },
  async "an unclean close rejects closed"() {
    const wss = new WebSocketStream(`ws://127.0.0.1:${dropPort}/`);
    await wss.opened;
    return await outcome(wss.closed);
  },
  async "an aborted signal before connecting"() {
    const controller = new AbortController();
    controller.abort();
    const wss = new WebSocketStream(`${base}/echo`, {
      signal: controller.signal,
    });
    return [await outcome(wss.opened), await outcome(wss.closed)];
  },
  async "the signal aborts the handshake"() {
    const controller = new AbortController();
    const wss = new WebSocketStream(`ws://127.0.0.1:${silentPort}/`, {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    return [await outcome(wss.opened), await outcome(wss.closed)];
  },
  async "a signal aborted after opening does nothing"() {
    const controller = new AbortController();
    const wss = new WebSocketStream(`${base}/echo`, {
      signal: controller.signal,
    });
    await wss.opened;
    controller.abort();
    wss.close({ closeCode: 3000 });
    return await outcome(wss.closed);
  },
  async "close() during the handshake"() {
    const wss = new WebSocketStream(`ws://127.0.0.1:${silentPort}/`);
    wss.close();
    return [await outcome(wss.opened), await outcome(wss.closed)];
  },
  async "a refused handshake"() {
    const wss = new WebSocketStream(`${base}/refuse`);
    return [await outcome(wss.opened), await outcome(wss.closed)];
  },
  // deno-lint-ignore require-await
  async "constructor URL checks"() {
    return {
      scheme: throws(() => new WebSocketStream("ftp://127.0.0.1/")),
      fragment: throws(() => new WebSocketStream(`${base}/echo#x`)),
      emptyFragment: throws(() => new WebSocketStream(`${base}/echo#`)),
      invalid: throws(() => new WebSocketStream("ws://[bad")),
      protocols: throws(() =>
        new WebSocketStream(`${base}/echo`, { protocols: ["a", "A"] })
      ),
    };
  },
};

// A scenario that hangs is an outcome too; the process then exits with
// whatever it still holds.
const SCENARIO_TIMEOUT = 5_000;
for (const [name, run] of Object.entries(scenarios)) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise((resolve) => {
    timer = setTimeout(() => resolve("hung"), SCENARIO_TIMEOUT);
  });
  try {
    results[name] = await Promise.race([run(), hung]);
  } catch (error) {
    results[name] = { threw: describe(error) };
  }
  clearTimeout(timer);
}
console.log(JSON.stringify(results));
Deno.exit(0);
