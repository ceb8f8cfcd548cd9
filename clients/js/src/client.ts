/**
 * `LatchkeyClient`: the user-facing `/v1` routes, the access token in
 * memory, proactive and single-flight refresh (in one client, and across
 * tabs through a lock and a BroadcastChannel), and a `fetch` wrapper that
 * attaches the token and refreshes once on a 401.
 */

import { LatchkeyError } from "./errors.js";
import {
  type LatchkeyClientEventMap,
  type SessionEndReason,
  SessionEndedEvent,
  type TokenSource,
  TokenRefreshedEvent,
} from "./events.js";
import { type RefreshLock, webLocks } from "./lock.js";
import { MemoryStorage, type RefreshTokenStorage } from "./storage.js";
import { type TabMessage, TabNews } from "./tabs.js";
import type {
  AccessGrant,
  Account,
  LatchkeyClientOptions,
  Me,
  SessionInfo,
  SignInRequest,
  SignOutScope,
  TokenDelivery,
  TokenResponse,
} from "./types.js";

/** The Web Locks name every tab of the origin refreshes under. */
export const REFRESH_LOCK_NAME = "latchkey-refresh";

/** The access token in hand. */
interface Access {
  token: string;
  /** Local clock (ms) when it expires. */
  expiresAt: number;
  lifetimeMs: number;
  scope: string | undefined;
}

/** A timer handle of browsers and Node alike. */
type Timer = ReturnType<typeof setTimeout>;

/** Shortest wait between two timer-driven refresh attempts. */
const MIN_TIMER_MS = 100;
/** Longest back-off after a failed timer-driven refresh. */
const MAX_RETRY_MS = 30_000;

export class LatchkeyClient extends EventTarget {
  readonly #base: URL;
  readonly #delivery: TokenDelivery;
  readonly #storage: RefreshTokenStorage;
  readonly #clientId: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #lock: RefreshLock | null;
  readonly #tabs: TabNews | null;
  readonly #autoRefresh: boolean;
  readonly #leadMin: number;
  readonly #leadMax: number;
  readonly #minLeadMs: number;
  readonly #tokenOrigins: ReadonlySet<string>;
  readonly #timeoutMs: number;

  #access: Access | null = null;
  #inflight: Promise<string> | null = null;
  #timer: Timer | undefined;
  #failures = 0;
  #closed = false;

