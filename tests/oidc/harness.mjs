// What the relying-party tests need: the latchkey binary serving on a port
// of 127.0.0.1 with a throwaway data directory (its issuer is its base URL),
// the relying party's own loopback callback server, and Debian's Chromium
// driven by playwright-core. Every wait is bounded.

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const bin = process.env.LATCHKEY_BIN;
if (!bin) throw new Error("LATCHKEY_BIN must name the latchkey binary");

const here = dirname(fileURLToPath(import.meta.url));

/** Where screenshots go: kept after the run. */
export const outputDir = process.env.OIDC_TEST_OUTPUT ?? join(tmpdir(), "latchkey-oidc-tests");
mkdirSync(outputDir, { recursive: true });

/** The installed version of an npm package of this suite. */
export function installedVersion(name) {
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

/**
 * Starts `latchkey serve` on 127.0.0.1:0 with `flags`; resolves once
 * /healthz answers. Cheap Argon2 through a config file.
 */
export async function startLatchkey(flags = []) {
  const work = mkdtempSync(join(tmpdir(), "latchkey-oidc-"));
  const config = join(work, "latchkey.toml");
  writeFileSync(config, "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n");
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("LATCHKEY_") && k !== "LATCHKEY_LOG") delete env[k];
  const data = join(work, "data");
  const child = spawn(bin, ["--log-json", "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
    "--config", config, ...flags], { env, stdio: ["ignore", "ignore", "pipe"] });
  const log = [];
  const exited = new Promise((ok) => child.once("exit", ok));
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`latchkey did not start:\n${log.join("\n")}`)), 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`latchkey exited (${code}):\n${log.join("\n")}`));
    });
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
  let healthy = false;
  for (let i = 0; i < 200 && !healthy; i++) {
    healthy = (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2_000) }).catch(() => null))?.ok ?? false;
    if (!healthy) await new Promise((ok) => setTimeout(ok, 50));
  }
  if (!healthy) throw new Error(`latchkey at ${base} never answered /healthz`);
  return {
    base,
    log,
    /** Runs `latchkey ARGS… --data-dir … --config …`; its stdout as JSON. */
    operator(args) {
      const out = execFileSync(bin, [...args, "--data-dir", data, "--config", config], {
        env: { ...env, LATCHKEY_LOG: "error" },
        timeout: 30_000,
      });
      return JSON.parse(out.toString());
    },
    /** A JSON POST to the server's API: `{status, body}`. */
    async post(path, body) {
      const r = await fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      return { status: r.status, body: r.status === 204 ? null : await r.json() };
    },
    async stop() {
      child.kill();
      const killed = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killed);
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/**
 * The relying party's redirect endpoints on 127.0.0.1:0: every path answers
 * a small page, and each request's URL is kept (`seen`).
 */
export async function callbackServer() {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push(req.url);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!DOCTYPE html><title>Relying party</title><h1>Back at the app</h1>");
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    seen,
    close: () => new Promise((ok) => {
      server.closeAllConnections();
      server.close(ok);
    }),
  };
}

/** Debian's Chromium, headless; nothing is downloaded. */
export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
    timeout: 30_000,
  });
}
