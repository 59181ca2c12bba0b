// Runs a server script and, on SIGUSR1, collects garbage and writes
// Deno.memoryUsage() to $HEAP_FILE. Needs --v8-flags=--expose-gc.
// `deno run -A --v8-flags=--expose-gc heap_wrap.ts SCRIPT --port N`
const file = Deno.env.get("HEAP_FILE")!;
Deno.addSignalListener("SIGUSR1", () => {
  // deno-lint-ignore no-explicit-any
  (globalThis as any).gc?.();
  Deno.writeTextFileSync(file, JSON.stringify(Deno.memoryUsage()));
});
await import(new URL(Deno.args[0]!, `file://${Deno.cwd()}/`).href);
