// The real `latchkey` binary for the tests: `serve` on 127.0.0.1:0 in a
// throwaway data directory, with cheap Argon2 and no per-address rate
// limits (every test signs up from 127.0.0.1). Its address comes from the
// `listening` line of its JSON log on stderr, as the Rust test kit reads it.
//
// The binary: $LATCHKEY_BIN, else target/debug/latchkey of this repository
// (never built from here: build it with `cargo build --bin latchkey`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function serverBinary() {
    const bin = process.env.LATCHKEY_BIN || resolve(here, '../../../target/debug/latchkey');
    if (!existsSync(bin)) {
        throw new Error(`${bin} not found: build it (cargo build --bin latchkey) or set LATCHKEY_BIN`);
    }
    return bin;
}

/** Starts a server; `args` are extra `serve` flags. Resolves with `{ base, stop() }`. */
export async function startServer(args = []) {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-js-'));
    const config = join(dir, 'config.toml');
    await writeFile(
        config,
        '[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n' +
            '[rate_limits]\ntokens_per_minute = 0\nsign_up_per_minute = 0\n',
    );
    const child = spawn(
        serverBinary(),
        ['--log-json', 'serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--config', config, ...args],
        { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const log = [];
    const lines = createInterface({ input: child.stderr });
    const base = await new Promise((resolveBase, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${log.join('\n')}`)), 30_000);
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`server exited (${code}):\n${log.join('\n')}`));
        });
        lines.on('line', (line) => {
            if (log.length < 200) log.push(line);
            try {
                const entry = JSON.parse(line);
                if (entry?.fields?.message === 'listening' && typeof entry.fields.addr === 'string') {
                    clearTimeout(timer);
                    resolveBase(`http://${entry.fields.addr}`);
                }
            } catch {
                // not a JSON line
            }
        });
    });
    child.removeAllListeners('exit');
    return {
        base,
        async stop() {
            if (child.exitCode === null) {
                const exited = new Promise((r) => child.once('exit', r));
                child.kill('SIGTERM');
                const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
                await exited;
                clearTimeout(timer);
            }
            await rm(dir, { recursive: true, force: true });
        },
    };
}

let counter = 0;
/** A username no other test in this process uses. */
export function uniqueName(prefix = 'user') {
    counter += 1;
    return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export const PASSWORD = 'correct horse battery staple';

/**
 * A `fetch` that counts the requests per path (our own instrumentation of
 * the client's traffic, passed in through its `fetch` option).
 */
export function countingFetch() {
    const counts = new Map();
    const wrapped = (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
        return fetch(input, init);
    };
    wrapped.count = (path) => counts.get(path) ?? 0;
    return wrapped;
}

/** Resolves after `ms`. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` every 25 ms until it holds; fails after `limitMs`. */
export async function until(predicate, limitMs, what) {
    const deadline = Date.now() + limitMs;
    while (!(await predicate())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
        await sleep(25);
    }
}

/** The server's `latchkey_refreshes_total{outcome="…"}` from /metrics (0 when absent). */
export async function refreshMetric(base, outcome) {
    const text = await (await fetch(`${base}/metrics`)).text();
    const re = new RegExp(`^latchkey_refreshes_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)`, 'm');
    const m = text.match(re);
    return m ? Number(m[1]) : 0;
}
