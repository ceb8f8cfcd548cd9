/**
 * Where the refresh token lives in body mode. In memory by default: a
 * refresh token is a long-lived credential, and anything in `localStorage`
 * is readable by every script that ever runs on the origin (one XSS and the
 * session is stolen for weeks). Browsers should prefer cookie mode, where
 * the refresh token is an HttpOnly cookie no script can read; this
 * interface is for Node services and native shells that have a safe place
 * of their own (a keychain, an encrypted file).
 */

/** Holds at most one refresh token. Either method may be async. */
export interface RefreshTokenStorage {
  /** The stored refresh token, or `null`. */
  get(): string | null | Promise<string | null>;
  /** Replaces the stored token; `null` forgets it. */
  set(token: string | null): void | Promise<void>;
}

/**
 * The default: a variable. Share one instance between clients in one
 * process (several clients of one user) so that they all see the latest
 * rotated token.
 */
export class MemoryStorage implements RefreshTokenStorage {
  #token: string | null = null;

  get(): string | null {
    return this.#token;
  }

  set(token: string | null): void {
    this.#token = token;
  }
}
