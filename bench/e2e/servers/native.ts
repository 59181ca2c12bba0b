// Deno's native server: Deno.serve + Deno.upgradeWebSocket, echo.
// `deno run -A bench/e2e/servers/native.ts --port N`
const i = Deno.args.indexOf("--port");
const port = Number(Deno.args[i + 1] ?? 9000);
Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(`native listening on ${port}`),
}, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
