// The user-facing /v1 routes through LatchkeyClient in body mode, against
// the real server: sign-up, sign-in, me, sessions (list, end), sign-out
// scopes, password change, typed errors, and restoring a session from the
// storage in a new client (a restarted Node process).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { LatchkeyClient, LatchkeyError, MemoryStorage } from '../dist/index.js';
import { PASSWORD, startServer, uniqueName } from './server.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const clients = [];
function client(options = {}) {
    const c = new LatchkeyClient({ baseUrl: server.base, ...options });
    clients.push(c);
    return c;
}
after(() => clients.forEach((c) => c.close()));

/** A new user, signed up; returns its name. */
async function newUser(prefix) {
    const username = uniqueName(prefix);
    await client().signUp(username, PASSWORD);
    return username;
}

test('sign-up answers the account; a taken name is a typed 409', async () => {
    const c = client();
    const username = uniqueName('signup');
    const account = await c.signUp(username, PASSWORD);
    assert.equal(account.username, username);
    assert.match(account.id, /^[0-9a-f-]{36}$/);
    assert.equal(typeof account.created_at, 'number');

    const taken = await c.signUp(username.toUpperCase(), PASSWORD).catch((e) => e);
    assert.ok(taken instanceof LatchkeyError, String(taken));
    assert.equal(taken.status, 409);
    assert.equal(taken.code, 'username_taken');

    const short = await c.signUp(uniqueName('short'), 'short').catch((e) => e);
    assert.ok(short instanceof LatchkeyError);
    assert.equal(short.status, 400);
    assert.equal(short.code, 'invalid_request');
    assert.ok(short.description.length > 0);
});

test('sign-in (body mode) keeps the tokens; me answers the user', async () => {
    const username = await newUser('signin');
    const storage = new MemoryStorage();
    const c = client({ storage, autoRefresh: false });
    assert.equal(c.signedIn, false);
    assert.equal(await c.getAccessToken(), null);

    const grant = await c.signIn({ username, password: PASSWORD });
    assert.equal(c.signedIn, true);
    assert.equal(c.accessToken, grant.accessToken);
    assert.ok(grant.expiresAt > Date.now() + 60_000, 'default access TTL is 10 min');
    assert.equal('refreshToken' in grant, false, 'the app never gets the refresh token');
    assert.match(storage.get(), /^lkr_/, 'the refresh token went to the storage');

    const me = await c.me();
    assert.equal(me.username, username);
    assert.ok(Array.isArray(me.roles));

    const wrong = await client().signIn({ username, password: 'not the password at all' }).catch((e) => e);
    assert.ok(wrong instanceof LatchkeyError);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.code, 'invalid_grant');
});

test('sessions: list marks the current one; end another; unknown ids are 404', async () => {
    const username = await newUser('sessions');
    const a = client({ autoRefresh: false });
    const b = client({ autoRefresh: false });
    await a.signIn({ username, password: PASSWORD });
    await b.signIn({ username, password: PASSWORD });

    const listed = await b.sessions();
    assert.equal(listed.length, 2);
    assert.equal(listed.filter((s) => s.current).length, 1);
    const aSession = listed.find((s) => !s.current);
    assert.ok(aSession);

    await b.endSession(aSession.id);
    const left = await b.sessions();
    assert.deepEqual(left.map((s) => s.id), listed.filter((s) => s.current).map((s) => s.id));

    const gone = await b.endSession(aSession.id).catch((e) => e);
    assert.ok(gone instanceof LatchkeyError);
    assert.equal(gone.status, 404);
    assert.equal(gone.code, 'not_found');

    // The ended session is over for `a`: its next call refreshes, is refused, and ends it.
    const ended = new Promise((r) => a.addEventListener('sessionended', r, { once: true }));
    const refused = await a.me().catch((e) => e);
    assert.ok(refused instanceof LatchkeyError);
    assert.equal(refused.status, 401);
    const event = await ended;
    assert.equal(event.reason, 'refresh-refused');
    assert.equal(a.signedIn, false);
});

test('sign-out scopes: others keeps this session, current ends it, all ends every one', async () => {
    const username = await newUser('signout');
    const sign = async () => {
        const c = client({ autoRefresh: false });
        await c.signIn({ username, password: PASSWORD });
        return c;
    };
    const [a, b, c] = [await sign(), await sign(), await sign()];
    assert.equal((await a.sessions()).length, 3);

    await a.signOut('others');
    assert.equal(a.signedIn, true);
    assert.deepEqual((await a.sessions()).map((s) => s.current), [true]);
    const bRefused = await b.me().catch((e) => e);
    assert.equal(bRefused.status, 401);

    const events = [];
    a.addEventListener('sessionended', (e) => events.push(e.reason));
    await a.signOut(); // current
    assert.equal(a.signedIn, false);
    assert.deepEqual(events, ['signed-out']);

    const d = await sign();
    const e = await sign();
    assert.equal((await d.sessions()).length, 2);
    await d.signOut('all');
    assert.equal(d.signedIn, false);
    const eRefused = await e.me().catch((err) => err);
    assert.equal(eRefused.status, 401);
    assert.equal(e.signedIn, false, 'e found its session over on the refused refresh');
    void c;

    const bad = await (await sign()).signOut('everyone').catch((err) => err);
    assert.ok(bad instanceof LatchkeyError);
    assert.equal(bad.status, 400);
});

