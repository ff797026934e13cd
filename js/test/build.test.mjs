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
