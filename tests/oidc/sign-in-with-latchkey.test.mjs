// "Sign in with Latchkey" end to end, as an app built on npm openid-client
// v6 does it: discovery, an authorization request with PKCE (S256), state
// and nonce, the person signing in on Latchkey's hosted page in Chromium,
// the browser landing on the app's loopback callback, the code exchanged
// (openid-client validates the ID token: its RS256 signature against the
// JWKS, iss, aud, exp, nonce; and the callback's `iss`, RFC 9207), UserInfo, refresh,
// and RP-initiated logout. Then the remembered browser session, prompt=login,
// a confidential client (client_secret_basic) and a third-party client that
// asks for consent. Screenshots of the hosted pages go to the output folder.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as client from "openid-client";
import { browser, callbackServer, installedVersion, outputDir, startLatchkey } from "./harness.mjs";

const USER = "oidc-person";
const PASSWORD = "correct horse battery staple";
const EMAIL = "oidc-person@example.com";
const SCOPE = "openid profile email";
/** Bounds every page action and navigation. */
const PAGE_TIMEOUT_MS = 15_000;
/** Bounds each test. */
const TEST_TIMEOUT_MS = 90_000;

let lk, app, chrome, redirectUri, afterLogoutUri, portalSecret;

/**
 * The provider: a latchkey server with its default settings, the three apps
 * registered (public `spa`, confidential `portal`, third-party `partner`;
 * all redirect to the loopback app) and the person's account.
 */
async function provider() {
  // Without --issuer the issuer is http://<the bound address>, the base URL
  // the browser sees, so the hosted forms' Origin is the service's own.
  const server = await startLatchkey();
  const spa = server.operator(["clients", "create", "spa", "--redirect-uri", redirectUri,
    "--post-logout-redirect-uri", afterLogoutUri]);
  assert.deepEqual(spa.redirect_uris, [redirectUri]);
  const portal = server.operator(["clients", "create", "portal", "--type", "confidential",
    "--redirect-uri", redirectUri, "--post-logout-redirect-uri", afterLogoutUri]);
  assert.ok(portal.client_secret, "a confidential client's secret is printed once");
  server.operator(["clients", "create", "partner", "--third-party", "--redirect-uri", redirectUri]);
  const signUp = await server.post("/v1/sign-up", { username: USER, password: PASSWORD, email: EMAIL });
  assert.equal(signUp.status, 201, JSON.stringify(signUp.body));
  return { server, portalSecret: portal.client_secret };
}

before(async () => {
  app = await callbackServer();
  redirectUri = `${app.origin}/callback`;
  afterLogoutUri = `${app.origin}/signed-out`;
  // The default signing algorithm (EdDSA) for access tokens: ID tokens
  // still come from their own RS256 key lineage.
  ({ server: lk, portalSecret } = await provider());
  chrome = await browser();
  console.log(`relying party: openid-client ${installedVersion("openid-client")} `
    + `(oauth4webapi ${installedVersion("oauth4webapi")}, jose ${installedVersion("jose")}); `
    + `browser: playwright-core ${installedVersion("playwright-core")} driving Chromium ${chrome.version()}; `
    + `node ${process.version}; issuer ${lk.base}`);
}, { timeout: 60_000 });

after(async () => {
  await chrome?.close();
  await app?.close();
  await lk?.stop();
}, { timeout: 30_000 });

/** openid-client's configuration for `clientId`, by discovery. */
async function discover(clientId, secret, auth) {
  // Loopback http only: openid-client refuses http:// endpoints without
  // allowInsecureRequests. With non-repudiation checks it also verifies the
  // ID token's signature against the JWKS (by default it trusts the token
  // endpoint's TLS for that). Each request may take 10 s at most.
  const options = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks], timeout: 10 };
  return step("discovery", client.discovery(new URL(lk.base), clientId, secret, auth, options));
}

/** A new authorization request: its URL and what the callback is checked against. */
async function authorizationRequest(config, extra = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: "S256",
    state: expectedState,
    nonce: expectedNonce,
    ...extra,
  });
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce } };
}

/** A browser of its own (cookies and all), with bounded waits. */
async function person() {
  const context = await chrome.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  // The hosted pages the browser was shown: each answer of /oauth/authorize
  // and its form posts that is a page, not a redirect.
  const pagesShown = [];
  page.on("response", (r) => {
    const url = new URL(r.url());
    if (url.origin === lk.base && url.pathname.startsWith("/oauth/authorize") && r.status() < 300) {
      pagesShown.push(`${r.request().method()} ${url.pathname} ${r.status()}`);
    }
  });
  // What the browser sent with the hosted forms: the server accepts them
  // by Origin or Sec-Fetch-Site.
  const formPosts = [];
  page.on("requestfinished", async (r) => {
    const url = new URL(r.url());
    if (url.origin === lk.base && r.method() === "POST") {
      const h = await r.allHeaders();
      formPosts.push({ path: url.pathname, origin: h.origin, fetchSite: h["sec-fetch-site"] });
    }
  });
  return { context, page, problems, pagesShown, formPosts };
}

