// The account page: sign in (the refresh token stays in the HttpOnly
// cookie), who you are, your sessions (end any, or all but this one), and a
// password change. Everything goes through @latchkey/client; errors are
// shown in words.

import { LatchkeyClient, LatchkeyError } from "./client/index.js";

const client = new LatchkeyClient({ baseUrl: location.origin, tokenDelivery: "cookie" });
const $ = (id) => document.getElementById(id);

/** What a person is told about a refused request. */
function inWords(error) {
  if (!(error instanceof LatchkeyError)) return "Something went wrong. Please try again.";
  switch (error.code) {
    case "invalid_grant":
      return error.status === 400
        ? "Your current password is not right."
        : "That username and password do not match an account.";
    case "invalid_token":
      return "You have been signed out. Please sign in again.";
    case "slow_down":
      return `Too many attempts. Please wait ${error.retryAfter ?? "a few"} seconds and try again.`;
    case "temporarily_unavailable":
      return "The service is busy right now. Please try again in a moment.";
    case "not_found":
      return "That session has already ended.";
    case "network_error":
      return "The service cannot be reached. Check your connection and try again.";
    case "invalid_request":
      // The server names the rule (e.g. the password's) in plain words.
      return error.description ? sentence(error.description) : "That request was not accepted.";
    default:
      return "Something went wrong. Please try again.";
  }
}

function sentence(text) {
  const s = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function say(message) {
  $("status").textContent = message;
  $("problem").hidden = true;
}

function complain(error) {
  $("problem").textContent = inWords(error);
  $("problem").hidden = false;
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function show(signedIn) {
  $("signed-in").hidden = !signedIn;
  $("signed-out").hidden = signedIn;
  if (!signedIn) $("username").focus();
}

/** The apps the person consented to (third-party clients), each with a withdraw button. */
async function consents() {
  const answer = await client.fetch(`${location.origin}/v1/consents`);
  if (!answer.ok) throw new Error(`could not read the apps you allowed (${answer.status})`);
  return (await answer.json()).consents;
}

function appRow(c) {
  const row = document.createElement("tr");
  const app = document.createElement("td");
  app.textContent = c.client_id;
  const scope = document.createElement("td");
  scope.textContent = c.scope || "nothing beyond signing in";
  const since = document.createElement("td");
  since.textContent = when(c.granted_at);
  const action = document.createElement("td");
  const withdraw = document.createElement("button");
  withdraw.type = "button";
  withdraw.className = "quiet";
  withdraw.textContent = "Withdraw";
  withdraw.setAttribute("aria-label", `Withdraw ${c.client_id}'s access`);
  withdraw.addEventListener("click", () => act(async () => {
    const answer = await client.fetch(
      `${location.origin}/v1/consents/${encodeURIComponent(c.client_id)}`,
      { method: "DELETE" },
    );
    if (!answer.ok && answer.status !== 404) throw new Error(`withdrawing failed (${answer.status})`);
    return `${c.client_id} may no longer act for you; its sessions have ended.`;
  }));
  action.append(withdraw);
  row.append(app, scope, since, action);
  return row;
}

async function render() {
  const [me, sessions, allowed] = await Promise.all([client.me(), client.sessions(), consents()]);
  $("apps").replaceChildren(...allowed.map(appRow));
  $("apps-table").hidden = allowed.length === 0;
  $("no-apps").hidden = allowed.length > 0;
  $("me-username").textContent = me.username;
  $("me-id").textContent = me.id;
  $("me-roles").textContent = me.roles.length ? me.roles.join(", ") : "none";
  const rows = sessions.map((s) => {
    const row = document.createElement("tr");
    row.dataset.session = s.id;
    if (s.current) row.className = "this";
    const device = document.createElement("td");
    const app = s.client_id === "latchkey:browser" ? "the sign-in page" : s.client_id;
    device.textContent = (s.user_agent || "Unknown device") + ` via ${app}` + (s.current ? " (this browser)" : "");
    const address = document.createElement("td");
    address.textContent = s.ip || "unknown";
    const used = document.createElement("td");
    used.textContent = when(s.last_refreshed_at);
    const created = document.createElement("td");
    created.textContent = when(s.created_at);
    const action = document.createElement("td");
    const end = document.createElement("button");
    end.type = "button";
    end.className = "quiet";
    end.textContent = s.current ? "Sign out here" : "End session";
    end.setAttribute("aria-label", `${end.textContent}: ${device.textContent}, last used ${used.textContent}`);
    end.addEventListener("click", () => act(async () => {
      if (s.current) {
        await client.signOut("current");
        return "You are signed out.";
      }
      await client.endSession(s.id);
      return "That session has ended.";
    }));
    action.append(end);
    row.append(device, address, used, created, action);
    return row;
  });
  $("sessions").replaceChildren(...rows);
}

/** Runs `step`, says what it returns, shows the account again. */
async function act(step) {
  try {
    const done = await step();
    if (client.signedIn) await render();
    show(client.signedIn);
    say(done);
  } catch (error) {
    complain(error);
    show(client.signedIn);
  }
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    await client.signIn({ username: $("username").value, password: $("password").value });
    $("password").value = "";
    return "You are signed in.";
  });
});

$("sign-out").addEventListener("click", () => act(async () => {
  await client.signOut("current");
  return "You are signed out.";
}));

$("sign-out-others").addEventListener("click", () => act(async () => {
  await client.signOut("others");
  return "You are signed out everywhere else.";
}));

$("change-password").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    await client.changePassword($("current-password").value, $("new-password").value);
    $("current-password").value = "";
    $("new-password").value = "";
    return "Your password is changed. Every other session has ended.";
  });
});

client.addEventListener("sessionended", () => {
  show(false);
  say("You have been signed out.");
});

act(async () => ((await client.restore()) ? "" : "Please sign in."));
