// OAuth 2.0 conformance of a live Latchkey server, judged by npm `oauth4webapi`
// (a strict, spec-following client nobody here wrote): discovery (RFC 8414),
// refresh_token and client_credentials grants (RFC 6749 §4.4, §6), revocation
// (RFC 7009), introspection (RFC 7662), error responses (RFC 6749 §5.2) and
// JWT access tokens (RFC 9068). Every server response must be accepted by the
// library's own process*/validate* functions.
//
// Prints one line per check and finally exactly `N passed, M failed`; exits 1
// if any check failed. run.sh starts the server and provides:
//   LATCHKEY_ISSUER          issuer (= base URL), e.g. http://127.0.0.1:PORT
//   LATCHKEY_REFRESH_TOKEN   refresh token from POST /v1/sign-in as client `web`
//   LATCHKEY_ACCESS_TOKEN    access token from the same sign-in
//   LATCHKEY_PUBLIC_CLIENT   public client id (scopes read, write; audience latchkey)
//   LATCHKEY_CONF_CLIENT     confidential client id (scope jobs; audience jobs-api)
//   LATCHKEY_CONF_SECRET     its client_secret
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

// Loopback http only: oauth4webapi refuses http:// endpoints without this.
const insecure = { [oauth.allowInsecureRequests]: true };
const timeout = () => ({ ...insecure, signal: AbortSignal.timeout(10_000) });

const publicClient = { client_id: publicId };
const confClient = { client_id: confId };
const USER_AUDIENCE = 'latchkey';
const JOBS_AUDIENCE = 'jobs-api';

let passed = 0;
let failed = 0;

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
    assert(set(as.grant_types_supported) === set(['refresh_token', 'client_credentials']),
        `grant_types_supported: ${JSON.stringify(as.grant_types_supported)}`);
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

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