const atCallback = (url) => url.origin === app.origin && url.pathname === "/callback";

/** Waits until the browser is back at the app's callback; its URL. */
async function callbackUrl(page) {
  await page.waitForURL(atCallback, { timeout: PAGE_TIMEOUT_MS });
  return new URL(page.url());
}

/** On the hosted sign-in page: the password typed, the form sent. */
async function signInOnPage(page, clientId, screenshot) {
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.match(await page.locator("main").textContent(), new RegExp(`to continue to ${clientId}`));
  if (screenshot) await page.screenshot({ path: join(outputDir, screenshot), fullPage: true });
  await page.getByLabel("Username", { exact: true }).fill(USER);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The session cookie of the hosted pages, if the browser holds one. */
async function sessionCookie(context) {
  return (await context.cookies(lk.base)).find((c) => c.name === "__Host-latchkey_session");
}

/** The protected header of a JWS. */
const joseHeader = (jws) => JSON.parse(Buffer.from(jws.split(".")[0], "base64url").toString());

/** An openid-client error in full: its code, status, OAuth error and cause. */
function describe(e) {
  if (!(e instanceof Error)) return String(e);
  const parts = [`${e.name}: ${e.message}`];
  for (const k of ["code", "status", "error", "error_description"]) if (e[k] !== undefined) parts.push(`${k}=${e[k]}`);
  if (e.cause !== undefined) {
    let cause;
    try {
      cause = e.cause instanceof Error ? describe(e.cause) : JSON.stringify(e.cause);
    } catch {
      cause = String(e.cause);
    }
    parts.push(`cause=${cause?.slice(0, 800)}`);
  }
  return parts.join(" ");
}

/**
 * Runs a relying-party step; a failure is rethrown with openid-client's
 * cause spelled out (the test runner prints only the message).
 */
async function step(what, promise) {
  try {
    return await promise;
  } catch (e) {
    throw new Error(`${what}: ${describe(e)}`, { cause: e });
  }
}
const codeGrant = (...args) => step("authorizationCodeGrant", client.authorizationCodeGrant(...args));
const userInfo = (...args) => step("fetchUserInfo", client.fetchUserInfo(...args));
const refresh = (...args) => step("refreshTokenGrant", client.refreshTokenGrant(...args));

/** Expects `promise` to fail with an OAuth error response; that error. */
async function rejectsWith(promise, Kind, error) {
  let thrown;
  try {
    await promise;
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown, `expected ${Kind.name} ${error}, but it succeeded`);
  assert.ok(thrown instanceof Kind, `expected ${Kind.name}, got ${describe(thrown)}`);
  assert.equal(thrown.error, error, `${thrown.name}: ${thrown.message}`);
  return thrown;
}

test("public client: sign in on the hosted page, code + PKCE, ID token, userinfo, refresh, RP-initiated logout",
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const config = await discover("spa");
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, lk.base, "the issuer is the base URL");
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(meta.code_challenge_methods_supported, ["S256"]);
    const fetched = [];
    config[client.customFetch] = (url, options) => {
      fetched.push(`${options.method} ${new URL(url).pathname}`);
      return fetch(url, options);
    };

    const { context, page, problems, pagesShown, formPosts } = await person();
    const request = await authorizationRequest(config);
    await page.goto(request.url.href);
    await signInOnPage(page, "spa", "oidc-sign-in.png");
    const back = await callbackUrl(page);
    // The headers are read asynchronously: wait for them, boundedly.
    for (let i = 0; i < 40 && formPosts.length === 0; i++) await new Promise((ok) => setTimeout(ok, 50));
    // The pages' Referrer-Policy is same-origin, so the browser names our
    // origin on its own form posts (with no-referrer it would send
    // Origin: null), and says same-origin.
    console.log(`the sign-in form's post: ${JSON.stringify(formPosts)}`);
    assert.deepEqual(
      formPosts.map((p) => [p.path, p.origin, p.fetchSite]),
      [["/oauth/authorize/sign-in", lk.base, "same-origin"]],
    );
    assert.equal(back.searchParams.get("iss"), lk.base, "RFC 9207 iss on the callback");
    assert.ok(await sessionCookie(context), "a browser session on the hosted pages");

    // openid-client checks state and iss, exchanges the code with the
    // verifier, and validates the ID token (JWKS signature, iss, aud, exp,
    // iat, nonce) before this returns.
    const tokens = await codeGrant(config, back, request.checks);
    assert.deepEqual(fetched, ["POST /oauth/token", "GET /.well-known/jwks.json"], "the signature checked");
    assert.equal(tokens.token_type.toLowerCase(), "bearer");
    assert.equal(tokens.scope, SCOPE);
    assert.ok(tokens.refresh_token, "a refresh token");
    const claims = tokens.claims();
    assert.equal(claims.iss, lk.base);
    assert.equal(claims.aud, "spa");
    assert.equal(claims.nonce, request.checks.expectedNonce);
    assert.equal(claims.preferred_username, USER);
    assert.equal(claims.email, EMAIL);
    assert.equal(claims.email_verified, false);
    assert.equal(typeof claims.auth_time, "number");
    assert.equal(typeof claims.sid, "string");
    // Two key lineages: RS256 for ID tokens (what OpenID requires every
    // provider to offer), the configured algorithm for access tokens.
    assert.equal(joseHeader(tokens.id_token).alg, "RS256");
    assert.equal(joseHeader(tokens.access_token).alg, "EdDSA");
    assert.equal(joseHeader(tokens.access_token).typ, "at+jwt");

    const info = await userInfo(config, tokens.access_token, claims.sub);
    assert.deepEqual(info, { sub: claims.sub, preferred_username: USER, email: EMAIL, email_verified: false });

    const refreshed = await refresh(config, tokens.refresh_token);
    assert.ok(refreshed.access_token && refreshed.refresh_token, "rotated tokens");
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "the refresh token rotates");
    const again = await userInfo(config, refreshed.access_token, claims.sub);
    assert.equal(again.sub, claims.sub);

    // RP-initiated logout in the same browser: back at the registered URI
    // with our state, the browser session and the token session both over.
    const logoutState = client.randomState();
    const logout = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: afterLogoutUri,
      state: logoutState,
    });
    assert.equal(logout.origin + logout.pathname, `${lk.base}/oauth/logout`);
    await page.goto(logout.href);
    await page.waitForURL((u) => u.origin === app.origin && u.pathname === "/signed-out");
    assert.equal(new URL(page.url()).searchParams.get("state"), logoutState);
    assert.equal(await sessionCookie(context), undefined, "the browser session's cookie is gone");
    await rejectsWith(client.refreshTokenGrant(config, refreshed.refresh_token), client.ResponseBodyError, "invalid_grant");

    // Signed out: the next request asks for the password again.
    const next = await authorizationRequest(config);
    await page.goto(next.url.href);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.deepEqual(pagesShown, ["GET /oauth/authorize 200", "GET /oauth/authorize 200"]);
    assert.deepEqual(problems, []);
    await context.close();
  });

