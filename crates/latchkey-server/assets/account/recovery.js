// The password-reset and email-verification pages: read the link's token
// from the address, take it out of the address bar (and so out of the
// history), post it to the API on the user's say-so, and tell the outcome
// in words. No third-party code; the CSP allows only this file.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const token = new URLSearchParams(window.location.search).get("token") || "";
  window.history.replaceState(null, "", window.location.pathname);
  const form = document.getElementById("form");
  const outcome = document.getElementById("outcome");

  function tell(text, kind) {
    outcome.textContent = text;
    outcome.className = kind;
  }

  if (!token) {
    tell("This link has no token. Open the link from the mail again, or ask for a new one.", "error");
    form.hidden = true;
    return;
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let error = null;
    if (!response.ok) {
      try { error = await response.json(); } catch (e) { error = null; }
    }
    return { status: response.status, error: error };
  }

  function failure(result) {
    if (result.error && result.error.error === "invalid_grant") {
      return "This link is invalid, expired or already used. Ask for a new one.";
    }
    if (result.status === 429) {
      return "Too many attempts. Wait a minute and try again.";
    }
    if (result.error && result.error.error === "invalid_request") {
      return result.error.error_description;
    }
    return "Something went wrong (" + result.status + "). Try again in a moment.";
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const button = form.querySelector("button");
    let result;
    if (page === "reset-password") {
      const password = document.getElementById("password").value;
      if (password !== document.getElementById("confirm").value) {
        tell("The two passwords differ.", "error");
        return;
      }
      button.disabled = true;
      tell("Setting your new password…", "");
      result = await post("/v1/password/reset", { token: token, new_password: password });
      if (result.status === 204) {
        form.hidden = true;
        tell("Your password is set. Every device was signed out: sign in again with the new password.", "done");
        return;
      }
    } else {
      button.disabled = true;
      tell("Confirming…", "");
      result = await post("/v1/email/verify", { token: token });
      if (result.status === 204) {
        form.hidden = true;
        tell("Your email address is confirmed.", "done");
        return;
      }
    }
    button.disabled = false;
    tell(failure(result), "error");
  });
})();
