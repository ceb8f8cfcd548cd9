// Refresh behaviour against the real server: the proactive timer refreshes
// before expiry (2 s access tokens), the fetch wrapper refreshes once on a
// 401 and resends once, ten concurrent callers share one refresh request,
// and a session ended elsewhere surfaces as `sessionended`. Refresh
// requests are counted by wrapping the client's own fetch, and cross-checked
// with the server's refresh counter on /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { LatchkeyClient, LatchkeyError } from '../dist/index.js';
import { countingFetch, PASSWORD, refreshMetric, sleep, startServer, uniqueName, until } from './server.mjs';

const REFRESH = '/v1/tokens/refresh';
let slow; // default 10 min access tokens: only the refreshes a test causes
let fast; // 2 s access tokens: the proactive timer
before(async () => {
    [slow, fast] = await Promise.all([startServer(), startServer(['--access-ttl', '2s'])]);
});
after(async () => {
    await Promise.all([slow?.stop(), fast?.stop()]);
});

const clients = [];
function client(server, options = {}) {
    const c = new LatchkeyClient({ baseUrl: server.base, channelName: null, ...options });
    clients.push(c);
    return c;
}
after(() => clients.forEach((c) => c.close()));

async function signedIn(server, options = {}) {
    const username = uniqueName('refresh');
    const counted = countingFetch();
    const c = client(server, { fetch: counted, ...options });
    await c.signUp(username, PASSWORD);
    await c.signIn({ username, password: PASSWORD });
    return { c, counted, username };
}

/** Cancels an access token behind the client's back (POST /v1/tokens/cancel), so the server answers 401 to it. */
async function cancel(server, token) {
    const r = await fetch(`${server.base}/v1/tokens/cancel`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 204);
}

test('proactive refresh: a new token arrives before the old one expires, about once per lifetime', async () => {
    const { c, counted } = await signedIn(fast);
    const firstToken = c.accessToken;
    const firstExpiry = c.expiresAt;
    const refreshed = [];
    c.addEventListener('tokenrefreshed', (e) => refreshed.push({ at: Date.now(), expiresAt: e.expiresAt, source: e.source }));

    await until(() => refreshed.length >= 1, 3_000, 'the first proactive refresh');
    assert.ok(refreshed[0].at < firstExpiry, `refreshed ${firstExpiry - refreshed[0].at} ms before expiry`);
    assert.ok(firstExpiry - refreshed[0].at >= 500, 'with at least the 1 s lead (less scheduling slack)');
    assert.equal(refreshed[0].source, 'refresh');
    assert.notEqual(c.accessToken, firstToken);
    assert.equal(counted.count(REFRESH), 1);

    // Keeps going, once per lifetime minus the lead (1 s here), not in a loop.
    const windowStart = Date.now();
    await sleep(3_000);
    const inWindow = refreshed.filter((r) => r.at >= windowStart).length;
    assert.ok(inWindow >= 2 && inWindow <= 4, `${inWindow} refreshes in 3 s`);
    assert.ok(c.expiresAt > Date.now(), 'the token in hand is always unexpired');
    assert.equal((await c.me()).username.startsWith('refresh-'), true);

    c.close(); // stops the timer
    const afterClose = counted.count(REFRESH);
    await sleep(2_200);
    assert.equal(counted.count(REFRESH), afterClose, 'no refresh after close');
});

test('fetch wrapper: a 401 refreshes once and resends once', async () => {
    const { c, counted } = await signedIn(slow, { autoRefresh: false });
    const before = c.accessToken;
    await cancel(slow, before);

    const r = await c.fetch(`${slow.base}/v1/me`);
    assert.equal(r.status, 200);
    assert.equal(counted.count(REFRESH), 1);
    assert.equal(counted.count('/v1/me'), 2, 'the first try (401) and the resend');
    assert.notEqual(c.accessToken, before);

    // A body that can be sent twice is resent too (POST with a string body).
    await cancel(slow, c.accessToken);
    const out = await c.fetch(`${slow.base}/v1/sign-out`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ scope: 'others' }),
    });
    assert.equal(out.status, 204);
    assert.equal(counted.count(REFRESH), 2);
});

test('fetch wrapper: a stream body is not resent; the 401 comes back', async () => {
    const { c, counted } = await signedIn(slow, { autoRefresh: false });
    await cancel(slow, c.accessToken);
    const body = new ReadableStream({
        start(controller) {
            controller.enqueue(new TextEncoder().encode('{"scope":"others"}'));
            controller.close();
        },
    });
    const r = await c.fetch(`${slow.base}/v1/sign-out`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        duplex: 'half',
    });
    assert.equal(r.status, 401);
    assert.equal(counted.count(REFRESH), 0);
    assert.equal(counted.count('/v1/sign-out'), 1);
});

