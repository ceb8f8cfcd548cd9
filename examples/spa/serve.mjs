// Serves the sample app and the compiled client on 127.0.0.1:
//   node examples/spa/serve.mjs [port]        (default 5173; 0: any free port)
// then open http://127.0.0.1:<port>/?latchkey=http://127.0.0.1:8080 with
// Latchkey started as
//   latchkey serve --cors-allowed-origin http://127.0.0.1:<port>
// The client comes from clients/js/dist (`npm run build` there), or the
// copy the server embeds for its account page.

import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const built = join(root, "clients", "js", "dist");
const clientDir = existsSync(join(built, "index.js"))
  ? built
  : join(root, "crates", "latchkey-server", "assets", "account", "client");
const TYPES = { ".html": "text/html", ".js": "text/javascript" };

/** Starts the server; resolves with its origin and a way to stop it. */
export async function serveSpa(port = 0) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const [dir, rel] = path.startsWith("/client/") ? [clientDir, path.slice(8)] : [here, path === "/" ? "index.html" : path.slice(1)];
    const file = normalize(join(dir, rel));
    if (!file.startsWith(dir) || !existsSync(file) || file.endsWith(".mjs")) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((ok) => server.close(ok)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { origin } = await serveSpa(Number(process.argv[2] ?? 5173));
  console.log(`sample app on ${origin}/?latchkey=http://127.0.0.1:8080`);
}
