// Cross-tab coordination, with two clients in one Node process standing
// for two tabs: they share a BroadcastChannel name (Node's global
// BroadcastChannel), a refresh-token storage (as tabs share a cookie) and,
// where said, an in-process MutexLock in the place of the Web Locks API
// (which Node 20 lacks). Against the real server; refresh requests counted
// by wrapping the clients' fetch, and the server's own counters on /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { LatchkeyClient, MemoryStorage, MutexLock } from '../dist/index.js';
import { countingFetch, PASSWORD, refreshMetric, sleep, startServer, uniqueName, until } from './server.mjs';

const REFRESH = '/v1/tokens/refresh';
let slow; // 10 min access tokens
let fast; // 2 s access tokens
before(async () => {
    [slow, fast] = await Promise.all([startServer(), startServer(['--access-ttl', '2s'])]);
});
after(async () => {
    await Promise.all([slow?.stop(), fast?.stop()]);
});

const clients = [];
after(() => clients.forEach((c) => c.close()));

/** Two "tabs" of one user: a signs in, b learns the token from a's broadcast. */
async function twoTabs(server, { lock, autoRefresh = false, channel = true } = {}) {
    const storage = new MemoryStorage();
    const counted = countingFetch();
    const channelName = channel ? uniqueName('channel') : null;
    const make = () => {
        const c = new LatchkeyClient({ baseUrl: server.base, storage, fetch: counted, lock, channelName, autoRefresh });
        clients.push(c);
        return c;
    };
    const a = make();
    const b = make();
    const username = uniqueName('tabs');
    await a.signUp(username, PASSWORD);
    await a.signIn({ username, password: PASSWORD });
    if (channel) await until(() => b.accessToken === a.accessToken, 2_000, "b to take a's token");
    return { a, b, counted, username };
}

test('with a lock: both tabs refreshing at once cause one refresh; both get the new token', async () => {
    const lock = new MutexLock();
    const { a, b, counted, username } = await twoTabs(slow, { lock });
    assert.equal(counted.count(REFRESH), 0, 'b took the sign-in token without refreshing');
    const rotated = await refreshMetric(slow.base, 'rotated');
    const inGrace = await refreshMetric(slow.base, 'reissued_in_grace');

    for (let round = 1; round <= 3; round++) {
        const before = a.accessToken;
        // Five callers in each tab at once.
        const tokens = await Promise.all([
            ...Array.from({ length: 5 }, () => a.refresh()),
            ...Array.from({ length: 5 }, () => b.refresh()),
        ]);
        assert.equal(counted.count(REFRESH), round, `round ${round}: one refresh for both tabs`);
        assert.equal(new Set(tokens).size, 1, 'every caller in both tabs got the same token');
        assert.notEqual(tokens[0], before);
        assert.equal(a.accessToken, b.accessToken);
    }
    assert.equal((await refreshMetric(slow.base, 'rotated')) - rotated, 3);
    assert.equal((await refreshMetric(slow.base, 'reissued_in_grace')) - inGrace, 0, 'no token was presented twice');
    assert.equal((await a.me()).username, username);
    assert.equal((await b.me()).username, username);
});

test('with a lock and timers: two tabs refresh once per lifetime between them', async () => {
    const lock = new MutexLock();
    const { a, b, counted } = await twoTabs(fast, { lock, autoRefresh: true });
    const sources = { a: [], b: [] };
    a.addEventListener('tokenrefreshed', (e) => sources.a.push(e.source));
    b.addEventListener('tokenrefreshed', (e) => sources.b.push(e.source));
    await sleep(4_500);
    const refreshes = counted.count(REFRESH);
    const own = sources.a.filter((s) => s === 'refresh').length + sources.b.filter((s) => s === 'refresh').length;
    assert.ok(refreshes >= 2, `${refreshes} refreshes in 4.5 s of 2 s tokens`);
    // Each tab alone would refresh about once a second (lifetime minus the 1 s lead): 8 or 9 for two.
    assert.ok(refreshes <= 5, `${refreshes} refreshes in 4.5 s: the tabs shared them`);
    assert.equal(own, refreshes, 'every refresh request was made by one tab');
    await until(() => a.accessToken === b.accessToken, 1_000, 'both tabs on the same token');
    assert.ok(a.expiresAt > Date.now());
});

