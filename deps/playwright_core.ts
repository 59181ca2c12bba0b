// `playwright-core` for tests/peers_test.ts (it drives the system's
// Chromium), from npm; local for the same reason as ./std_assert.ts.

export { chromium } from "npm:playwright-core@1.65.1";
