// The package's build: one ES module (dist/sessionward.js, also served to the built-in pages from /static/), the
// backend's revocation list (dist/revocations.js, never in the pages' bundle), their declarations (tsc), and with
// --minify a minified copy of the first whose gzipped size is printed.
import { execFileSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export const OPTIONS = {
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  legalComments: "none",
  write: false,
};

/** The bundle's text, as the pages and the package get it. */
export async function bundle(extra = {}) {
  const result = await build({ ...OPTIONS, ...extra });
  return result.outputFiles[0].text;
}

async function main() {
  const { mkdir, writeFile } = await import("node:fs/promises");
  await mkdir("dist", { recursive: true });
  await writeFile("dist/sessionward.js", await bundle());
  await writeFile("dist/revocations.js", await bundle({ entryPoints: ["src/revocations.ts"] }));
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
  if (process.argv.includes("--minify")) {
    const minified = await bundle({ minify: true });
    await writeFile("dist/sessionward.min.js", minified);
    const gzipped = gzipSync(minified, { level: 9 }).length;
    console.log(`sessionward.min.js: ${minified.length} bytes, ${gzipped} bytes gzipped`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
