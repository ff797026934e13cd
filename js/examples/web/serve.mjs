// A front end on its own origin: serves this folder and the SDK's build, and tells the page where the service is.
//   node js/examples/web/serve.mjs --port 5173 --api http://127.0.0.1:8000
// The service must list this origin: CORS_ALLOWED_ORIGINS=http://127.0.0.1:5173 sessionward serve
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { port: { type: "string", default: "5173" }, api: { type: "string", default: "http://127.0.0.1:8000" } },
});
const here = new URL(".", import.meta.url);
const FILES = {
  "/": [new URL("index.html", here), "text/html"],
  "/app.js": [new URL("app.js", here), "text/javascript"],
  "/sessionward.js": [new URL("../../dist/sessionward.js", here), "text/javascript"],
};

createServer(async (request, response) => {
  const path = new URL(request.url, "http://localhost").pathname;
  if (path === "/config.js") {
    response.writeHead(200, { "content-type": "text/javascript" });
    return response.end(`export const SERVICE = ${JSON.stringify(values.api)};\n`);
  }
  const file = FILES[path];
  if (file === undefined) {
    response.writeHead(404, { "content-type": "text/plain" });
    return response.end("not found\n");
  }
  response.writeHead(200, { "content-type": `${file[1]}; charset=utf-8`, "cache-control": "no-cache" });
  response.end(await readFile(file[0]));
}).listen(Number(values.port), "127.0.0.1", () => {
  console.log(`front end on http://127.0.0.1:${values.port}, service at ${values.api}`);
});
