// ioredis, the one npm package a published entry point uses (./redis): named
// here, not in deno.json, so that `deno task` does not install it for
// everyone (see deps/ for the tests' packages).

export { Redis } from "npm:ioredis@5.9.3";
