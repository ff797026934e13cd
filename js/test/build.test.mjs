// The built-in pages import the committed build (src/sessionward/web/static/sessionward.js) so that `make run`
// needs no Node; it must be exactly what js/src builds to, or the pages and the package would drift apart.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { bundle } from "../build.mjs";

const STATIC = new URL("../../src/sessionward/web/static/sessionward.js", import.meta.url);

test("the build the pages serve equals a fresh build of js/src (run `make js-build` after a change)", async () => {
  assert.equal(await readFile(STATIC, "utf8"), await bundle());
});

test("the package has no runtime dependencies", async () => {
  const manifest = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(manifest.dependencies, undefined);
  assert.equal(manifest.peerDependencies, undefined);
});

test("npm pack makes a package that installs and imports, with its declarations", async () => {
  const { execFileSync } = await import("node:child_process");
  const { mkdtemp, writeFile, readdir } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const folder = await mkdtemp(join(tmpdir(), "sessionward-pack-"));
  const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const tarball = npm(["pack", "--silent", "--pack-destination", folder], new URL("..", import.meta.url).pathname).trim();
  const app = join(folder, "app");
  execFileSync("mkdir", [app]);
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  npm(["install", "--offline", "--no-audit", "--no-fund", join(folder, tarball)], app);
  const installed = await readdir(join(app, "node_modules", "sessionward-js", "dist"));
  assert.deepEqual(installed.filter((name) => name.endsWith(".js")).sort(), ["revocations.js", "sessionward.js"]);
  assert.ok(installed.includes("index.d.ts") && installed.includes("revocations.d.ts"));
  const probe = "import { createClient, memoryStorage } from 'sessionward-js'; " +
    "const c = createClient({ url: 'http://127.0.0.1:1', storage: memoryStorage() }); console.log(c.mode, typeof c.fetch);";
  assert.equal(execFileSync(process.execPath, ["--input-type=module", "-e", probe], { cwd: app, encoding: "utf8" }), "body function\n");
  const backend = "import { RevocationList } from 'sessionward-js/revocations'; " +
    "const r = new RevocationList({ url: 'http://127.0.0.1:1', serviceKey: 'swk_x' }); console.log(r.connected, r.isRevoked('s'));";
  assert.equal(execFileSync(process.execPath, ["--input-type=module", "-e", backend], { cwd: app, encoding: "utf8" }), "false false\n");
});
