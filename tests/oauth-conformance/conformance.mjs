// OAuth 2.0 conformance of a live Latchkey server, judged by npm `oauth4webapi`
// (a strict, spec-following client nobody here wrote): discovery (RFC 8414),
// the authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636), the
// authorization response's `iss` (RFC 9207), ID tokens and UserInfo (OpenID
// Connect Core), refresh_token and client_credentials grants (RFC 6749 §4.4, §6), revocation
// (RFC 7009), introspection (RFC 7662), error responses (RFC 6749 §5.2) and
// JWT access tokens (RFC 9068). Every server response must be accepted by the
// library's own process*/validate* functions.
//
// Prints one line per check and finally exactly `N passed, M failed` (and
// `, K skipped` when a check cannot run here); exits 1 if any check failed.
// run.sh starts the server and provides:
//   LATCHKEY_ISSUER          issuer (= base URL), e.g. http://127.0.0.1:PORT
//   LATCHKEY_REFRESH_TOKEN   refresh token from POST /v1/sign-in as client `web`
//   LATCHKEY_ACCESS_TOKEN    access token from the same sign-in
//   LATCHKEY_PUBLIC_CLIENT   public client id (scopes read, write; audience latchkey)
//   LATCHKEY_CONF_CLIENT     confidential client id (scope jobs; audience jobs-api)
//   LATCHKEY_CONF_SECRET     its client_secret
//   LATCHKEY_CODE_CLIENT     public client id with a registered redirect URI (scope read)
//   LATCHKEY_REDIRECT_URI    that redirect URI (nothing listens there)
//   LATCHKEY_USERNAME        an account's username and password, for the
//   LATCHKEY_PASSWORD        hosted sign-in page
import * as oauth from 'oauth4webapi';

const env = (name) => {
    const v = process.env[name];
    if (!v) {
        console.error(`conformance.mjs: ${name} is not set`);
        process.exit(2);
    }
    return v;
};
const issuerUrl = new URL(env('LATCHKEY_ISSUER'));
const publicId = env('LATCHKEY_PUBLIC_CLIENT');
const confId = env('LATCHKEY_CONF_CLIENT');
const confSecret = env('LATCHKEY_CONF_SECRET');
const signInAccess = env('LATCHKEY_ACCESS_TOKEN');
let refreshToken = env('LATCHKEY_REFRESH_TOKEN');
const codeId = env('LATCHKEY_CODE_CLIENT');
const redirectUri = env('LATCHKEY_REDIRECT_URI');
const username = env('LATCHKEY_USERNAME');
const password = env('LATCHKEY_PASSWORD');

// Loopback http only: oauth4webapi refuses http:// endpoints without this.
const insecure = { [oauth.allowInsecureRequests]: true };
const timeout = () => ({ ...insecure, signal: AbortSignal.timeout(10_000) });

const publicClient = { client_id: publicId };
const confClient = { client_id: confId };
const USER_AUDIENCE = 'latchkey';
const JOBS_AUDIENCE = 'jobs-api';

let passed = 0;
let failed = 0;
let skipped = 0;

function describe(err) {
    if (!(err instanceof Error)) return String(err);
    const parts = [`${err.name}`];
    if (err.code) parts.push(`code=${err.code}`);
    parts.push(`message=${JSON.stringify(err.message)}`);
    if (err instanceof oauth.ResponseBodyError) {
        parts.push(`status=${err.status} error=${err.error} error_description=${JSON.stringify(err.error_description)}`);
    } else if (err instanceof oauth.WWWAuthenticateChallengeError) {
        parts.push(`status=${err.status} challenges=${JSON.stringify(err.cause)}`);
    } else if (err.cause instanceof Response) {
        parts.push(`status=${err.cause.status} content-type=${err.cause.headers.get('content-type')}`);
    } else if (err.cause !== undefined) {
        let cause;
        try {
            cause = JSON.stringify(err.cause, (k, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v));
        } catch {
            cause = String(err.cause);
        }
        if (cause && cause.length > 600) cause = cause.slice(0, 600) + '…';
        parts.push(`cause=${cause}`);
    }
    return parts.join(' ');
}

async function check(name, fn) {
    try {
        const detail = await fn();
        passed++;
        console.log(`ok   ${String(passed + failed).padStart(2)} - ${name}${detail ? ` (${detail})` : ''}`);
        return true;
    } catch (err) {
        failed++;
        console.log(`FAIL ${String(passed + failed).padStart(2)} - ${name}: ${describe(err)}`);
        return false;
    }
}

/// A check that cannot run against a live server here, and why.
function skip(name, why) {
    skipped++;
    console.log(`skip    - ${name}: ${why}`);
}

