// What every browser test needs: the latchkey binary serving on a port of
// 127.0.0.1 with a throwaway data directory, static pages served from other
// loopback ports (other origins of the same site), Debian's Chromium driven
// by playwright-core, and the server's own counters read from /metrics.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const bin = process.env.LATCHKEY_BIN;
if (!bin) throw new Error("LATCHKEY_BIN must name the latchkey binary");

/** Where screenshots and logs go: kept after the run. */
export const outputDir = process.env.BROWSER_TEST_OUTPUT ?? join(tmpdir(), "latchkey-browser-tests");
mkdirSync(outputDir, { recursive: true });

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css" };

/** Serves `dir` (or the `routes` map of path -> HTML) on 127.0.0.1:0. */
export async function staticSite({ dir, routes = {} }) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (routes[path] !== undefined) {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(routes[path]);
      return;
    }
    if (dir) {
      const file = normalize(join(dir, path === "/" ? "index.html" : path));
      if (file.startsWith(dir)) {
        try {
          const body = readFileSync(file);
          res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
          res.end(body);
          return;
        } catch {}
      }
    }
    res.writeHead(404).end();
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, close: () => new Promise((ok) => server.close(ok)) };
}

/**
 * Starts `latchkey serve` with `flags`; resolves with its base URL once
 * /healthz answers. Cheap Argon2 through a config file.
 */
export async function startLatchkey(flags = []) {
  const work = mkdtempSync(join(tmpdir(), "latchkey-browser-"));
  const config = join(work, "latchkey.toml");
  writeFileSync(config, "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n");
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("LATCHKEY_") && k !== "LATCHKEY_LOG") delete env[k];
  const child = spawn(bin, ["--log-json", "serve", "--listen", "127.0.0.1:0", "--data-dir", join(work, "data"),
    "--config", config, ...flags], { env, stdio: ["ignore", "ignore", "pipe"] });
  const log = [];
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`latchkey did not start:\n${log.join("\n")}`)), 30_000);
    child.on("exit", (code) => reject(new Error(`latchkey exited (${code}):\n${log.join("\n")}`)));
    let rest = "";
    child.stderr.on("data", (chunk) => {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop();
      for (const line of lines) {
        log.push(line);
        const m = line.match(/"message":"listening","addr":"([^"]+)"/);
        if (m) {
          clearTimeout(timer);
          resolve(`http://${m[1]}`);
        }
      }
    });
  });
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${base}/healthz`).catch(() => null))?.ok) break;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return {
    base,
    log,
    /** Runs `latchkey ARGS…` on this server's data; its stdout as JSON. */
    operator(args) {
      const out = execFileSync(bin, [...args, "--data-dir", join(work, "data"), "--config", config], {
        env: { ...env, LATCHKEY_LOG: "error" },
      });
      return JSON.parse(out.toString());
    },
    async stop() {
      child.kill();
      await new Promise((ok) => child.once("exit", ok).once("close", ok));
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** The sum of a counter's samples on /metrics whose labels include `labels`. */
export async function counter(base, name, labels = {}) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue;
    const [series, value] = line.split(/ (?=[^ ]+$)/);
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += Number(value);
  }
  return sum;
}

/** Debian's Chromium, headless; nothing is downloaded. */
export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
}