test('fetch wrapper: a 401 that is not about the access token does not refresh', async () => {
    const { c, counted } = await signedIn(slow, { autoRefresh: false });
    // The revocation feed wants a confidential client (HTTP Basic): 401 invalid_client.
    const r = await c.fetch(`${slow.base}/v1/revocations`);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Basic/);
    assert.equal((await r.json()).error, 'invalid_client');
    assert.equal(counted.count(REFRESH), 0);
    assert.equal(counted.count('/v1/revocations'), 1);
});

test('fetch wrapper: the token goes only to the allowed origins', async () => {
    const { c } = await signedIn(slow, { autoRefresh: false });
    // Another origin (the other server): no token attached, so it answers 401.
    const elsewhere = await c.fetch(`${fast.base}/v1/me`);
    assert.equal(elsewhere.status, 401);
    const here = await c.fetch(`${slow.base}/v1/me`);
    assert.equal(here.status, 200);

    const trusting = client(slow, { tokenOrigins: [slow.base, fast.base], autoRefresh: false });
    const username = uniqueName('origins');
    await trusting.signUp(username, PASSWORD);
    await trusting.signIn({ username, password: PASSWORD });
    // Sent now; the other server rejects a token it did not sign, still 401, but with error="invalid_token".
    const sent = await trusting.fetch(`${fast.base}/v1/me`);
    assert.equal(sent.status, 401);
    assert.match(sent.headers.get('www-authenticate') ?? '', /invalid_token/);
    assert.doesNotMatch(elsewhere.headers.get('www-authenticate') ?? '', /invalid_token/);
});

test('single flight: 10 concurrent refreshes are one request', async () => {
    const { c, counted } = await signedIn(slow, { autoRefresh: false });
    const rotatedBefore = await refreshMetric(slow.base, 'rotated');
    const tokens = await Promise.all(Array.from({ length: 10 }, () => c.refresh()));
    assert.equal(counted.count(REFRESH), 1);
    assert.equal(new Set(tokens).size, 1);
    assert.equal(tokens[0], c.accessToken);
    assert.equal((await refreshMetric(slow.base, 'rotated')) - rotatedBefore, 1, 'the server rotated once');
});

test('single flight: 10 concurrent calls that all get 401 cause one refresh', async () => {
    const { c, counted, username } = await signedIn(slow, { autoRefresh: false });
    await cancel(slow, c.accessToken);
    const answers = await Promise.all(Array.from({ length: 10 }, () => c.me()));
    assert.ok(answers.every((me) => me.username === username));
    assert.equal(counted.count(REFRESH), 1);
    assert.equal(counted.count('/v1/me'), 20, 'ten 401s and ten resends');
});

test('sessionended: the session ended from another device ends here on the next refresh (timer)', async () => {
    const { c, counted, username } = await signedIn(fast);
    const other = client(fast, { autoRefresh: false });
    await other.signIn({ username, password: PASSWORD });
    const ended = new Promise((r) => c.addEventListener('sessionended', r, { once: true }));
    await other.signOut('others');

    const event = await Promise.race([ended, sleep(5_000).then(() => null)]);
    assert.ok(event, 'sessionended within 5 s, without any call by the app');
    assert.equal(event.reason, 'refresh-refused');
    assert.equal(event.fromOtherTab, false);
    assert.equal(c.signedIn, false);
    assert.equal(await c.getAccessToken(), null);
    const refreshes = counted.count(REFRESH);
    await sleep(2_200);
    assert.equal(counted.count(REFRESH), refreshes, 'no more refresh attempts once ended');
    const me = await c.me().catch((e) => e);
    assert.ok(me instanceof LatchkeyError);
    assert.equal(me.status, 401);
});

test('a refresh that cannot reach the server is a network_error and does not end the session', async () => {
    let down = false;
    const flaky = (input, init) => (down ? Promise.reject(new TypeError('fetch failed')) : fetch(input, init));
    const { c } = await signedIn(slow, { autoRefresh: false, fetch: flaky });
    let ended = false;
    c.addEventListener('sessionended', () => (ended = true));
    down = true;
    const error = await c.refresh().catch((e) => e);
    assert.ok(error instanceof LatchkeyError);
    assert.equal(error.status, 0);
    assert.equal(error.code, 'network_error');
    assert.equal(ended, false);
    assert.equal(c.signedIn, true);
    down = false;
    await c.refresh();
    assert.ok((await c.me()).id);
});