function assert(cond, message) {
    if (!cond) throw new Error(message);
}

function assertNoStore(response, what) {
    const cc = response.headers.get('cache-control') ?? '';
    assert(/\bno-store\b/i.test(cc), `${what}: Cache-Control must contain no-store (RFC 6749 §5.1), got ${JSON.stringify(cc)}`);
}

/// Expects `fn` to throw an OAuth error response oauth4webapi recognised as
/// such; returns the error for further assertions.
async function expectOAuthError(fn, Kind) {
    let result;
    try {
        result = await fn();
    } catch (err) {
        if (err instanceof Kind) return err;
        throw new Error(`expected ${Kind.name}, got ${describe(err)}`);
    }
    throw new Error(`expected ${Kind.name}, but the response was accepted: ${JSON.stringify(result)}`);
}

/// RFC 9068 validation of an access token by oauth4webapi, against the
/// issuer from discovery and its jwks_uri.
async function validateAccessToken(as, accessToken, audience) {
    const request = new Request(new URL('/v1/me', issuerUrl), {
        headers: { authorization: `Bearer ${accessToken}` },
    });
    return oauth.validateJwtAccessToken(as, request, audience, timeout());
}

// --- discovery (RFC 8414) ------------------------------------------------------
let as;
const discovered = await check('discovery: RFC 8414 /.well-known/oauth-authorization-server accepted by processDiscoveryResponse', async () => {
    const response = await oauth.discoveryRequest(issuerUrl, { ...timeout(), algorithm: 'oauth2' });
    as = await oauth.processDiscoveryResponse(issuerUrl, response);
    return `issuer ${as.issuer}`;
});
await check('discovery: /.well-known/openid-configuration accepted by processDiscoveryResponse', async () => {
    const response = await oauth.discoveryRequest(issuerUrl, { ...timeout(), algorithm: 'oidc' });
    const oidc = await oauth.processDiscoveryResponse(issuerUrl, response);
    assert(JSON.stringify(oidc) === JSON.stringify(as), 'openid-configuration differs from oauth-authorization-server');
});
if (!discovered) {
    // Without metadata nothing else can run.
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
}
await check('discovery: metadata advertises the endpoints, grants and client auth methods', async () => {
    const base = issuerUrl.href.replace(/\/$/, '');
    const want = {
        issuer: issuerUrl.href.replace(/\/$/, ''),
        token_endpoint: `${base}/oauth/token`,
        revocation_endpoint: `${base}/oauth/revoke`,
        introspection_endpoint: `${base}/oauth/introspect`,
        jwks_uri: `${base}/.well-known/jwks.json`,
    };
    for (const [k, v] of Object.entries(want)) {
        assert(as[k] === v, `${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(as[k])}`);
    }
    const set = (a) => JSON.stringify([...(a ?? [])].sort());
    assert(set(as.grant_types_supported) === set(['authorization_code', 'refresh_token', 'client_credentials']),
        `grant_types_supported: ${JSON.stringify(as.grant_types_supported)}`);
    const endpoints = {
        authorization_endpoint: `${base}/oauth/authorize`,
        userinfo_endpoint: `${base}/userinfo`,
        end_session_endpoint: `${base}/oauth/logout`,
    };
    for (const [k, v] of Object.entries(endpoints)) {
        assert(as[k] === v, `${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(as[k])}`);
    }
    assert(set(as.code_challenge_methods_supported) === set(['S256']),
        `code_challenge_methods_supported: ${JSON.stringify(as.code_challenge_methods_supported)}`);
    assert(as.authorization_response_iss_parameter_supported === true,
        'authorization_response_iss_parameter_supported (RFC 9207) must be true');
    assert(set(as.response_types_supported) === set(['code']),
        `response_types_supported: ${JSON.stringify(as.response_types_supported)}`);
    for (const m of ['client_secret_basic', 'client_secret_post', 'none']) {
        assert(as.token_endpoint_auth_methods_supported?.includes(m), `token_endpoint_auth_methods_supported lacks ${m}`);
    }
    assert(Array.isArray(as.introspection_endpoint_auth_methods_supported)
        && as.introspection_endpoint_auth_methods_supported.length > 0, 'introspection_endpoint_auth_methods_supported missing');
    assert(Array.isArray(as.response_types_supported), 'response_types_supported (REQUIRED by RFC 8414 §2) missing');
});

