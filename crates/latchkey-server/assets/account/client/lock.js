/**
 * The cross-tab refresh lock: at most one holder of a name at a time, so
 * that one tab (or one client) refreshes while the others wait. Browsers
 * get the Web Locks API; Node has none (as of Node 20) and gets
 * `MutexLock` for clients in one process, or nothing (then only the
 * in-client single flight holds, and two refreshers racing are absorbed by
 * the server's refresh grace window).
 */
/**
 * `navigator.locks` as a `RefreshLock`, or `null` where the API is missing
 * (old browsers, Node 20, insecure contexts).
 */
export function webLocks() {
    const nav = globalThis.navigator;
    const locks = nav?.locks;
    if (locks === undefined || typeof locks.request !== "function")
        return null;
    return {
        request(name, task) {
            return locks.request(name, () => task());
        },
    };
}
/**
 * An in-process lock: the same semantics as Web Locks (FIFO, held until the
 * task settles) for clients that live in one JavaScript realm. Share one
 * instance between the clients that must not refresh at the same time.
 */
export class MutexLock {
    #tails = new Map();
    async request(name, task) {
        const previous = this.#tails.get(name) ?? Promise.resolve();
        let release;
        const held = new Promise((resolve) => {
            release = resolve;
        });
        const tail = previous.then(() => held);
        this.#tails.set(name, tail);
        await previous;
        try {
            return await task();
        }
        finally {
            release();
            // Forget the name once nobody queues behind us, so names do not pile up.
            if (this.#tails.get(name) === tail)
                this.#tails.delete(name);
        }
    }
}
