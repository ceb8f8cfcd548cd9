// The page a password-reset link opens, /account/reset-password, in
// Chromium: an operator's reset link (`latchkey users reset-link`), a
// person who sets a new password with the keyboard; the token leaves the
// address bar at once, a mismatch and a used link are told in words, and
// the new password signs in.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { browser, outputDir, startLatchkey } from "./harness.mjs";

const USER = "link-person";
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a freshly chosen passphrase";
let lk, chrome;

before(async () => {
  lk = await startLatchkey();
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await lk?.stop();
});

async function signIn(password) {
  const r = await fetch(lk.base + "/v1/sign-in", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: USER, password }),
  });
  return r.status;
}

test("a reset link opens a page that sets the new password", async () => {
  const up = await fetch(lk.base + "/v1/sign-up", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: USER, password: PASSWORD }),
  });
  assert.equal(up.status, 201);
  const { link } = lk.operator(["users", "reset-link", USER]);
  const token = new URL(link).searchParams.get("token");
  assert.equal(token.length, 43);

  const page = await chrome.newPage();
  const url = `${lk.base}/account/reset-password?token=${token}`;
  await page.goto(url);
  await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
  assert.ok(!page.url().includes(token), `the token left the address bar: ${page.url()}`);

  await page.getByLabel("New password").fill(NEW_PASSWORD);
  await page.getByLabel("The same password again").fill("something else entirely");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByRole("status").filter({ hasText: "The two passwords differ." }).waitFor();

  await page.getByLabel("The same password again").fill(NEW_PASSWORD);
  await page.getByLabel("The same password again").press("Enter");
  const outcome = page.getByRole("status");
  await outcome.filter({ hasNotText: "differ" }).filter({ hasText: /\w/ }).waitFor();
  await page.screenshot({ path: join(outputDir, "reset-password-done.png"), fullPage: true });
  assert.equal(await outcome.getAttribute("class"), "done", await outcome.textContent());
  assert.equal(await signIn(PASSWORD), 401);
  assert.equal(await signIn(NEW_PASSWORD), 200);

  // The same link again: used, and said so in words.
  await page.goto(url);
  await page.getByLabel("New password").fill("yet another passphrase");
  await page.getByLabel("The same password again").fill("yet another passphrase");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await outcome.filter({ hasText: "This link is invalid, expired or already used." }).waitFor();
  await page.close();
});