// --- access token from sign-in (RFC 9068) -----------------------------------------
await check('RFC 9068: sign-in access token accepted by validateJwtAccessToken (typ at+jwt, iss, aud, JWKS signature)', async () => {
    const claims = await validateAccessToken(as, signInAccess, USER_AUDIENCE);
    assert(claims.client_id === publicId, `client_id: expected ${publicId}, got ${claims.client_id}`);
    return `sub ${claims.sub}, scope ${JSON.stringify(claims.scope)}`;
});

// --- refresh_token grant, public client, no client authentication ---------------------
let userTokens;
await check(`refresh_token grant: public client "${publicId}" with None() accepted by processRefreshTokenResponse`, async () => {
    const response = await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), refreshToken, timeout());
    assertNoStore(response, 'token response');
    userTokens = await oauth.processRefreshTokenResponse(as, publicClient, response);
    assert(userTokens.token_type === 'bearer', `token_type ${userTokens.token_type}`);
    assert(typeof userTokens.refresh_token === 'string' && userTokens.refresh_token !== refreshToken,
        'expected a rotated refresh_token');
    refreshToken = userTokens.refresh_token;
    return `expires_in ${userTokens.expires_in}, scope ${JSON.stringify(userTokens.scope)}`;
});
await check('RFC 9068: refreshed access token accepted by validateJwtAccessToken', async () => {
    assert(userTokens, 'no token from the refresh grant');
    const claims = await validateAccessToken(as, userTokens.access_token, USER_AUDIENCE);
    assert(claims.client_id === publicId, `client_id: expected ${publicId}, got ${claims.client_id}`);
    return `sub ${claims.sub}, jti ${claims.jti}`;
});
await check('refresh_token grant: narrowed scope=read accepted, response scope is "read"', async () => {
    const response = await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), refreshToken, {
        ...timeout(),
        additionalParameters: { scope: 'read' },
    });
    const tokens = await oauth.processRefreshTokenResponse(as, publicClient, response);
    assert(tokens.scope === 'read', `scope: expected "read", got ${JSON.stringify(tokens.scope)}`);
    if (tokens.refresh_token) refreshToken = tokens.refresh_token;
    userTokens = tokens;
    const claims = await validateAccessToken(as, tokens.access_token, USER_AUDIENCE);
    assert(claims.scope === 'read', `access token scope claim: ${JSON.stringify(claims.scope)}`);
});
await check('refresh_token grant: scope wider than granted -> ResponseBodyError invalid_scope', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), refreshToken, {
            ...timeout(),
            additionalParameters: { scope: 'read admin' },
        });
        return oauth.processRefreshTokenResponse(as, publicClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'invalid_scope' && err.status === 400, `error=${err.error} status=${err.status}`);
});

// --- client_credentials grant, confidential client --------------------------------------
const ccTokens = {};
for (const [label, auth] of [
    ['ClientSecretBasic', () => oauth.ClientSecretBasic(confSecret)],
    ['ClientSecretPost', () => oauth.ClientSecretPost(confSecret)],
]) {
    await check(`client_credentials grant: "${confId}" with ${label} accepted by processClientCredentialsResponse`, async () => {
        const params = label === 'ClientSecretPost' ? { scope: 'jobs', audience: JOBS_AUDIENCE } : {};
        const response = await oauth.clientCredentialsGrantRequest(as, confClient, auth(), params, timeout());
        assertNoStore(response, 'token response');
        const tokens = await oauth.processClientCredentialsResponse(as, confClient, response);
        assert(tokens.token_type === 'bearer', `token_type ${tokens.token_type}`);
        ccTokens[label] = tokens;
        return `expires_in ${tokens.expires_in}, scope ${JSON.stringify(tokens.scope)}` +
            (tokens.refresh_token ? ', NOTE: has a refresh_token (RFC 6749 §4.4.3: SHOULD NOT)' : '');
    });
    await check(`RFC 9068: client_credentials (${label}) access token accepted by validateJwtAccessToken for aud ${JOBS_AUDIENCE}`, async () => {
        assert(ccTokens[label], 'no token from the grant');
        const claims = await validateAccessToken(as, ccTokens[label].access_token, JOBS_AUDIENCE);
        assert(claims.client_id === confId, `client_id: expected ${confId}, got ${claims.client_id}`);
        // RFC 9068 §2.2: sub identifies the client; Latchkey's is client:<id>, never a user's id.
        assert(claims.sub === `client:${confId}`, `sub: expected client:${confId}, got ${claims.sub}`);
        return `scope ${JSON.stringify(claims.scope)}`;
    });
}
await check('client_credentials grant: wrong client secret (Basic) -> 401 invalid_client with a Basic challenge', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.clientCredentialsGrantRequest(as, confClient, oauth.ClientSecretBasic('not-the-secret'), {}, timeout());
        return oauth.processClientCredentialsResponse(as, confClient, response);
    }, oauth.WWWAuthenticateChallengeError);
    // RFC 6749 §5.2: 401 with a WWW-Authenticate matching the scheme the client used.
    assert(err.status === 401, `status ${err.status}`);
    assert(err.cause.some((c) => c.scheme === 'basic'), `challenges ${JSON.stringify(err.cause)}`);
    const body = await err.response.json();
    assert(body.error === 'invalid_client', `body error ${body.error}`);
});
await check('client_credentials grant: public client -> ResponseBodyError unauthorized_client', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.clientCredentialsGrantRequest(as, publicClient, oauth.None(), {}, timeout());
        return oauth.processClientCredentialsResponse(as, publicClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'unauthorized_client' && err.status === 400, `error=${err.error} status=${err.status}`);
});
await check('client_credentials grant: unregistered scope -> ResponseBodyError invalid_scope', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.clientCredentialsGrantRequest(as, confClient, oauth.ClientSecretBasic(confSecret), { scope: 'admin' }, timeout());
        return oauth.processClientCredentialsResponse(as, confClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'invalid_scope' && err.status === 400, `error=${err.error} status=${err.status}`);
});
await check('token endpoint: grant_type=password -> ResponseBodyError unsupported_grant_type', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.genericTokenEndpointRequest(as, confClient, oauth.ClientSecretBasic(confSecret), 'password',
            { username: 'x', password: 'y' }, timeout());
        return oauth.processGenericTokenEndpointResponse(as, confClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'unsupported_grant_type' && err.status === 400, `error=${err.error} status=${err.status}`);
});

