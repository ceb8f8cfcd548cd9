"""Verifies a Latchkey access token with PyJWT against the server's live JWKS,
checks that tampered tokens and wrong expectations are rejected, and that the
access token returned by POST /v1/tokens/refresh verifies too.

Usage: python verify.py [BASE_URL [ACCESS_TOKEN [REFRESH_TOKEN]]]
Environment (used where no argument is given):
  LATCHKEY_BASE_URL       e.g. http://127.0.0.1:8080
  LATCHKEY_ISSUER         expected "iss" (default: LATCHKEY_BASE_URL)
  LATCHKEY_ACCESS_TOKEN   an access token from POST /v1/sign-in
  LATCHKEY_REFRESH_TOKEN  the refresh token of the same response
Prints one line per check and a last line "N passed, M failed"; exits 1 if any failed.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

import jwt

AUDIENCE = "latchkey"
REQUIRED = ["exp", "iat", "sub", "jti"]


def arg(i, env):
    return sys.argv[i] if len(sys.argv) > i and sys.argv[i] else os.environ.get(env, "")


base = arg(1, "LATCHKEY_BASE_URL").rstrip("/")
issuer = os.environ.get("LATCHKEY_ISSUER") or base
# The algorithm the server signs with (`--signing-algorithm`): EdDSA, or
# RFC 9864's fully specified Ed25519.
ALG = os.environ.get("LATCHKEY_EXPECT_ALG") or "EdDSA"
access_token = arg(2, "LATCHKEY_ACCESS_TOKEN")
refresh_token = arg(3, "LATCHKEY_REFRESH_TOKEN")
if not (base and access_token and refresh_token):
    print("verify.py: need BASE_URL, ACCESS_TOKEN and REFRESH_TOKEN (argv or LATCHKEY_* env)", file=sys.stderr)
    sys.exit(2)

jwks_url = base + "/.well-known/jwks.json"
jwks_client = jwt.PyJWKClient(jwks_url, timeout=5)

passed = 0
failed = 0


def check(name):
    def run(fn):
        global passed, failed
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
            failed += 1
            print(f"FAIL {name}: {type(err).__name__}: {err}")
        else:
            passed += 1
            print(f"ok   {name}")
        return fn

    return run


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def parts(token):
    p = token.split(".")
    assert len(p) == 3, f"token has {len(p)} parts, not 3"
    return p


def verify(token, audience=AUDIENCE, iss=None):
    """The documented PyJWT flow: key from the live JWKS by kid, then decode."""
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=[ALG],
        audience=audience,
        issuer=iss if iss is not None else issuer,
        options={"require": REQUIRED},
    )


def verify_good(token, label):
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == "at+jwt", f"{label}: header typ is {header.get('typ')!r}, not 'at+jwt'"
    assert header.get("alg") == ALG, f"{label}: header alg is {header.get('alg')!r}"
    assert header.get("kid"), f"{label}: header has no kid"
    claims = verify(token)
    for claim in ("sub", "sid", "jti", "client_id"):
        assert isinstance(claims.get(claim), str) and claims[claim], f"{label}: claim {claim} missing or empty"
    now = int(time.time())
    assert isinstance(claims.get("exp"), int) and claims["exp"] > now, f"{label}: exp {claims.get('exp')} is not after now {now}"
    return claims


def rejects(token, errors, what, **kw):
    try:
        claims = verify(token, **kw)
    except errors:
        return
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"{what}: expected {[e.__name__ for e in errors]}, got {type(err).__name__}: {err}") from err
    raise AssertionError(f"{what} was accepted: {claims}")


state = {}


@check("PyJWT verifies the access token against the live JWKS (iss, aud, alg, typ, required claims)")
def _():
    state["first"] = verify_good(access_token, "access token")


@check("token with one flipped signature bit is rejected")
def _():
    h, p, s = parts(access_token)
    sig = bytearray(b64url_decode(s))
    sig[0] ^= 0x01
    rejects(f"{h}.{p}.{b64url_encode(bytes(sig))}", (jwt.InvalidSignatureError,), "tampered signature")


@check("token with an altered payload is rejected")
def _():
    h, p, s = parts(access_token)
    claims = json.loads(b64url_decode(p))
    claims["sub"] = "someone-else"
    altered = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    rejects(f"{h}.{altered}.{s}", (jwt.InvalidSignatureError,), "altered payload")


@check("token checked with the wrong audience is rejected")
def _():
    rejects(access_token, (jwt.InvalidAudienceError,), "wrong audience", audience="not-latchkey")


@check("token checked with the wrong issuer is rejected")
def _():
    rejects(access_token, (jwt.InvalidIssuerError,), "wrong issuer", iss="https://issuer.invalid")


@check('unsigned (alg "none") copy of the token is rejected')
def _():
    h, p, _s = parts(access_token)
    header = json.loads(b64url_decode(h))
    header["alg"] = "none"
    none_token = f"{b64url_encode(json.dumps(header).encode())}.{p}."
    rejects(none_token, (jwt.InvalidAlgorithmError, jwt.DecodeError), "alg none")


@check("access token from POST /v1/tokens/refresh verifies too")
def _():
    req = urllib.request.Request(
        base + "/v1/tokens/refresh",
        data=json.dumps({"refresh_token": refresh_token}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, body = res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read().decode()
    assert status == 200, f"POST /v1/tokens/refresh: {status} {body}"
    nxt = json.loads(body).get("access_token")
    assert isinstance(nxt, str) and nxt, "refresh response has no access_token"
    claims = verify_good(nxt, "refreshed access token")
    first = state.get("first")
    if first:
        assert claims["sub"] == first["sub"], f"sub changed: {first['sub']} -> {claims['sub']}"
        assert claims["sid"] == first["sid"], f"sid changed: {first['sid']} -> {claims['sid']}"
        assert claims["jti"] != first["jti"], "refreshed token reuses the jti"


print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
