// Five tabs of the sample app (examples/spa) on another loopback origin,
// cookie delivery, access tokens that live 5 s, every tab calling a
// protected route every 500 ms for 60 s: no tab is signed out, no call
// fails, and the tabs together refresh about once per token lifetime
// (counted on the server), because one tab refreshes for all.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { serveSpa } from "../../examples/spa/serve.mjs";
import { browser, counter, outputDir, startLatchkey } from "./harness.mjs";

const TABS = 5;
const TTL_SECONDS = 5;
const RUN_SECONDS = Number(process.env.TABS_RUN_SECONDS ?? 60);
let spa, lk, chrome;

before(async () => {
  spa = await serveSpa(0);
  lk = await startLatchkey(["--cors-allowed-origin", spa.origin, "--access-ttl", `${TTL_SECONDS}s`]);
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await lk?.stop();
  await spa?.close();
});

const refreshRequests = () => counter(lk.base, "latchkey_http_requests_total", { route: "/v1/tokens/refresh" });

test(`${TABS} tabs share one refresh per token lifetime for ${RUN_SECONDS} s`, async () => {
  const user = { username: "tabs-person", password: "correct horse battery staple" };
  const up = await fetch(lk.base + "/v1/sign-up", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(user),
  });
  assert.equal(up.status, 201);

  const context = await chrome.newContext();
  const url = `${spa.origin}/?latchkey=${encodeURIComponent(lk.base)}`;
  const first = await context.newPage();
  await first.goto(url);
  await first.evaluate(() => window.spaReady);
  await first.getByLabel("Username").fill(user.username);
  await first.getByLabel("Password").fill(user.password);
  await first.getByRole("button", { name: "Sign in" }).click();
  await first.getByText("Signed in.").waitFor();
  const tabs = [first];
  for (let i = 1; i < TABS; i++) {
    const tab = await context.newPage();
    await tab.goto(url);
    assert.equal(await tab.evaluate(() => window.spaReady), true, `tab ${i} picks the session up from the cookie`);
    tabs.push(tab);
  }

  const startCount = await refreshRequests();
  const started = Date.now();
  const perLifetime = [];
  let last = startCount;
  for (let t = TTL_SECONDS; t <= RUN_SECONDS; t += TTL_SECONDS) {
    await new Promise((ok) => setTimeout(ok, started + t * 1000 - Date.now()));
    const now = await refreshRequests();
    perLifetime.push(now - last);
    last = now;
  }
  const stats = await Promise.all(tabs.map((tab) => tab.evaluate(() => ({ ...window.spaStats }))));
  const total = last - startCount;
  const report = { tabs: TABS, ttlSeconds: TTL_SECONDS, runSeconds: RUN_SECONDS, refreshRequests: total, perLifetime, stats };
  writeFileSync(join(outputDir, "tabs-refresh-counts.json"), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report));
  await first.screenshot({ path: join(outputDir, "spa-tab.png") });

  for (const [i, s] of stats.entries()) {
    assert.equal(s.signedOut, 0, `tab ${i} was signed out`);
    assert.equal(s.failed, 0, `tab ${i}: failed calls ${s.errors.join(", ")}`);
    assert.ok(s.ok >= RUN_SECONDS, `tab ${i} made only ${s.ok} calls`);
  }
  const windows = RUN_SECONDS / TTL_SECONDS;
  assert.ok(total <= 2 * windows, `${total} refresh requests in ${windows} lifetimes: ${perLifetime}`);
  for (const [i, n] of perLifetime.entries()) assert.ok(n <= 2, `lifetime ${i}: ${n} refresh requests`);
  await context.close();
});
