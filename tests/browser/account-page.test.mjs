// The account page, /account, in Chromium: a person whose account was made
// through the API signs in on the page with the keyboard, sees both of
// their sessions, ends the other one, and changes their password; errors
// are shown in words. Screenshots go to the output folder.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { browser, outputDir, startLatchkey } from "./harness.mjs";

const USER = "page-person";
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a new and longer passphrase";
let lk, chrome;

before(async () => {
  lk = await startLatchkey();
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await lk?.stop();
});

async function api(path, body) {
  const r = await fetch(lk.base + path, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

test("sign in on the page, see two sessions, end the other one, change the password", async () => {
  assert.equal((await api("/v1/sign-up", { username: USER, password: PASSWORD })).status, 201);
  // The other session: signed in elsewhere, through the API.
  const elsewhere = await api("/v1/sign-in", { username: USER, password: PASSWORD });
  assert.equal(elsewhere.status, 200);

  const page = await chrome.newPage({ userAgent: "Latchkey browser test (Chromium)" });
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  // Refused requests are logged by the browser too; those are expected.
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource")
    && problems.push(m.text()));
  await page.goto(lk.base + "/account");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  // A wrong password is told in words, not codes.
  await page.getByLabel("Username", { exact: true }).fill(USER);
  await page.getByLabel("Password", { exact: true }).fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  const problem = page.getByRole("alert");
  await problem.waitFor();
  assert.equal(await problem.textContent(), "That username and password do not match an account.");

  // With the keyboard only: the fields are labelled and the form submits on Enter.
  await page.getByLabel("Password", { exact: true }).focus();
  await page.keyboard.press("Control+A");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Who you are" }).waitFor();
  const rows = page.locator("#sessions tr");
  await rows.nth(1).waitFor();
  assert.equal(await rows.count(), 2, "two sessions");
  assert.equal(await page.locator("#me-username").textContent(), USER);
  const here = page.locator("#sessions tr.this");
  assert.match(await here.textContent(), /Latchkey browser test \(Chromium\) via \S+ \(this browser\)/);
  await page.screenshot({ path: join(outputDir, "account-two-sessions.png"), fullPage: true });

  // End the other session.
  await page.getByRole("button", { name: /^End session/ }).click();
  await page.getByRole("status").filter({ hasText: "That session has ended." }).waitFor();
  assert.equal(await rows.count(), 1);
  const refreshed = await api("/v1/tokens/refresh", { refresh_token: elsewhere.body.refresh_token });
  assert.equal(refreshed.status, 401, "the other session is over");

  // Change the password.
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByLabel("New password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByRole("status").filter({ hasText: "Your password is changed." }).waitFor();
  await page.screenshot({ path: join(outputDir, "account-password-changed.png"), fullPage: true });
  assert.equal((await api("/v1/sign-in", { username: USER, password: PASSWORD })).status, 401);
  assert.equal((await api("/v1/sign-in", { username: USER, password: NEW_PASSWORD })).status, 200);

  // A reload keeps the person signed in (the HttpOnly cookie), without a password.
  await page.reload();
  await page.getByRole("heading", { name: "Who you are" }).waitFor();
  assert.deepEqual(problems, []);
  await page.close();
});