// --- introspection (RFC 7662) -------------------------------------------------------------
async function introspect(token, auth = oauth.ClientSecretBasic(confSecret), client = confClient) {
    const response = await oauth.introspectionRequest(as, client, auth, token, timeout());
    return oauth.processIntrospectionResponse(as, client, response);
}
await check('introspection: user access token (ClientSecretBasic) accepted by processIntrospectionResponse, active', async () => {
    assert(userTokens, 'no user access token');
    const r = await introspect(userTokens.access_token);
    assert(r.active === true, `active ${r.active}`);
    assert(r.client_id === publicId, `client_id ${r.client_id}`);
    assert(typeof r.sub === 'string' && typeof r.exp === 'number', 'sub/exp missing');
    return `token_type ${r.token_type}, scope ${JSON.stringify(r.scope)}`;
});
await check('introspection: refresh token (ClientSecretPost) accepted, active', async () => {
    const r = await introspect(refreshToken, oauth.ClientSecretPost(confSecret));
    assert(r.active === true, `active ${r.active}`);
    assert(r.client_id === publicId, `client_id ${r.client_id}`);
    return `token_type ${r.token_type}`;
});
await check('introspection: client_credentials access token accepted, active', async () => {
    assert(ccTokens.ClientSecretBasic, 'no client_credentials token');
    const r = await introspect(ccTokens.ClientSecretBasic.access_token);
    assert(r.active === true && r.client_id === confId, `active ${r.active} client_id ${r.client_id}`);
});
await check('introspection: garbage token accepted, {"active": false}', async () => {
    const r = await introspect('not-a-token');
    assert(r.active === false, `active ${r.active}`);
});
await check('introspection: public client (None) refused -> 401 invalid_client', async () => {
    let err;
    try {
        await introspect(refreshToken, oauth.None(), publicClient);
    } catch (e) {
        err = e;
    }
    assert(err, 'introspection by a public client was accepted');
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
        const body = await err.response.json();
        assert(err.status === 401 && body.error === 'invalid_client', `status ${err.status} error ${body.error}`);
    } else if (err instanceof oauth.ResponseBodyError) {
        assert(err.error === 'invalid_client', `error ${err.error}`);
    } else {
        throw new Error(`expected an OAuth error, got ${describe(err)}`);
    }
});

