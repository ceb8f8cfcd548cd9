/**
 * Where the refresh token lives in body mode. In memory by default: a
 * refresh token is a long-lived credential, and anything in `localStorage`
 * is readable by every script that ever runs on the origin (one XSS and the
 * session is stolen for weeks). Browsers should prefer cookie mode, where
 * the refresh token is an HttpOnly cookie no script can read; this
 * interface is for Node services and native shells that have a safe place
 * of their own (a keychain, an encrypted file).
 */
/**
 * The default: a variable. Share one instance between clients in one
 * process (several clients of one user) so that they all see the latest
 * rotated token.
 */
export class MemoryStorage {
    #token = null;
    get() {
        return this.#token;
    }
    set(token) {
        this.#token = token;
    }
}
