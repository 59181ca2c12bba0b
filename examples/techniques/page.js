// The page of examples/techniques: one connection per technique to the
// same echo service, a ping every 250 ms on each, and charts redrawn twice
// a second. Plain JS for the browser; the client comes bundled.
// The bundled client, served by main.ts. Imported through a variable so
// that `deno check examples/` does not look for /client.js on disk.
const CLIENT = "/client.js";
const { connectRealtime } = await import(CLIENT);

const TRANSPORTS = ["websocket", "sse", "long-polling", "polling", "iframe"];
const NAMES = {
  websocket: "WebSocket",
  sse: "Server-sent events",
  "long-polling": "Long polling",
  polling: "Short polling",
  iframe: "iframe stream",
};
const SHORT = {
  websocket: "WebSocket",
  sse: "SSE",
  "long-polling": "Long polling",
  polling: "Short polling",
  iframe: "iframe",
};
const COLORS = {
  websocket: "#2a7",
  sse: "#27c",
  "long-polling": "#c80",
  polling: "#c33",
  iframe: "#86c",
};
// One line each, as the seed weighs them.
const VERDICTS = {
  websocket:
    "Full duplex on one connection: the lowest latency and a few bytes of framing per message. Needs proxies that pass the Upgrade.",
  sse:
    "Server push on one long response, text only, reconnects by itself; each message up is a POST. Good for feeds and notifications.",
  "long-polling":
    "Near-real-time down, but a request with full headers per answer, and a gap while the next one starts. Works wherever HTTP does.",
  polling:
    "The simplest: latency up to the interval, and most requests come back empty. Wasteful at any useful rate.",
  iframe:
    "Streams to any old browser, but costs script markup per message, reports no errors, and its document grows until reloaded.",
};
const PERIOD = 250;
const SAMPLES = 120;

const state = { server: {}, auto: null };
globalThis.techniques = state;