// --- revocation (RFC 7009) ---------------------------------------------------------------------
const revokedRefresh = refreshToken;
const sessionAccess = userTokens?.access_token;
await check('revocation: another client\'s token -> ResponseBodyError unauthorized_client, token left alone (RFC 7009 §2.1)', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.revocationRequest(as, confClient, oauth.ClientSecretBasic(confSecret), revokedRefresh, timeout());
        return oauth.processRevocationResponse(response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'unauthorized_client', `error ${err.error}`);
    const r = await introspect(revokedRefresh);
    assert(r.active === true, 'the token was revoked anyway');
    return `${err.status} ${err.error}`;
});
await check(`revocation: refresh token by public client "${publicId}" (None) accepted by processRevocationResponse`, async () => {
    const response = await oauth.revocationRequest(as, publicClient, oauth.None(), revokedRefresh, {
        ...timeout(),
        additionalParameters: { token_type_hint: 'refresh_token' },
    });
    await oauth.processRevocationResponse(response);
    return `HTTP ${response.status}`;
});
await check('introspection: revoked refresh token -> active false', async () => {
    const r = await introspect(revokedRefresh);
    assert(r.active === false, `active ${r.active}`);
});
await check('introspection: access token of the revoked session -> active false', async () => {
    assert(sessionAccess, 'no access token');
    const r = await introspect(sessionAccess);
    assert(r.active === false, `active ${r.active}`);
});
await check('refresh_token grant with the revoked token -> ResponseBodyError invalid_grant (RFC 6749 §5.2)', async () => {
    const err = await expectOAuthError(async () => {
        const response = await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), revokedRefresh, timeout());
        return oauth.processRefreshTokenResponse(as, publicClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'invalid_grant', `error ${err.error}`);
    assert(err.status === 400, `status ${err.status} (RFC 6749 §5.2: 400)`);
    return `status ${err.status}, error_description ${JSON.stringify(err.error_description)}`;
});
await check('revocation: access token by its confidential client (ClientSecretPost) accepted', async () => {
    assert(ccTokens.ClientSecretPost, 'no client_credentials token');
    const response = await oauth.revocationRequest(as, confClient, oauth.ClientSecretPost(confSecret), ccTokens.ClientSecretPost.access_token, {
        ...timeout(),
        additionalParameters: { token_type_hint: 'access_token' },
    });
    await oauth.processRevocationResponse(response);
    const r = await introspect(ccTokens.ClientSecretPost.access_token);
    assert(r.active === false, `introspection after revocation: active ${r.active}`);
});
await check('revocation: unknown token accepted (RFC 7009 §2.2: 200 for invalid tokens too)', async () => {
    const response = await oauth.revocationRequest(as, confClient, oauth.ClientSecretBasic(confSecret), 'lkr_unknown', timeout());
    await oauth.processRevocationResponse(response);
    return `HTTP ${response.status}`;
});

// --- authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9207, OpenID Connect) ---
// No browser: the hosted sign-in page is fetched and its form posted over plain
// HTTP as a browser would (its hidden fields, our Origin), and the redirects'
// Location is read instead of followed (nothing listens at the redirect URI).
const codeClient = { client_id: codeId };
const CODE_SCOPE = 'openid profile read';
const SESSION_COOKIE = '__Host-latchkey_session';
// The hosted pages' session cookie, kept by hand: it is `Secure`, and this
// is plain loopback http.
let sessionCookie;

/// A new authorization request for `codeClient` (PKCE S256, state, nonce),
/// with `extra` parameters set (or removed, when undefined).
async function authorizationRequest(extra = {}) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(as.authorization_endpoint);
    const params = {
        response_type: 'code',
        client_id: codeId,
        redirect_uri: redirectUri,
        scope: CODE_SCOPE,
        state,
        nonce,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ...extra,
    };
    for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
    return { url, verifier, state, nonce };
}

/// A request to the hosted pages, redirects not followed, the session
/// cookie sent and kept.
async function hosted(url, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (sessionCookie) headers.cookie = `${SESSION_COOKIE}=${sessionCookie}`;
    const response = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    for (const cookie of response.headers.getSetCookie()) {
        const [pair] = cookie.split(';');
        const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
        if (name === SESSION_COOKIE) sessionCookie = value || undefined;
    }
    return response;
}

const unescapeHtml = (text) => text.replace(/&(amp|lt|gt|quot|#39);/g,
    (_, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]);

/// The hidden fields of the form posting to `action` in a hosted page.
function hiddenFields(html, action) {
    const form = html.match(new RegExp(`<form method="post" action="${action}">([\\s\\S]*?)</form>`));
    assert(form, `no form posting to ${action} in the page: ${html.slice(0, 400)}`);
    const fields = new URLSearchParams();
    for (const m of form[1].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
        fields.append(m[1], unescapeHtml(m[2]));
    }
    return fields;
}

/// Posts the hosted sign-in page's form as the page does (from our origin).
async function postSignIn(pageHtml, origin = issuerUrl.origin) {
    const form = hiddenFields(pageHtml, '/oauth/authorize/sign-in');
    form.set('username', username);
    form.set('password', password);
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    if (origin) headers.origin = origin;
    return hosted(new URL('/oauth/authorize/sign-in', issuerUrl), { method: 'POST', headers, body: form });
}

/// The redirect of an answer: its 303 Location, which must go to our redirect URI.
function redirectLocation(response, what) {
    assert(response.status === 303, `${what}: expected 303, got ${response.status}`);
    const location = new URL(response.headers.get('location'));
    assert(`${location.origin}${location.pathname}` === redirectUri,
        `${what}: redirected to ${location.href}, not to ${redirectUri}`);
    return location;
}

/// A code for a new request, with the session the browser already has
/// (the hosted page answers straight with the redirect).
async function freshCode(extra = {}) {
    const request = await authorizationRequest(extra);
    const location = redirectLocation(await hosted(request.url), 'authorize with a session');
    const params = oauth.validateAuthResponse(as, codeClient, location, request.state);
    return { ...request, params };
}

async function exchangeCode(code, { client = codeClient, redirect = redirectUri, verifier = code.verifier } = {}) {
    const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), code.params, redirect,
        verifier, timeout());
    return oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: code.nonce, requireIdToken: true });
}

