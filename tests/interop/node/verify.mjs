// Verifies a Latchkey access token with the `jose` library against the server's
// live JWKS, checks that tampered tokens and wrong expectations are rejected, and
// that the access token returned by POST /v1/tokens/refresh verifies too.
//
// Usage: node verify.mjs [BASE_URL [ACCESS_TOKEN [REFRESH_TOKEN]]]
// Environment (used where no argument is given):
//   LATCHKEY_BASE_URL       e.g. http://127.0.0.1:8080
//   LATCHKEY_ISSUER         expected "iss" (default: LATCHKEY_BASE_URL)
//   LATCHKEY_ACCESS_TOKEN   an access token from POST /v1/sign-in
//   LATCHKEY_REFRESH_TOKEN  the refresh token of the same response
// Prints one line per check and a last line "N passed, M failed"; exits 1 if any failed.
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

const [argBase, argAccess, argRefresh] = process.argv.slice(2);
const base = (argBase || process.env.LATCHKEY_BASE_URL || '').replace(/\/+$/, '');
const issuer = process.env.LATCHKEY_ISSUER || base;
const accessToken = argAccess || process.env.LATCHKEY_ACCESS_TOKEN || '';
const refreshToken = argRefresh || process.env.LATCHKEY_REFRESH_TOKEN || '';
if (!base || !accessToken || !refreshToken) {
  console.error('verify.mjs: need BASE_URL, ACCESS_TOKEN and REFRESH_TOKEN (argv or LATCHKEY_* env)');
  process.exit(2);
}

const AUDIENCE = 'latchkey';
const jwks = createRemoteJWKSet(new URL(base + '/.well-known/jwks.json'), {
  timeoutDuration: 5000,
});
// The algorithm the server signs with (`--signing-algorithm`): EdDSA, or
// RFC 9864's fully specified Ed25519.
const ALG = process.env.LATCHKEY_EXPECT_ALG || 'EdDSA';
const options = { issuer, audience: AUDIENCE, typ: 'at+jwt', algorithms: [ALG] };

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    const detail = err instanceof Error
      ? `${err.code || err.name}: ${err.message}`
      : String(err);
    console.log(`FAIL ${name}: ${detail}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// Expects `promise` to reject with a jose error whose code is one of `codes`.
async function rejects(promise, codes, what) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    assert(codes.includes(err && err.code), `expected ${codes.join(' or ')}, got ${err && err.code}: ${err && err.message}`);
    return;
  }
  throw new Error(`${what} was accepted: ${JSON.stringify(result && result.payload)}`);
}

const b64url = {
  decode: (s) => Buffer.from(s, 'base64url'),
  encode: (b) => Buffer.from(b).toString('base64url'),
};

function parts(token) {
  const p = token.split('.');
  assert(p.length === 3, `token has ${p.length} parts, not 3`);
  return p;
}

async function verifyGood(token, label) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, options);
  assert(protectedHeader.alg === ALG, `alg is ${protectedHeader.alg}`);
  assert(protectedHeader.typ === 'at+jwt', `typ is ${protectedHeader.typ}`);
  assert(typeof protectedHeader.kid === 'string' && protectedHeader.kid, `${label}: kid missing`);
  for (const claim of ['sub', 'sid', 'jti', 'client_id']) {
    assert(typeof payload[claim] === 'string' && payload[claim].length > 0, `${label}: claim ${claim} missing or empty`);
  }
  const now = Math.floor(Date.now() / 1000);
  assert(Number.isInteger(payload.exp) && payload.exp > now, `${label}: exp ${payload.exp} is not after now ${now}`);
  assert(Number.isInteger(payload.iat), `${label}: iat missing`);
  return payload;
}

let first;
await check('jose verifies the access token against the live JWKS (iss, aud, typ, alg)', async () => {
  first = await verifyGood(accessToken, 'access token');
});

await check('header kid names a key in the JWKS', async () => {
  const { kid } = decodeProtectedHeader(accessToken);
  const res = await fetch(base + '/.well-known/jwks.json', { signal: AbortSignal.timeout(5000) });
  assert(res.status === 200, `GET /.well-known/jwks.json: ${res.status}`);
  const { keys } = await res.json();
  const key = keys.find((k) => k.kid === kid);
  assert(key, `kid ${kid} not in JWKS`);
  assert(key.kty === 'OKP' && key.crv === 'Ed25519', `key is ${key.kty}/${key.crv}`);
  assert(!('d' in key), 'JWKS publishes a private key component');
});

await check('token with one flipped signature bit is rejected', async () => {
  const [h, p, s] = parts(accessToken);
  const sig = b64url.decode(s);
  sig[0] ^= 0x01;
  await rejects(jwtVerify(`${h}.${p}.${b64url.encode(sig)}`, jwks, options),
    ['ERR_JWS_SIGNATURE_VERIFICATION_FAILED'], 'tampered signature');
});

await check('token with an altered payload is rejected', async () => {
  const [h, p, s] = parts(accessToken);
  const claims = JSON.parse(b64url.decode(p).toString('utf8'));
  claims.sub = 'someone-else';
  await rejects(jwtVerify(`${h}.${b64url.encode(JSON.stringify(claims))}.${s}`, jwks, options),
    ['ERR_JWS_SIGNATURE_VERIFICATION_FAILED'], 'altered payload');
});

await check('token checked with the wrong audience is rejected', async () => {
  await rejects(jwtVerify(accessToken, jwks, { ...options, audience: 'not-latchkey' }),
    ['ERR_JWT_CLAIM_VALIDATION_FAILED'], 'wrong audience');
});

await check('token checked with the wrong issuer is rejected', async () => {
  await rejects(jwtVerify(accessToken, jwks, { ...options, issuer: 'https://issuer.invalid' }),
    ['ERR_JWT_CLAIM_VALIDATION_FAILED'], 'wrong issuer');
});

await check('unsigned (alg "none") copy of the token is rejected', async () => {
  const [, p] = parts(accessToken);
  const h = b64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
  await rejects(jwtVerify(`${h}.${p}.`, jwks, options),
    ['ERR_JOSE_ALG_NOT_ALLOWED', 'ERR_JWS_INVALID', 'ERR_JOSE_NOT_SUPPORTED'], 'alg none');
});

await check('access token from POST /v1/tokens/refresh verifies too', async () => {
  const res = await fetch(base + '/v1/tokens/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: refreshToken }),
    signal: AbortSignal.timeout(10000),
  });
  const body = await res.text();
  assert(res.status === 200, `POST /v1/tokens/refresh: ${res.status} ${body}`);
  const { access_token: next } = JSON.parse(body);
  assert(typeof next === 'string' && next, 'refresh response has no access_token');
  const payload = await verifyGood(next, 'refreshed access token');
  if (first) {
    assert(payload.sub === first.sub, `sub changed: ${first.sub} -> ${payload.sub}`);
    assert(payload.sid === first.sid, `sid changed: ${first.sid} -> ${payload.sid}`);
    assert(payload.jti !== first.jti, 'refreshed token reuses the jti');
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