function percentile(values, p) {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function card(transport) {
  const div = document.createElement("div");
  div.className = "card";
  div.innerHTML = `<h2 style="color:${COLORS[transport]}">${
    NAMES[transport]
  }</h2><div class="status"></div><div class="verdict">${
    VERDICTS[transport]
  }</div><svg width="100%" viewBox="0 0 200 70"></svg><div class="figures"></div>`;
  document.getElementById("cards").append(div);
  return div;
}

async function run(transport) {
  const s = {
    status: "connecting",
    transport: null,
    sent: 0,
    received: 0,
    broadcasts: 0,
    rtts: [],
    error: null,
    node: card(transport),
  };
  state[transport] = s;
  try {
    const connection = await connectRealtime("/rt", {
      transports: [transport],
      pollInterval: 500,
    });
    s.status = "open";
    s.transport = connection.transport;
    const writer = connection.writable.getWriter();
    const pending = new Map();
    (async () => {
      for await (const message of connection.readable) {
        // The broadcast half of the service: every connection gets it.
        if (message.startsWith("all:")) {
          s.broadcasts++;
          continue;
        }
        const { n } = JSON.parse(message);
        const start = pending.get(n);
        if (start === undefined) continue;
        pending.delete(n);
        s.received++;
        s.rtts.push(performance.now() - start);
        if (s.rtts.length > SAMPLES) s.rtts.shift();
      }
      s.status = "closed";
    })().catch((error) => {
      s.status = "failed";
      s.error = String(error);
    });
    let n = 0;
    setInterval(() => {
      // A transport that falls behind is not flooded.
      if (pending.size > 40 || s.status !== "open") return;
      pending.set(++n, performance.now());
      s.sent++;
      writer.write(JSON.stringify({ n, at: Date.now() })).catch(() => {});
    }, PERIOD);
    // One technique speaks to all five every 2 s: push, whatever the way.
    if (transport === "long-polling") {
      setInterval(() => {
        writer.write(`all:from ${transport} at ${Date.now()}`).catch(() => {});
      }, 2000);
    }
  } catch (error) {
    s.status = "failed";
    s.error = String(error);
  }
}

function sparkline(s, color) {
  // Log scale from 0.1 ms to 10 s.
  const y = (ms) => 65 - (Math.log10(Math.max(ms, 0.1)) + 1) / 5 * 60;
  const points = s.rtts.map((ms, i) =>
    `${(i * 200 / (SAMPLES - 1)).toFixed(1)},${y(ms).toFixed(1)}`
  ).join(" ");
  const p50 = percentile(s.rtts, 0.5);
  const p99 = percentile(s.rtts, 0.99);
  const grid = [1, 10, 100, 1000].map((ms) =>
    `<line x1="0" x2="200" y1="${y(ms)}" y2="${
      y(ms)
    }" stroke="#eee"/><text x="0" y="${y(ms) - 1}" fill="#aaa">${ms}</text>`
  ).join("");
  return `${grid}<line x1="0" x2="200" y1="${y(p50)}" y2="${
    y(p50)
  }" stroke="${color}" opacity="0.4"/><line x1="0" x2="200" y1="${
    y(p99)
  }" y2="${y(p99)}" stroke="${color}" stroke-dasharray="3 2" opacity="0.6"/>` +
    `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>`;
}

function bars(id, values, format) {
  const max = Math.max(...values.map((v) => v.value), 1);
  const log = id !== "requests";
  const scale = (v) =>
    log ? Math.log10(Math.max(v, 1)) / Math.log10(Math.max(max, 10)) : v / max;
  const rows = values.map(({ transport, value, second }, i) => {
    const y = 6 + i * 24;
    const w = Math.max(1, scale(value) * 110);
    const extra = second === undefined
      ? ""
      : `<rect x="90" y="${y + 12}" width="${
        Math.max(1, scale(second) * 110)
      }" height="5" fill="${COLORS[transport]}" opacity="0.4"/>`;
    return `<text x="0" y="${y + 11}">${
      SHORT[transport]
    }</text><rect x="90" y="${y}" width="${w}" height="11" fill="${
      COLORS[transport]
    }"/>${extra}<text x="${
      94 + Math.max(w, second === undefined ? 0 : scale(second) * 110)
    }" y="${y + 9}" fill="#000">${format(value, second)}</text>`;
  });
  document.getElementById(id).innerHTML = rows.join("");
}

function render() {
  for (const transport of TRANSPORTS) {
    const s = state[transport];
    if (!s) continue;
    const server = state.server[transport] ?? {};
    s.node.querySelector(".status").textContent = `${s.status}${
      s.error ? `: ${s.error}` : ""
    }`;
    s.node.querySelector("svg").innerHTML = sparkline(s, COLORS[transport]);
    s.node.querySelector(".figures").textContent = [
      `sent ${s.sent}, echoed ${s.received}, broadcasts ${s.broadcasts}`,
      `p50 ${percentile(s.rtts, 0.5).toFixed(1)} ms  p99 ${
        percentile(s.rtts, 0.99).toFixed(1)
      } ms`,
      `${(server.bytesPerMessage ?? 0).toFixed(0)} B/message`,
      `${(server.requestsPerMinute ?? 0).toFixed(0)} requests/min`,
    ].join("\n");
  }
  const present = TRANSPORTS.filter((t) => state[t]);
  bars(
    "latency",
    present.map((t) => ({
      transport: t,
      value: percentile(state[t].rtts, 0.5),
      second: percentile(state[t].rtts, 0.99),
    })),
    (a, b) => `${a.toFixed(1)} / ${b.toFixed(1)}`,
  );
  bars(
    "bytes",
    present.map((t) => ({
      transport: t,
      value: state.server[t]?.bytesPerMessage ?? 0,
    })),
    (a) => `${a.toFixed(0)} B`,
  );
  bars(
    "requests",
    present.map((t) => ({
      transport: t,
      value: state.server[t]?.requestsPerMinute ?? 0,
    })),
    (a) => a.toFixed(0),
  );
}

async function poll() {
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    state.server = await response.json();
  } catch {
    // the server went away; keep the last figures
  }
}

async function auto() {
  const line = document.getElementById("auto");
  try {
    const connection = await connectRealtime("/rt");
    const writer = connection.writable.getWriter();
    await writer.write(JSON.stringify({ n: 0 }));
    const reader = connection.readable.getReader();
    await reader.read();
    state.auto = connection.transport;
    line.textContent =
      `connectRealtime() with the default order landed on: ${connection.transport}`;
    connection.close();
  } catch (error) {
    state.auto = `failed: ${error}`;
    line.textContent = `connectRealtime() failed: ${error}`;
  }
}

for (const transport of TRANSPORTS) run(transport);
auto();
setInterval(poll, 1000);
setInterval(render, 500);
