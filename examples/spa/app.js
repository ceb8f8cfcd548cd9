// A single-page app on its own origin using Latchkey on another: cookie
// delivery (the refresh token never reaches this script), the access token
// in memory, and `client.fetch` for calls to a protected route. Which
// Latchkey to use comes from `?latchkey=<base URL>` (default
// http://127.0.0.1:8080); that server must list this page's origin in
// `cors_allowed_origins`.

import { LatchkeyClient } from "./client/index.js";

const latchkey = new URL(location.href).searchParams.get("latchkey") ?? "http://127.0.0.1:8080";
const client = new LatchkeyClient({ baseUrl: latchkey, tokenDelivery: "cookie" });
const $ = (id) => document.getElementById(id);

/** What the tests read: how this tab has fared. */
const stats = (window.spaStats = { ok: 0, failed: 0, tokens: 0, signedOut: 0, errors: [] });

function showSignedIn(signedIn) {
  $("sign-in").hidden = signedIn;
  $("sign-out").hidden = !signedIn;
  $("state").textContent = signedIn ? "Signed in." : "Signed out.";
}

client.addEventListener("tokenrefreshed", () => {
  stats.tokens += 1;
  $("tokens").textContent = String(stats.tokens);
});
client.addEventListener("sessionended", () => {
  stats.signedOut += 1;
  showSignedIn(false);
});

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await client.signIn({ username: $("username").value, password: $("password").value });
    showSignedIn(true);
  } catch (error) {
    $("state").textContent = `Could not sign in: ${error.description || error.message}`;
  }
});
$("sign-out").addEventListener("click", () => client.signOut("current").then(() => showSignedIn(false)));

/** The app's own work: a call to a protected route every half second. */
async function call() {
  if (!client.signedIn) return;
  try {
    const response = await client.fetch(new URL("/v1/me", latchkey));
    if (response.ok) stats.ok += 1;
    else {
      stats.failed += 1;
      stats.errors.push(`${response.status}`);
    }
  } catch (error) {
    stats.failed += 1;
    stats.errors.push(String(error));
  }
  $("ok").textContent = String(stats.ok);
  $("failed").textContent = String(stats.failed);
}
setInterval(call, 500);

window.spaReady = client.restore().then(
  (signedIn) => (showSignedIn(signedIn), signedIn),
  (error) => { $("state").textContent = `Latchkey cannot be reached: ${error.message}`; return false; },
);