/// Expects the token endpoint to refuse `code` with `error` (400).
async function expectCodeRefused(code, options, error) {
    const err = await expectOAuthError(() => exchangeCode(code, options), oauth.ResponseBodyError);
    assert(err.error === error && err.status === 400, `expected 400 ${error}, got ${err.status} ${err.error}`);
    return `${err.status} ${err.error}: ${JSON.stringify(err.error_description)}`;
}

// What a relying party that fetched the JWKS at start-up holds: the keys
// published before anyone signed in through the code flow.
let startupJwks;
await check('JWKS fetched before the first code flow (as a relying party does at start-up)', async () => {
    const response = await fetch(as.jwks_uri, { signal: AbortSignal.timeout(10_000) });
    assert(response.status === 200, `status ${response.status}`);
    startupJwks = { jwks: await response.json(), uat: Math.floor(Date.now() / 1000) };
    return `keys ${startupJwks.jwks.keys.map((k) => k.alg).join(', ')}`;
});

let signInPage;
let firstRequest;
await check('authorize: no session -> the hosted sign-in page (200 HTML, never framed)', async () => {
    firstRequest = await authorizationRequest();
    const response = await hosted(firstRequest.url);
    assert(response.status === 200, `status ${response.status}`);
    assert(/^text\/html/.test(response.headers.get('content-type') ?? ''), `content-type ${response.headers.get('content-type')}`);
    assert(response.headers.get('x-frame-options') === 'DENY', 'X-Frame-Options: DENY');
    assert(/frame-ancestors 'none'/.test(response.headers.get('content-security-policy') ?? ''), 'CSP frame-ancestors');
    signInPage = await response.text();
    assert(!sessionCookie, 'a session cookie before signing in');
});
await check('hosted sign-in form posted from another origin -> 403, no session', async () => {
    assert(signInPage, 'no sign-in page');
    const response = await postSignIn(signInPage, 'http://127.0.0.1:9');
    assert(response.status === 403, `status ${response.status}`);
    assert(!response.headers.get('location'), `Location ${response.headers.get('location')}`);
    assert(!sessionCookie, 'a session cookie from a cross-site post');
});
let callback;
await check('hosted sign-in form (hidden fields, username, password, our Origin) -> 303 to the redirect URI', async () => {
    assert(signInPage, 'no sign-in page');
    const response = await postSignIn(signInPage);
    callback = redirectLocation(response, 'sign-in');
    assert(sessionCookie, `no ${SESSION_COOKIE} cookie`);
    return `Location ${callback.origin}${callback.pathname}?${[...callback.searchParams.keys()].join('&')}`;
});
let callbackParams;
await check('authorization response accepted by validateAuthResponse (state; iss per RFC 9207)', async () => {
    assert(callback, 'no callback');
    callbackParams = oauth.validateAuthResponse(as, codeClient, callback, firstRequest.state);
    assert(callback.searchParams.get('iss') === as.issuer, `iss ${callback.searchParams.get('iss')}`);
    assert(callbackParams.get('code'), 'no code');
});
let codeTokens;
let codeResponse;
let idClaims;
await check('authorization_code grant (PKCE verifier) accepted by processAuthorizationCodeResponse; ID token claims, nonce, RS256 signature', async () => {
    assert(callbackParams, 'no code');
    codeResponse = await oauth.authorizationCodeGrantRequest(as, codeClient, oauth.None(), callbackParams, redirectUri,
        firstRequest.verifier, timeout());
    assertNoStore(codeResponse, 'token response');
    codeTokens = await oauth.processAuthorizationCodeResponse(as, codeClient, codeResponse,
        { expectedNonce: firstRequest.nonce, requireIdToken: true });
    // The ID token's signature against the JWKS as it is now (oauth4webapi
    // checks only the claims unless asked; a copy of the metadata has no
    // cached JWKS).
    await oauth.validateApplicationLevelSignature({ ...as }, codeResponse, timeout());
    idClaims = oauth.getValidatedIdTokenClaims(codeTokens);
    assert(idClaims.iss === as.issuer && idClaims.aud === codeId, `iss ${idClaims.iss} aud ${idClaims.aud}`);
    assert(idClaims.nonce === firstRequest.nonce, 'nonce');
    assert(idClaims.preferred_username === username, `preferred_username ${idClaims.preferred_username}`);
    assert(codeTokens.scope === CODE_SCOPE, `scope ${JSON.stringify(codeTokens.scope)}`);
    assert(typeof codeTokens.refresh_token === 'string', 'no refresh_token');
    return `sub ${idClaims.sub}, sid ${idClaims.sid}, auth_time ${idClaims.auth_time}`;
});
await check('ID token verified with the JWKS fetched at start-up (its key published before it signs)',
    async () => {
        assert(codeResponse && startupJwks, 'no token response or start-up JWKS');
        await oauth.validateApplicationLevelSignature({ ...as }, codeResponse,
            { ...timeout(), [oauth.jwksCache]: { ...startupJwks } });
    });