  constructor(options: LatchkeyClientOptions) {
    super();
    this.#base = new URL(options.baseUrl);
    this.#delivery = options.tokenDelivery ?? "body";
    if (this.#delivery !== "body" && this.#delivery !== "cookie") {
      throw new TypeError(`tokenDelivery must be "body" or "cookie"`);
    }
    this.#storage = options.storage ?? new MemoryStorage();
    this.#clientId = options.clientId;
    const globalFetch = (globalThis as { fetch?: typeof fetch }).fetch;
    const chosen = options.fetch ?? globalFetch;
    if (chosen === undefined) throw new TypeError("no fetch: pass options.fetch");
    // Unbound `window.fetch` throws "Illegal invocation" in browsers.
    this.#fetch = options.fetch ?? ((input, init) => chosen(input, init));
    const shareable = this.#delivery === "cookie" || options.storage !== undefined;
    const channelName = options.channelName === undefined ? (shareable ? "latchkey" : null) : options.channelName;
    this.#tabs =
      channelName === null ? null : TabNews.open(channelName, (message) => this.#onTabMessage(message));
    this.#lock = options.lock === undefined ? (this.#tabs === null ? null : webLocks()) : options.lock;
    this.#autoRefresh = options.autoRefresh ?? true;
    const lead = options.refreshLead ?? { min: 0.1, max: 0.2 };
    if (!(lead.min >= 0 && lead.max >= lead.min && lead.max < 1)) {
      throw new RangeError("refreshLead needs 0 <= min <= max < 1");
    }
    this.#leadMin = lead.min;
    this.#leadMax = lead.max;
    this.#minLeadMs = options.minRefreshLeadMs ?? 1000;
    this.#tokenOrigins = new Set(options.tokenOrigins ?? [this.#base.origin]);
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  // Typed listeners for the client's own events; any other name as usual.
  override addEventListener<K extends keyof LatchkeyClientEventMap>(
    type: K,
    listener: ((event: LatchkeyClientEventMap[K]) => void) | { handleEvent(event: LatchkeyClientEventMap[K]): void } | null,
    options?: AddEventListenerOptions | boolean,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: AddEventListenerOptions | boolean,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: AddEventListenerOptions | boolean,
  ): void {
    super.addEventListener(type, listener, options);
  }

  override removeEventListener<K extends keyof LatchkeyClientEventMap>(
    type: K,
    listener: ((event: LatchkeyClientEventMap[K]) => void) | { handleEvent(event: LatchkeyClientEventMap[K]): void } | null,
    options?: EventListenerOptions | boolean,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: EventListenerOptions | boolean,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: EventListenerOptions | boolean,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  /** The access token in hand (possibly expired), or `null` when signed out. */
  get accessToken(): string | null {
    return this.#access?.token ?? null;
  }

  /** Local clock (ms) when the access token in hand expires, or `null`. */
  get expiresAt(): number | null {
    return this.#access?.expiresAt ?? null;
  }

  /** Whether the client holds an access token. */
  get signedIn(): boolean {
    return this.#access !== null;
  }

  // --- accounts --------------------------------------------------------------

  /** `POST /v1/sign-up`; does not sign in. */
  async signUp(username: string, password: string): Promise<Account> {
    const response = await this.#send("/v1/sign-up", { method: "POST", body: { username, password } });
    return (await this.#json(response, 201)) as Account;
  }

  /** `POST /v1/sign-in`: a new session; the tokens are kept, the grant returned. */
  async signIn(request: SignInRequest): Promise<AccessGrant> {
    const body: Record<string, unknown> = { username: request.username, password: request.password };
    if (this.#clientId !== undefined) body.client_id = this.#clientId;
    if (request.scope !== undefined) body.scope = request.scope;
    if (request.audience !== undefined) body.audience = request.audience;
    if (this.#delivery === "cookie") body.token_delivery = "cookie";
    const response = await this.#send("/v1/sign-in", { method: "POST", body, credentials: this.#credentials() });
    const tokens = parseTokens((await this.#json(response, 200)) as unknown, response.status);
    return this.#accept(tokens, "sign-in");
  }

  /**
   * Picks up an existing session after a page load or process start: one
   * refresh with the stored refresh token (body mode) or the cookie. `true`
   * when a session is live; `false` when there is none. Throws on network
   * errors and overload, which say nothing about the session.
   */
  async restore(): Promise<boolean> {
    if (this.#access !== null && Date.now() < this.#access.expiresAt) return true;
    if (this.#delivery === "body" && (await this.#storage.get()) === null) return false;
    try {
      await this.refresh();
      return true;
    } catch (error) {
      if (error instanceof LatchkeyError && (sessionOver(error) || error.code === "not_signed_in")) return false;
      throw error;
    }
  }

  /**
   * `POST /v1/sign-out`. Scope `current` (default) or `all` also forgets the
   * tokens here and in the other tabs, whatever the server answered: a
   * sign-out never leaves the app signed in.
   */
  async signOut(scope: SignOutScope = "current"): Promise<void> {
    const endsHere = scope === "current" || scope === "all";
    try {
      if (this.#access === null) {
        // No access token yet (never restored).
        if (this.#delivery === "body" && scope === "current") {
          // Revoking the stored refresh token ends this session just as well, without a refresh.
          const refreshToken = await this.#storage.get();
          if (refreshToken !== null) {
            const response = await this.#send("/v1/tokens/revoke", {
              method: "POST",
              body: { refresh_token: refreshToken },
            });
            await this.#json(response, 204);
          }
          return;
        }
        // Otherwise pick the session up (stored token or cookie) to sign out from it.
        if (!(await this.restore())) return;
      }
      // Cookie mode: with credentials, so that the server can clear the cookie.
      const response = await this.#authed("/v1/sign-out", "POST", { scope }, this.#credentials());
      await this.#json(response, 204);
    } finally {
      if (endsHere) await this.#end("signed-out", false);
    }
  }

  /** `GET /v1/me`. */
  async me(): Promise<Me> {
    return (await this.#json(await this.#authed("/v1/me", "GET"), 200)) as Me;
  }

  /** `GET /v1/sessions`: the user's live sessions, oldest first. */
  async sessions(): Promise<SessionInfo[]> {
    const body = (await this.#json(await this.#authed("/v1/sessions", "GET"), 200)) as { sessions: SessionInfo[] };
    return body.sessions;
  }

  /** `DELETE /v1/sessions/{id}`: ends one of the user's sessions (404 `not_found` for any other id). */
  async endSession(id: string): Promise<void> {
    await this.#json(await this.#authed(`/v1/sessions/${encodeURIComponent(id)}`, "DELETE"), 204);
  }

  /** `POST /v1/password`: every other session of the user ends; this one stays. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const response = await this.#authed("/v1/password", "POST", {
      current_password: currentPassword,
      new_password: newPassword,
    });
    await this.#json(response, 204);
  }

  // --- tokens ----------------------------------------------------------------

  /**
   * A usable access token: the one in hand while it has not expired, else a
   * fresh one (refreshing); `null` when signed out.
   */
  async getAccessToken(): Promise<string | null> {
    const access = this.#access;
    if (access !== null && Date.now() < access.expiresAt) return access.token;
    if (access === null) return null;
    try {
      return await this.refresh();
    } catch (error) {
      if (error instanceof LatchkeyError && sessionOver(error)) return null;
      throw error;
    }
  }

  /**
   * `POST /v1/tokens/refresh`, single flight: callers while one is running
   * share it; across tabs, the lock lets one tab refresh and the others
   * take the token it broadcasts. Rejects with `LatchkeyError`; a refused
   * refresh token (401) ends the session (`sessionended`).
   */
  refresh(): Promise<string> {
    if (this.#inflight !== null) return this.#inflight;
    const seen = this.#access?.token ?? null;
    const run = () => this.#refreshHoldingLock(seen);
    const flight = (this.#lock === null ? run() : this.#lock.request(REFRESH_LOCK_NAME, run)).finally(() => {
      if (this.#inflight === flight) this.#inflight = null;
    });
    this.#inflight = flight;
    return flight;
  }

  /**
   * `fetch` with `Authorization: Bearer` added for the origins in
   * `tokenOrigins` (others go out untouched). On a 401 it refreshes once and
   * sends the request once more, when the body can be sent twice (none, a
   * string, `URLSearchParams`, `Blob`, `FormData`, a buffer; not a stream or a
   * `Request` with a body). Resending is safe because the server checks the
   * token before it acts on a request. Anything else: the 401 is returned.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    if (!this.#tokenOrigins.has(originOf(input, this.#base))) return this.#fetch(input, init);
    const token = await this.getAccessToken();
    if (token === null) return this.#fetch(input, init);
    const first = await this.#fetch(input, withBearer(input, init, token));
    if (first.status !== 401 || !asksForNewToken(first) || !replayable(input, init)) return first;
    let next: string;
    const current = this.#access?.token;
    if (current !== undefined && current !== token) {
      next = current; // someone refreshed while this request was out
    } else {
      try {
        next = await this.refresh();
      } catch {
        return first;
      }
    }
    await first.body?.cancel().catch(() => undefined);
    return this.#fetch(input, withBearer(input, init, next));
  }

  /** Stops the refresh timer and leaves the tab channel; the session stays. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
    this.#tabs?.close();
  }

  // --- internals -------------------------------------------------------------

  async #refreshHoldingLock(seen: string | null): Promise<string> {
    // Another tab may be refreshing, or have refreshed while we waited for the lock.
    await this.#tabs?.othersDone(Math.min(this.#timeoutMs, 10_000));
    const current = this.#access;
    if (current !== null && current.token !== seen && !this.#due(current)) return current.token;

    const body: Record<string, unknown> = {};
    if (this.#clientId !== undefined) body.client_id = this.#clientId;
    if (this.#delivery === "cookie") {
      body.token_delivery = "cookie";
    } else {
      const refreshToken = await this.#storage.get();
      if (refreshToken === null) throw new LatchkeyError(0, "not_signed_in", "no refresh token: sign in first");
      body.refresh_token = refreshToken;
    }
    this.#tabs?.post({ type: "refreshing" });
    let response: Response;
    try {
      response = await this.#send("/v1/tokens/refresh", { method: "POST", body, credentials: this.#credentials() });
    } catch (error) {
      this.#tabs?.post({ type: "refresh-failed" });
      throw error;
    }
    if (!response.ok) {
      let error = await LatchkeyError.fromResponse(response);
      if (this.#delivery === "cookie" && error.status === 400 && error.code === "invalid_request") {
        // The server saw no refresh cookie: there is no session in this browser.
        error = new LatchkeyError(400, "not_signed_in", error.description);
      }
      if (sessionOver(error) || (this.#access !== null && error.code === "not_signed_in")) {
        await this.#end("refresh-refused", false);
      } else {
        this.#tabs?.post({ type: "refresh-failed" });
      }
      throw error;
    }
    let tokens: TokenResponse;
    try {
      tokens = parseTokens(await response.json(), response.status);
    } catch (error) {
      this.#tabs?.post({ type: "refresh-failed" });
      throw error instanceof LatchkeyError ? error : new LatchkeyError(response.status, "invalid_response", "not JSON");
    }
    return (await this.#accept(tokens, "refresh")).accessToken;
  }

  /** Keeps a token response: refresh token to storage, access token in memory, timer, tabs, event. */
  async #accept(tokens: TokenResponse, source: TokenSource): Promise<AccessGrant> {
    if (this.#delivery === "body") {
      if (tokens.refresh_token === undefined) {
        throw new LatchkeyError(200, "invalid_response", "the token response has no refresh_token");
      }
      await this.#storage.set(tokens.refresh_token);
    }
    // The local clock from `expires_in`: a browser's clock may be off from the server's.
    const lifetimeMs = tokens.expires_in * 1000;
    const access: Access = {
      token: tokens.access_token,
      expiresAt: Date.now() + lifetimeMs,
      lifetimeMs,
      scope: tokens.scope,
    };
    this.#access = access;
    this.#failures = 0;
    this.#tabs?.post({ type: "token", accessToken: access.token, expiresAt: access.expiresAt, lifetimeMs });
    this.#schedule();
    this.dispatchEvent(new TokenRefreshedEvent(source, access.expiresAt));
    return { accessToken: access.token, expiresAt: access.expiresAt, scope: access.scope };
  }

  #onTabMessage(message: TabMessage): void {
    if (this.#closed) return;
    if (message.type === "token") {
      if (this.#access !== null && this.#access.expiresAt >= message.expiresAt) return;
      this.#access = {
        token: message.accessToken,
        expiresAt: message.expiresAt,
        lifetimeMs: message.lifetimeMs,
        scope: this.#access?.scope,
      };
      this.#failures = 0;
      this.#schedule();
      this.dispatchEvent(new TokenRefreshedEvent("other-tab", message.expiresAt));
    } else if (message.type === "ended") {
      void this.#end(message.reason, true);
    }
  }

  /** Forgets the session; tells the app once, and the other tabs unless they told us. */
  async #end(reason: SessionEndReason, fromOtherTab: boolean): Promise<void> {
    const had = this.#access !== null;
    this.#access = null;
    this.#clearTimer();
    // The other tab already cleared the shared storage; clearing again could
    // drop a newer sign-in's token.
    if (!fromOtherTab) {
      if (this.#delivery === "body") await this.#storage.set(null);
      this.#tabs?.post({ type: "ended", reason });
    }
    if (had) this.dispatchEvent(new SessionEndedEvent(reason, fromOtherTab));
  }

  /** Whether `access` is within its refresh lead (so a broadcast token that old is not worth taking). */
  #due(access: Access): boolean {
    return Date.now() >= access.expiresAt - this.#minLeadMs;
  }

  /** Arms the proactive refresh: `lifetime × U[min, max]` (at least `minRefreshLeadMs`) before expiry. */
  #schedule(): void {
    this.#clearTimer();
    const access = this.#access;
    if (!this.#autoRefresh || this.#closed || access === null) return;
    const fraction = this.#leadMin + Math.random() * (this.#leadMax - this.#leadMin);
    const lead = Math.max(access.lifetimeMs * fraction, this.#minLeadMs);
    // Never sooner than half the lifetime: a token shorter than the lead would refresh in a loop.
    const at = Math.max(access.expiresAt - lead, access.expiresAt - access.lifetimeMs / 2);
    this.#arm(Math.max(at - Date.now(), MIN_TIMER_MS));
  }

  #arm(delayMs: number): void {
    this.#clearTimer();
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.refresh().catch((error: unknown) => {
        if (this.#access === null || this.#closed) return; // ended: already told
        // Overload, network: try again with back-off, sooner while the token still works.
        this.#failures += 1;
        const backoff = Math.min(MIN_TIMER_MS * 2 ** (this.#failures + 3), MAX_RETRY_MS);
        const retryAfter = error instanceof LatchkeyError && error.retryAfter !== undefined ? error.retryAfter * 1000 : 0;
        this.#arm(Math.max(backoff, retryAfter));
      });
    }, delayMs);
    // Node: a pending refresh must not keep a finished process alive.
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #credentials(): RequestCredentials | undefined {
    return this.#delivery === "cookie" ? "include" : undefined;
  }

  #url(path: string): URL {
    return new URL(path.replace(/^\//, ""), this.#base.href.endsWith("/") ? this.#base : `${this.#base.href}/`);
  }

  /** A JSON request to the server with a time limit; network failures become `LatchkeyError`. */
  async #send(
    path: string,
    request: { method: string; body?: unknown; credentials?: RequestCredentials | undefined },
  ): Promise<Response> {
    const init: RequestInit = {
      method: request.method,
      headers: { "content-type": "application/json", accept: "application/json" },
      signal: AbortSignal.timeout(this.#timeoutMs),
    };
    if (request.body !== undefined) init.body = JSON.stringify(request.body);
    if (request.credentials !== undefined) init.credentials = request.credentials;
    try {
      return await this.#fetch(this.#url(path), init);
    } catch (error) {
      throw networkError(error);
    }
  }

  /** A request with the access token through the `fetch` wrapper (so it refreshes on a 401). */
  async #authed(path: string, method: string, body?: unknown, credentials?: RequestCredentials): Promise<Response> {
    const init: RequestInit = {
      method,
      headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      signal: AbortSignal.timeout(this.#timeoutMs),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (credentials !== undefined) init.credentials = credentials;
    try {
      return await this.fetch(this.#url(path), init);
    } catch (error) {
      throw error instanceof LatchkeyError ? error : networkError(error);
    }
  }

  /** The body of an answer with status `expected` (`undefined` for 204), or the error it carries. */
  async #json(response: Response, expected: number): Promise<unknown> {
    if (response.status !== expected) {
      if (response.ok) {
        await response.body?.cancel().catch(() => undefined);
        throw new LatchkeyError(response.status, "invalid_response", `expected HTTP ${expected}`);
      }
      throw await LatchkeyError.fromResponse(response);
    }
    if (expected === 204) return undefined;
    try {
      return await response.json();
    } catch (error) {
      throw new LatchkeyError(response.status, "invalid_response", "the answer is not JSON", { cause: error });
    }
  }
}

/** Whether a refresh error means the session is over (as opposed to overload or a network failure). */
function sessionOver(error: LatchkeyError): boolean {
  return error.status === 401 || error.code === "invalid_grant";
}

function networkError(error: unknown): LatchkeyError {
  if (error instanceof LatchkeyError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new LatchkeyError(0, "network_error", message, { cause: error });
}

/** Checks a token response's shape, so a proxy's surprise never becomes a stored "token". */
function parseTokens(body: unknown, status: number): TokenResponse {
  const bad = (what: string) => new LatchkeyError(status, "invalid_response", `token response: ${what}`);
  if (body === null || typeof body !== "object") throw bad("not an object");
  const b = body as Record<string, unknown>;
  if (typeof b.access_token !== "string" || b.access_token === "") throw bad("no access_token");
  if (typeof b.expires_in !== "number" || !(b.expires_in > 0)) throw bad("no expires_in");
  if (b.refresh_token !== undefined && typeof b.refresh_token !== "string") throw bad("refresh_token not a string");
  const tokens: TokenResponse = {
    access_token: b.access_token,
    token_type: typeof b.token_type === "string" ? b.token_type : "Bearer",
    expires_in: b.expires_in,
    expires_at: typeof b.expires_at === "number" ? b.expires_at : Math.floor(Date.now() / 1000) + b.expires_in,
  };
  if (typeof b.refresh_token === "string") tokens.refresh_token = b.refresh_token;
  if (typeof b.scope === "string") tokens.scope = b.scope;
  return tokens;
}

/** The origin a request goes to; relative URLs resolve against the page (browsers) or `base`. */
function originOf(input: RequestInfo | URL, base: URL): string {
  const raw = input instanceof URL ? input.href : typeof input === "string" ? input : input.url;
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(raw, page ?? base).origin;
  } catch {
    return "null";
  }
}

function withBearer(input: RequestInfo | URL, init: RequestInit | undefined, token: string): RequestInit {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set("authorization", `Bearer ${token}`);
  return { ...init, headers };
}

/**
 * Whether a 401 is about the access token: RFC 6750 `error="invalid_token"`,
 * a bare `Bearer` challenge, or no challenge at all. A 401 with another
 * error (`invalid_grant` from a sign-in form, `invalid_client`) or another
 * scheme is not cured by a new access token.
 */
function asksForNewToken(response: Response): boolean {
  const challenge = response.headers.get("www-authenticate");
  if (challenge === null) return true;
  if (/error\s*=\s*"?invalid_token"?/i.test(challenge)) return true;
  return /^\s*bearer\b/i.test(challenge) && !/error\s*=/i.test(challenge);
}

/** Whether the request can be sent a second time unchanged. */
function replayable(input: RequestInfo | URL, init: RequestInit | undefined): boolean {
  if (input instanceof Request && input.body !== null && init?.body === undefined) return false;
  const body = init?.body;
  if (body === undefined || body === null) return true;
  return !(typeof ReadableStream !== "undefined" && body instanceof ReadableStream);
}
