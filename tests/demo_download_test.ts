// `deno task demo` on a fresh machine downloads nothing: deno.json names no
// npm package (deno task installs every one it names before any task) and
// the lockfile is not read by the task runner, so the test-only packages
// (playwright-core, ws, deno-std) stay out of the demo's way.

import { assert, assertEquals } from "@std/assert";

Deno.test("deno task demo downloads nothing into an empty DENO_DIR", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "demo_deno_dir_" });
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo"],
      cwd: new URL("..", import.meta.url),
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const output = new TextDecoder().decode(stdout) +
      new TextDecoder().decode(stderr);
    assertEquals(code, 0, output);
    assert(output.includes("server shut down"), output);
    assertEquals(
      output.split("\n").filter((line) => line.startsWith("Download")),
      [],
    );
    const npm = [];
    try {
      for await (const entry of Deno.readDir(`${denoDir}/npm`)) npm.push(entry);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    assertEquals(npm, []);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