await check('RFC 9068: the code\'s access token accepted by validateJwtAccessToken', async () => {
    assert(codeTokens, 'no tokens');
    const claims = await validateAccessToken(as, codeTokens.access_token, USER_AUDIENCE);
    assert(claims.client_id === codeId && claims.sub === idClaims.sub, `client_id ${claims.client_id} sub ${claims.sub}`);
});
await check('userinfo: accepted by processUserInfoResponse, sub of the ID token', async () => {
    assert(codeTokens, 'no tokens');
    const response = await oauth.userInfoRequest(as, codeClient, codeTokens.access_token, timeout());
    const info = await oauth.processUserInfoResponse(as, codeClient, idClaims.sub, response);
    assert(info.preferred_username === username, `preferred_username ${info.preferred_username}`);
    return JSON.stringify(info);
});
await check('userinfo: the ID token is no access token -> 401 invalid_token', async () => {
    assert(codeTokens, 'no tokens');
    const err = await expectOAuthError(async () => {
        const response = await oauth.userInfoRequest(as, codeClient, codeTokens.id_token, timeout());
        return oauth.processUserInfoResponse(as, codeClient, idClaims.sub, response);
    }, oauth.WWWAuthenticateChallengeError);
    assert(err.status === 401 && err.cause.some((c) => c.parameters.error === 'invalid_token'),
        `status ${err.status} challenges ${JSON.stringify(err.cause)}`);
});
await check('refresh_token grant with the code\'s refresh token accepted', async () => {
    assert(codeTokens, 'no tokens');
    const response = await oauth.refreshTokenGrantRequest(as, codeClient, oauth.None(), codeTokens.refresh_token, timeout());
    const tokens = await oauth.processRefreshTokenResponse(as, codeClient, response);
    assert(tokens.refresh_token && tokens.refresh_token !== codeTokens.refresh_token, 'a rotated refresh token');
});
await check('authorize with the session: straight back with a code (no page)', async () => {
    const code = await freshCode();
    const tokens = await exchangeCode(code);
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    assert(claims.auth_time === idClaims.auth_time, `auth_time ${claims.auth_time}, first sign-in ${idClaims.auth_time}`);
});

// Before the redirect URI is trusted nothing is redirected anywhere: a 400
// page, no Location (no open redirector), even for a signed-in browser.
const untrusted = [
    ['unregistered path', 'http://127.0.0.1:9/other'],
    ['registered path as a prefix', 'http://127.0.0.1:9/callback/evil'],
    ['dot segments', 'http://127.0.0.1:9/callback/../evil'],
    ['another port', 'http://127.0.0.1:10/callback'],
    ['no port', 'http://127.0.0.1/callback'],
    ['userinfo trick: the path', 'http://127.0.0.1:9/callback@evil.example'],
    ['userinfo trick: the host', 'http://127.0.0.1:9@evil.example/callback'],
    ['userinfo before the registered host', 'http://evil.example@127.0.0.1:9/callback'],
    ['another host', 'https://evil.example/callback'],
    ['an added query', 'http://127.0.0.1:9/callback?next=https://evil.example'],
    ['a trailing slash', 'http://127.0.0.1:9/callback/'],
    ['localhost for 127.0.0.1', 'http://localhost:9/callback'],
    ['https for http', 'https://127.0.0.1:9/callback'],
    ['missing', undefined],
];
for (const [what, uri] of untrusted) {
    await check(`authorize: redirect_uri ${what}${uri ? ` (${uri})` : ''} -> 400 page, no Location`, async () => {
        assert(sessionCookie, 'no session (the check must be made signed in)');
        const request = await authorizationRequest({ redirect_uri: uri });
        const response = await hosted(request.url);
        assert(response.status === 400, `status ${response.status}`);
        assert(response.headers.get('location') === null, `Location ${response.headers.get('location')}`);
        assert(/^text\/html/.test(response.headers.get('content-type') ?? ''), `content-type ${response.headers.get('content-type')}`);
    });
}
await check('authorize: unknown client_id -> 400 page, no Location', async () => {
    const request = await authorizationRequest({ client_id: 'nobody' });
    const response = await hosted(request.url);
    assert(response.status === 400 && response.headers.get('location') === null,
        `status ${response.status} Location ${response.headers.get('location')}`);
});

