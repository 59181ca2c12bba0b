// `ws` for the interop tests and the benchmarks, from npm; local for the
// same reason as ./std_assert.ts. Node runs bench/e2e/servers/*.mjs with its
// own node_modules and never reads this.

export { default, WebSocketServer } from "npm:ws@8.23.0";
