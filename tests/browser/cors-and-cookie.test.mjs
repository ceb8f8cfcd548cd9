// CORS and the refresh cookie, in Chromium: a page on an allowed origin
// signs in with cookie delivery and refreshes with credentials; the cookie
// is HttpOnly and never in a JSON body; a page on a third, disallowed port
// (the same site: the browser sends it the cookie too) can neither read an
// answer nor make the server rotate the cookie's token.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { browser, counter, startLatchkey, staticSite } from "./harness.mjs";

const PAGE = "<!doctype html><meta charset=utf-8><title>page</title><body>";
let app, evil, lk, chrome;

before(async () => {
  app = await staticSite({ routes: { "/": PAGE } });
  evil = await staticSite({ routes: { "/": PAGE } });
  lk = await startLatchkey(["--cors-allowed-origin", app.origin]);
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await lk?.stop();
  await app?.close();
  await evil?.close();
});

const rotations = () => counter(lk.base, "latchkey_refreshes_total", { outcome: "rotated" });
const refusedRefreshes = () =>
  counter(lk.base, "latchkey_http_requests_total", { route: "/v1/tokens/refresh", status: "403" });

test("an allowed origin signs in with the cookie; another origin can neither read nor refresh", async () => {
  const context = await chrome.newContext();
  const page = await context.newPage();
  await page.goto(app.origin + "/");
  const signedIn = await page.evaluate(async (base) => {
    const json = { "content-type": "application/json" };
    const user = { username: "browser-ann", password: "correct horse battery staple" };
    const up = await fetch(base + "/v1/sign-up", { method: "POST", headers: json, body: JSON.stringify(user) });
    const inn = await fetch(base + "/v1/sign-in", {
      method: "POST", headers: json, credentials: "include",
      body: JSON.stringify({ ...user, token_delivery: "cookie" }),
    });
    const body = await inn.json();
    const refreshed = await fetch(base + "/v1/tokens/refresh", {
      method: "POST", headers: json, credentials: "include", body: "{}",
    });
    return { up: up.status, in: inn.status, body, refreshed: refreshed.status,
      refreshedBody: await refreshed.json(), cookies: document.cookie };
  }, lk.base);
  assert.equal(signedIn.up, 201);
  assert.equal(signedIn.in, 200);
  assert.equal(typeof signedIn.body.access_token, "string");
  assert.equal("refresh_token" in signedIn.body, false, "no refresh token in the sign-in body");
  assert.equal(signedIn.refreshed, 200);
  assert.equal("refresh_token" in signedIn.refreshedBody, false, "no refresh token in the refresh body");
  assert.ok(!signedIn.cookies.includes("latchkey_refresh"), `document.cookie: ${signedIn.cookies}`);
  const stored = (await context.cookies(lk.base)).find((c) => c.name === "__Host-latchkey_refresh");
  assert.ok(stored, "the browser keeps the cookie");
  assert.equal(stored.httpOnly, true);
  assert.equal(stored.secure, true);
  assert.equal(stored.sameSite, "Strict");

  const rotatedBefore = await rotations();
  const refusedBefore = await refusedRefreshes();
  const attacker = await context.newPage();
  await attacker.goto(evil.origin + "/");
  const attempts = await attacker.evaluate(async (base) => {
    const outcome = async (p) => p.then((r) => `answered ${r.type} ${r.status}`, (e) => `failed: ${e.name}`);
    const read = await outcome(fetch(base + "/v1/sessions", { credentials: "include" }));
    const cors = await outcome(fetch(base + "/v1/tokens/refresh", {
      method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: "{}",
    }));
    // Requests a page may send without a preflight: the server refuses them.
    const simple = await outcome(fetch(base + "/v1/tokens/refresh", {
      method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: "{}",
    }));
    const frame = document.createElement("iframe");
    frame.name = "sink";
    document.body.append(frame);
    const form = document.createElement("form");
    Object.assign(form, { method: "POST", action: base + "/v1/tokens/refresh", target: "sink", enctype: "text/plain" });
    const field = document.createElement("input");
    Object.assign(field, { name: '{"a":"', value: '"}' });
    form.append(field);
    document.body.append(form);
    const loaded = new Promise((ok) => frame.addEventListener("load", ok, { once: true }));
    form.submit();
    await Promise.race([loaded, new Promise((ok) => setTimeout(ok, 5000))]);
    return { read, cors, simple };
  }, lk.base);
  assert.equal(attempts.read, "failed: TypeError", "another origin cannot read an answer");
  assert.equal(attempts.cors, "failed: TypeError", "the preflight fails for another origin");
  assert.equal(attempts.simple, "answered opaque 0");
  assert.equal(await rotations(), rotatedBefore, "no rotation from the other origin");
  assert.equal(await refusedRefreshes(), refusedBefore + 2, "the text/plain fetch and the form were refused");

  // The app's cookie still works.
  const again = await page.evaluate(async (base) => (await fetch(base + "/v1/tokens/refresh", {
    method: "POST", headers: { "content-type": "application/json" }, credentials: "include", body: "{}",
  })).status, lk.base);
  assert.equal(again, 200);
  assert.equal(await rotations(), rotatedBefore + 1);
  await context.close();
});