// After it is trusted, problems go back to the client (RFC 6749 §4.1.2.1).
for (const [what, extra, error] of [
    ['code_challenge_method=plain (RFC 9700 §2.1.1)', { code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) }, 'invalid_request'],
    ['no code_challenge', { code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'],
    ['response_type=token', { response_type: 'token' }, 'unsupported_response_type'],
    ['a scope the client may not have', { scope: 'openid admin' }, 'invalid_scope'],
]) {
    await check(`authorize: ${what} -> back at the redirect URI, AuthorizationResponseError ${error}`, async () => {
        const request = await authorizationRequest(extra);
        const location = redirectLocation(await hosted(request.url), what);
        assert(!location.searchParams.has('code'), 'a code was issued');
        const err = await expectOAuthError(async () => oauth.validateAuthResponse(as, codeClient, location, request.state),
            oauth.AuthorizationResponseError);
        assert(err.error === error, `error ${err.error}`);
        return `error_description ${JSON.stringify(err.error_description)}`;
    });
}

// The code: single use, bound to the verifier, the client and the redirect
// URI, valid 60 s. One code is taken now and left to expire while the other
// checks run; it is presented at the end.
let expiring;
await check('authorization_code: a code taken now, to be presented after it expires', async () => {
    expiring = { code: await freshCode(), at: Date.now() };
});
await check('authorization_code grant: wrong PKCE verifier -> invalid_grant, and the code is spent', async () => {
    const code = await freshCode();
    const detail = await expectCodeRefused(code, { verifier: oauth.generateRandomCodeVerifier() }, 'invalid_grant');
    await expectCodeRefused(code, {}, 'invalid_grant');
    return detail;
});
await check('authorization_code grant: no PKCE verifier -> invalid_request (a required parameter is missing)', async () => {
    const code = await freshCode();
    const detail = await expectCodeRefused(code, { verifier: oauth.nopkce }, 'invalid_request');
    let spent = false;
    try { await exchangeCode(code); } catch { spent = true; }
    return `${detail}; the code ${spent ? 'is spent' : 'still works with its verifier'}`;
});
await check('authorization_code grant: the code presented twice -> invalid_grant; the first use\'s tokens are revoked', async () => {
    const code = await freshCode();
    const first = await exchangeCode(code);
    const detail = await expectCodeRefused(code, {}, 'invalid_grant');
    const err = await expectOAuthError(async () => {
        const response = await oauth.refreshTokenGrantRequest(as, codeClient, oauth.None(), first.refresh_token, timeout());
        return oauth.processRefreshTokenResponse(as, codeClient, response);
    }, oauth.ResponseBodyError);
    assert(err.error === 'invalid_grant', `refresh after the reuse: ${err.error}`);
    const r = await introspect(first.access_token);
    assert(r.active === false, `the first use's access token: active ${r.active}`);
    return detail;
});
await check(`authorization_code grant: another client ("${publicId}") -> invalid_grant, and the code is spent`, async () => {
    const code = await freshCode();
    const detail = await expectCodeRefused(code, { client: publicClient }, 'invalid_grant');
    await expectCodeRefused(code, {}, 'invalid_grant');
    return detail;
});
await check('authorization_code grant: another redirect_uri than the request\'s -> invalid_grant', async () => {
    const code = await freshCode();
    return expectCodeRefused(code, { redirect: 'http://127.0.0.1:9/other' }, 'invalid_grant');
});
await check('authorization_code grant: a code presented 61 s after it was issued -> invalid_grant', async () => {
    assert(expiring, 'no code was taken');
    const wait = Math.max(0, expiring.at + 61_000 - Date.now());
    await new Promise((done) => setTimeout(done, wait));
    return expectCodeRefused(expiring.code, {}, 'invalid_grant');
});

console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
