// The refresh locks: MutexLock (in-process, what Node uses in the place of
// Web Locks) is exclusive, first come first served, and released when its
// task fails; webLocks() is null where the runtime has no navigator.locks
// (Node 20), and when the runtime has one the client takes it by default
// and refreshes under the name `latchkey-refresh`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { LatchkeyClient, MemoryStorage, MutexLock, REFRESH_LOCK_NAME, webLocks } from '../dist/index.js';
import { PASSWORD, sleep, startServer, uniqueName } from './server.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

test('MutexLock: one holder at a time, in request order, released on failure', async () => {
    const lock = new MutexLock();
    let holding = 0;
    let most = 0;
    const order = [];
    const task = (i) => async () => {
        holding += 1;
        most = Math.max(most, holding);
        order.push(i);
        await sleep(10);
        holding -= 1;
        if (i === 2) throw new Error('task 2 fails');
        return i;
    };
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => lock.request('n', task(i))));
    assert.equal(most, 1);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
    assert.equal(results[2].status, 'rejected');
    assert.deepEqual(results.filter((r) => r.status === 'fulfilled').map((r) => r.value), [0, 1, 3, 4, 5]);
    // Different names do not wait for each other.
    let otherRan = false;
    const long = lock.request('a', () => sleep(200));
    await lock.request('b', async () => {
        otherRan = true;
    });
    assert.equal(otherRan, true);
    await long;
});

test('webLocks(): null without navigator.locks', { skip: globalThis.navigator?.locks !== undefined }, () => {
    assert.equal(webLocks(), null);
});

test('a runtime with navigator.locks: the client refreshes under latchkey-refresh by default', async () => {
    const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    const names = [];
    const mutex = new MutexLock();
    // A Web Locks-shaped lock manager (request(name, callback)), in-process.
    const locks = {
        request(name, callback) {
            names.push(name);
            return mutex.request(name, () => callback({ name, mode: 'exclusive' }));
        },
    };
    Object.defineProperty(globalThis, 'navigator', { value: { locks }, configurable: true, writable: true });
    try {
        assert.notEqual(webLocks(), null);
        const c = new LatchkeyClient({ baseUrl: server.base, storage: new MemoryStorage(), channelName: uniqueName('ch'), autoRefresh: false });
        const username = uniqueName('weblocks');
        await c.signUp(username, PASSWORD);
        await c.signIn({ username, password: PASSWORD });
        const tokens = await Promise.all([c.refresh(), c.refresh(), c.refresh()]);
        assert.equal(new Set(tokens).size, 1);
        assert.deepEqual(names, [REFRESH_LOCK_NAME], 'one lock request for the three callers');
        assert.equal((await c.me()).username, username);
        c.close();

        const lockless = new LatchkeyClient({ baseUrl: server.base, autoRefresh: false });
        await lockless.signIn({ username, password: PASSWORD });
        await lockless.refresh();
        assert.equal(names.length, 1, 'body mode with the default storage does not coordinate tabs');
        lockless.close();
    } finally {
        if (had) Object.defineProperty(globalThis, 'navigator', had);
        else delete globalThis.navigator;
    }
});
