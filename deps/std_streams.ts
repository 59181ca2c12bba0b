// `@std/streams` for the examples and the tests, from the npm package
// deno-std; local for the same reason as ./std_assert.ts.

// deno-lint-ignore no-import-prefix -- the point of this file
import * as std from "npm:deno-std@1.4.0/streams/mod.js";

export const TextLineStream = std.TextLineStream;