test("remembered browser session: straight back without a password; prompt=login asks again",
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const config = await discover("spa");
    const { context, page, pagesShown } = await person();

    const first = await authorizationRequest(config);
    await page.goto(first.url.href);
    await signInOnPage(page, "spa");
    const firstTokens = await codeGrant(config, await callbackUrl(page), first.checks);
    const firstClaims = firstTokens.claims();
    assert.deepEqual(pagesShown, ["GET /oauth/authorize 200"]);

    // The same browser again: no page at all, straight to the callback.
    const second = await authorizationRequest(config);
    await page.goto(second.url.href);
    const secondTokens = await codeGrant(config, await callbackUrl(page), second.checks);
    assert.deepEqual(pagesShown, ["GET /oauth/authorize 200"], "no sign-in page the second time");
    const secondClaims = secondTokens.claims();
    assert.equal(secondClaims.sub, firstClaims.sub);
    assert.equal(secondClaims.auth_time, firstClaims.auth_time, "no new sign-in");
    assert.notEqual(secondClaims.sid, firstClaims.sid, "each code opens its own session");

    // prompt=login: the sign-in page again, and a newer auth_time (a second
    // apart, auth_time has whole seconds).
    await new Promise((ok) => setTimeout(ok, 1_100));
    const third = await authorizationRequest(config, { prompt: "login" });
    await page.goto(third.url.href);
    await signInOnPage(page, "spa");
    const thirdTokens = await codeGrant(config, await callbackUrl(page), third.checks);
    assert.deepEqual(pagesShown, ["GET /oauth/authorize 200", "GET /oauth/authorize 200"]);
    assert.ok(thirdTokens.claims().auth_time > firstClaims.auth_time, "signed in again");
    await context.close();
  });