test('without a lock (fallback): concurrent refreshes in both tabs still leave one live session', async () => {
    const { a, b, counted, username } = await twoTabs(slow, { lock: null });
    const tokens = await Promise.all([a.refresh(), b.refresh()]);
    const refreshes = counted.count(REFRESH);
    // Without the lock both may refresh; the second presents the same refresh
    // token within the server's grace window and gets the same successor.
    assert.ok(refreshes === 1 || refreshes === 2, `${refreshes} refreshes`);
    assert.ok(tokens.every((t) => typeof t === 'string'));
    assert.equal((await a.me()).username, username);
    assert.equal((await b.me()).username, username);
    assert.equal((await a.sessions()).length, 1, 'still one session, not ended by reuse detection');
    // A later refresh by either tab works: the storage holds the latest refresh token.
    await b.refresh();
    await a.refresh();
    assert.equal((await a.me()).username, username);
});

test('without a channel or a lock: each client still refreshes single-flight and the session survives', async () => {
    const { a, b, counted, username } = await twoTabs(slow, { lock: null, channel: false });
    assert.equal(b.signedIn, false, 'no channel: b heard nothing');
    assert.equal(await b.restore(), true, 'b picks the session up from the shared storage');
    const before = counted.count(REFRESH);
    await Promise.all([...Array.from({ length: 5 }, () => a.refresh()), ...Array.from({ length: 5 }, () => b.refresh())]);
    assert.equal(counted.count(REFRESH) - before, 2, 'one per client');
    assert.equal((await a.me()).username, username);
    assert.equal((await b.me()).username, username);
});

test('a tab waits for the refresh another tab has in flight (channel only, no lock)', async () => {
    const storage = new MemoryStorage();
    const counted = countingFetch();
    const channelName = uniqueName('channel');
    // a's requests leave 300 ms late, so its refresh is surely in flight when b asks.
    const late = async (input, init) => {
        await sleep(300);
        return counted(input, init);
    };
    const a = new LatchkeyClient({ baseUrl: slow.base, storage, fetch: late, lock: null, channelName, autoRefresh: false });
    const b = new LatchkeyClient({ baseUrl: slow.base, storage, fetch: counted, lock: null, channelName, autoRefresh: false });
    clients.push(a, b);
    const username = uniqueName('tabs');
    await b.signUp(username, PASSWORD);
    await a.signIn({ username, password: PASSWORD });
    await until(() => b.accessToken === a.accessToken, 2_000, "b to take a's token");

    const started = a.refresh();
    await sleep(100); // a's "refreshing" reaches b; a's request has not left yet
    const [ta, tb] = await Promise.all([started, b.refresh()]);
    assert.equal(tb, ta, "b took a's token");
    assert.equal(counted.count(REFRESH), 1);
});

test('sign-out in one tab ends the session in the other', async () => {
    const { a, b } = await twoTabs(slow, { lock: new MutexLock() });
    const ended = new Promise((r) => b.addEventListener('sessionended', r, { once: true }));
    let aEvents = 0;
    a.addEventListener('sessionended', () => aEvents++);
    await a.signOut();
    const event = await Promise.race([ended, sleep(2_000).then(() => null)]);
    assert.ok(event, 'b heard of it');
    assert.equal(event.reason, 'signed-out');
    assert.equal(event.fromOtherTab, true);
    assert.equal(b.signedIn, false);
    assert.equal(aEvents, 1);
});

test('a refused refresh in one tab ends the session in both', async () => {
    const { a, b, username } = await twoTabs(slow, { lock: new MutexLock() });
    const other = new LatchkeyClient({ baseUrl: slow.base, autoRefresh: false });
    clients.push(other);
    await other.signIn({ username, password: PASSWORD });
    await other.signOut('others');
    const ended = new Promise((r) => b.addEventListener('sessionended', r, { once: true }));
    await a.refresh().catch(() => undefined);
    const event = await Promise.race([ended, sleep(2_000).then(() => null)]);
    assert.ok(event);
    assert.equal(event.reason, 'refresh-refused');
    assert.equal(event.fromOtherTab, true);
    assert.equal(a.signedIn, false);
    assert.equal(b.signedIn, false);
});
