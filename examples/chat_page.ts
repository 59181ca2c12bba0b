/**
 * The chat's page, shared by `chat.ts` (one process) and `deploy.ts` (Deno
 * Deploy): it opens a WebSocket to `/ws` on its own host, shows each
 * `{ from, text }` that arrives, and sends each line typed.
 *
 * @module
 */

/** The HTML page of the chat room. */
export const CHAT_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>websocket-streams chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  #log p { margin: .2em 0; }
  form { display: flex; gap: .5em; margin-top: .5em; }
  input { flex: 1; }
</style>
<h1>Chat</h1>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script type="module">
  const log = document.getElementById("log");
  const show = (line) => {
    const p = document.createElement("p");
    p.textContent = line;
    log.append(p);
    log.scrollTop = log.scrollHeight;
  };
  const ws = new WebSocket(new URL("/ws", location.href).href.replace(/^http/, "ws"));
  ws.onmessage = (event) => {
    const { from, text } = JSON.parse(event.data);
    show(from + ": " + text);
  };
  ws.onclose = (event) => show("(closed " + event.code + " " + event.reason + ")");
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    if (input.value) ws.send(input.value);
    input.value = "";
  };
</script>
`;