test("confidential client: client_secret_basic at the token endpoint; a wrong secret is invalid_client",
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const config = await discover("portal", portalSecret, client.ClientSecretBasic(portalSecret));
    // What the token endpoint was sent, to see the client authenticate.
    const tokenRequests = [];
    config[client.customFetch] = (url, options) => {
      if (new URL(url).pathname === "/oauth/token") {
        tokenRequests.push({ authorization: options.headers.authorization, body: String(options.body) });
      }
      return fetch(url, options);
    };
    const { context, page } = await person();
    const request = await authorizationRequest(config);
    await page.goto(request.url.href);
    await signInOnPage(page, "portal");
    const tokens = await codeGrant(config, await callbackUrl(page), request.checks);
    const claims = tokens.claims();
    assert.equal(claims.aud, "portal");
    assert.equal(claims.preferred_username, USER);
    // RFC 6749 §2.3.1: id and secret form-urlencoded before base64, which
    // openid-client does (the secret's "_" is sent as %5F) and we accept.
    const basicCredentials = (authorization) => {
      assert.match(authorization ?? "", /^Basic /);
      const [id, secret] = Buffer.from(authorization.slice(6), "base64").toString().split(":");
      return { encoded: secret, id: decodeURIComponent(id), secret: decodeURIComponent(secret) };
    };
    assert.equal(tokenRequests.length, 1);
    const sent = basicCredentials(tokenRequests[0].authorization);
    assert.deepEqual({ id: sent.id, secret: sent.secret }, { id: "portal", secret: portalSecret });
    assert.match(sent.encoded, /%5F/, "the secret's _ went form-urlencoded");
    assert.doesNotMatch(tokenRequests[0].body, /client_secret/);

    const info = await userInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, USER);
    const refreshed = await refresh(config, tokens.refresh_token);
    assert.equal(tokenRequests[1].authorization, tokenRequests[0].authorization);
    assert.ok(refreshed.refresh_token);

    // The same flow (the browser is signed in) with a wrong secret.
    const wrong = await discover("portal", "not-the-secret", client.ClientSecretBasic("not-the-secret"));
    const next = await authorizationRequest(wrong);
    await page.goto(next.url.href);
    const back = await callbackUrl(page);
    // 401 with a Basic challenge (RFC 6749 §5.2): openid-client raises the
    // challenge; the body names the error.
    let err;
    try {
      await client.authorizationCodeGrant(wrong, back, next.checks);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof client.WWWAuthenticateChallengeError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.cause[0]?.scheme, "basic");
    assert.equal(err.status, 401);
    assert.equal((await err.response.json()).error, "invalid_client");
    await context.close();
  });

test("third-party client: the consent page; Deny comes back as access_denied, Allow as a code, then remembered",
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const config = await discover("partner");
    const { context, page, pagesShown } = await person();

    const denied = await authorizationRequest(config);
    await page.goto(denied.url.href);
    await signInOnPage(page, "partner");
    await page.getByRole("heading", { name: "Allow access?" }).waitFor();
    const asked = await page.locator("main li").allTextContents();
    assert.deepEqual(asked, ["Know who you are (your account id)", "See your username", "See your email address"]);
    await page.getByRole("button", { name: "Deny" }).click();
    const deniedBack = await callbackUrl(page);
    await rejectsWith(client.authorizationCodeGrant(config, deniedBack, denied.checks),
      client.AuthorizationResponseError, "access_denied");

    // Signed in already, not consented: the consent page again.
    const allowed = await authorizationRequest(config);
    await page.goto(allowed.url.href);
    await page.getByRole("heading", { name: "Allow access?" }).waitFor();
    await page.screenshot({ path: join(outputDir, "oidc-consent.png"), fullPage: true });
    await page.getByRole("button", { name: "Allow" }).click();
    const tokens = await codeGrant(config, await callbackUrl(page), allowed.checks);
    assert.equal(tokens.claims().aud, "partner");
    assert.equal(tokens.scope, SCOPE);
    assert.deepEqual(pagesShown, [
      "GET /oauth/authorize 200", "POST /oauth/authorize/sign-in 200", "GET /oauth/authorize 200",
    ]);

    // Remembered: no page the third time.
    const remembered = await authorizationRequest(config);
    await page.goto(remembered.url.href);
    await codeGrant(config, await callbackUrl(page), remembered.checks);
    assert.equal(pagesShown.length, 3, "no consent page once consented");
    await context.close();
  });

