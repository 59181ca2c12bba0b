// `@std/assert` for the tests and the doc examples, from the npm package
// deno-std (the same functions, untyped). A local module rather than an
// `npm:` entry in deno.json's imports: `deno task` installs every npm
// package that deno.json names before it runs any task, so the demo would
// download what only the tests use.

// deno-lint-ignore no-import-prefix -- the point of this file
import * as std from "npm:deno-std@1.4.0/assert/mod.js";

export const AssertionError = std.AssertionError;
export const assert = std.assert;
export const assertAlmostEquals = std.assertAlmostEquals;
export const assertArrayIncludes = std.assertArrayIncludes;
export const assertEquals = std.assertEquals;
export const assertExists = std.assertExists;
export const assertFalse = std.assertFalse;
export const assertGreater = std.assertGreater;
export const assertGreaterOrEqual = std.assertGreaterOrEqual;
export const assertInstanceOf = std.assertInstanceOf;
export const assertIsError = std.assertIsError;
export const assertLess = std.assertLess;
export const assertLessOrEqual = std.assertLessOrEqual;
export const assertMatch = std.assertMatch;
export const assertNotEquals = std.assertNotEquals;
export const assertNotMatch = std.assertNotMatch;
export const assertObjectMatch = std.assertObjectMatch;
export const assertRejects = std.assertRejects;
export const assertStrictEquals = std.assertStrictEquals;
export const assertStringIncludes = std.assertStringIncludes;
export const assertThrows = std.assertThrows;
export const equal = std.equal;
export const fail = std.fail;
export const unreachable = std.unreachable;
