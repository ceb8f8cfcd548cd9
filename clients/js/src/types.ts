/**
 * The shapes of Latchkey's `/v1` answers this client reads (see the
 * server's `docs/API.md`), and the client's own option and result types.
 */

import type { RefreshLock } from "./lock.js";
import type { RefreshTokenStorage } from "./storage.js";

/** Where the refresh token travels: the JSON body, or an HttpOnly cookie. */
export type TokenDelivery = "body" | "cookie";

/** Which sessions `signOut` ends. */
export type SignOutScope = "current" | "others" | "all";

/** `POST /v1/sign-up` → 201. */
export interface Account {
  id: string;
  username: string;
  created_at: number;
}

/** `GET /v1/me` → 200. */
export interface Me extends Account {
  roles: string[];
}

/** One entry of `GET /v1/sessions`. */
export interface SessionInfo {
  id: string;
  /** The app the session was opened for (`latchkey:browser`: the hosted sign-in page). */
  client_id: string;
  created_at: number;
  last_refreshed_at: number;
  expires_at: number;
  user_agent?: string | null;
  ip?: string | null;
  current: boolean;
}

/** The token response of sign-in and refresh (`refresh_token` absent in cookie mode). */
export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  expires_at: number;
  refresh_token?: string;
  scope?: string;
}

/** What `signIn` and `refresh` leave the app: never the refresh token. */
export interface AccessGrant {
  accessToken: string;
  /** Local clock, milliseconds since the epoch, when the access token expires. */
  expiresAt: number;
  scope: string | undefined;
}

/** Arguments of `signIn`; `scope` and `audience` as the server's sign-in takes them. */
export interface SignInRequest {
  username: string;
  password: string;
  scope?: string;
  audience?: string;
}

/** How to build a client. Only `baseUrl` is required. */
export interface LatchkeyClientOptions {
  /** The Latchkey server, e.g. `https://auth.example.com` (paths are appended). */
  baseUrl: string | URL;
  /**
   * `"body"` (default): the refresh token comes in the JSON body and is kept
   * in `storage`. `"cookie"`: the server sets it as the HttpOnly cookie
   * `__Host-latchkey_refresh`, the auth calls go with `credentials:
   * "include"`, and no script ever sees it (the browser recommendation).
   */
  tokenDelivery?: TokenDelivery;
  /** Body mode only: where the refresh token lives; a `MemoryStorage` by default. */
  storage?: RefreshTokenStorage;
  /** The public client to sign in as (`default` on the server when absent). */
  clientId?: string;
  /** The `fetch` every request goes through; the global one by default. */
  fetch?: typeof fetch;
  /**
   * The lock that makes one tab refresh at a time. Default: the Web Locks
   * API where present and cross-tab sharing is on; `null`: none (in-client
   * single flight only).
   */
  lock?: RefreshLock | null;
  /**
   * BroadcastChannel name for tab-to-tab news (new access tokens, session
   * ended); `null` turns cross-tab sharing off. Default `"latchkey"` in cookie
   * mode or with a storage of the app's own, `null` in body mode with the
   * default memory storage (tabs do not share memory, so they must not share
   * a session).
   */
  channelName?: string | null;
  /** Refresh before expiry on a timer (default `true`). */
  autoRefresh?: boolean;
  /**
   * How long before expiry to refresh, as fractions of the token's lifetime,
   * picked at random in `[min, max]` so tabs and clients spread out. Default
   * `{ min: 0.1, max: 0.2 }`.
   */
  refreshLead?: { min: number; max: number };
  /** The lead is at least this long (default 1000 ms). */
  minRefreshLeadMs?: number;
  /**
   * Origins the `fetch` wrapper may send the access token to; requests to any
   * other origin go out untouched. Default: the origin of `baseUrl`.
   */
  tokenOrigins?: string[];
  /** Time limit of each auth request (default 30 000 ms). */
  requestTimeoutMs?: number;
}