test('password change: wrong current is 400 invalid_grant; success ends the other sessions only', async () => {
    const username = await newUser('password');
    const a = client({ autoRefresh: false });
    const b = client({ autoRefresh: false });
    await a.signIn({ username, password: PASSWORD });
    await b.signIn({ username, password: PASSWORD });

    const wrong = await a.changePassword('not the current one', 'a brand new passphrase').catch((e) => e);
    assert.ok(wrong instanceof LatchkeyError);
    assert.equal(wrong.status, 400);
    assert.equal(wrong.code, 'invalid_grant');
    assert.equal(a.signedIn, true, 'a wrong current password is not the end of the session');

    await a.changePassword(PASSWORD, 'a brand new passphrase');
    assert.equal((await a.me()).username, username);
    assert.equal((await b.me().catch((e) => e)).status, 401);

    const old = await client().signIn({ username, password: PASSWORD }).catch((e) => e);
    assert.equal(old.status, 401);
    await client({ autoRefresh: false }).signIn({ username, password: 'a brand new passphrase' });
});

test('restore: a new client with the same storage picks the session up; an empty one does not', async () => {
    const username = await newUser('restore');
    const storage = new MemoryStorage();
    const first = client({ storage, autoRefresh: false, channelName: null });
    await first.signIn({ username, password: PASSWORD });
    const firstRefresh = storage.get();
    first.close();

    const second = client({ storage, autoRefresh: false, channelName: null });
    assert.equal(await second.restore(), true);
    assert.notEqual(storage.get(), firstRefresh, 'the refresh token rotated');
    assert.equal((await second.me()).username, username);

    assert.equal(await client({ autoRefresh: false }).restore(), false);

    await second.signOut();
    assert.equal(storage.get(), null, 'sign-out forgets the refresh token');
    const third = client({ storage, autoRefresh: false, channelName: null });
    assert.equal(await third.restore(), false);
});

test('signing out with only a stored refresh token revokes it', async () => {
    const username = await newUser('revoke');
    const storage = new MemoryStorage();
    const first = client({ storage, autoRefresh: false, channelName: null });
    await first.signIn({ username, password: PASSWORD });
    const stored = storage.get();
    const other = client({ storage: new MemoryStorage(), autoRefresh: false, channelName: null });
    await other.signIn({ username, password: PASSWORD });

    const cold = client({ storage, autoRefresh: false, channelName: null });
    await cold.signOut();
    assert.equal(storage.get(), null);
    const refreshed = await fetch(`${server.base}/v1/tokens/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: stored }),
    });
    assert.equal(refreshed.status, 401, 'the revoked refresh token is refused');
    assert.equal((await other.sessions()).length, 1);

    // Scope `all` with only a stored refresh token: the client picks the session up and ends them all.
    const allStorage = new MemoryStorage();
    const third = client({ storage: allStorage, autoRefresh: false, channelName: null });
    await third.signIn({ username, password: PASSWORD });
    const coldAll = client({ storage: allStorage, autoRefresh: false, channelName: null });
    await coldAll.signOut('all');
    assert.equal(allStorage.get(), null);
    assert.equal((await other.me().catch((e) => e)).status, 401, 'the other session ended too');
});

test('cookie mode: the refresh token lives only in the cookie; refresh and sign-out go with credentials', async () => {
    // Node's fetch keeps no cookies and sends no Origin: this wrapper does
    // what a browser page on the server's own origin would.
    const sent = [];
    let jar = null;
    const browserLike = async (input, init = {}) => {
        const url = new URL(String(input));
        const headers = new Headers(init.headers);
        if (init.credentials === 'include' && jar !== null) headers.set('cookie', jar);
        headers.set('origin', url.origin);
        sent.push({ path: url.pathname, credentials: init.credentials, body: init.body ? JSON.parse(init.body) : undefined });
        const response = await fetch(input, { ...init, headers });
        const set = response.headers.get('set-cookie');
        if (set !== null && init.credentials === 'include') {
            const pair = set.split(';')[0];
            jar = pair.endsWith('=') ? null : pair;
        }
        return response;
    };
    const username = await newUser('cookie');
    const storage = new MemoryStorage();
    const c = client({ tokenDelivery: 'cookie', storage, fetch: browserLike, autoRefresh: false, channelName: null });
    await c.signIn({ username, password: PASSWORD });
    assert.equal(storage.get(), null, 'cookie mode never stores a refresh token');
    assert.equal(sent[0].path, '/v1/sign-in');
    assert.equal(sent[0].credentials, 'include');
    assert.equal(sent[0].body.token_delivery, 'cookie');
    assert.match(jar ?? '', /^__Host-latchkey_refresh=lkr_/);

    const before = jar;
    await c.refresh();
    const refresh = sent.find((s) => s.path === '/v1/tokens/refresh');
    assert.deepEqual(refresh.body, { token_delivery: 'cookie' });
    assert.equal(refresh.credentials, 'include');
    assert.notEqual(jar, before, 'the cookie rotated');
    assert.equal((await c.me()).username, username);

    await c.signOut();
    const out = sent.find((s) => s.path === '/v1/sign-out');
    assert.equal(out.credentials, 'include');
    assert.equal(c.signedIn, false);
    assert.equal(jar, null, 'sign-out cleared the cookie');
    // Without the cookie there is no session to restore.
    assert.equal(await c.restore(), false);
});
