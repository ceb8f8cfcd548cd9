/**
 * The events a `LatchkeyClient` dispatches: `tokenrefreshed` when a new
 * access token is in hand, `sessionended` when the session is over (signed
 * out here or in another tab, or refused by the server).
 */

/** Why the session ended. */
export type SessionEndReason =
  /** `signOut` with scope `current` or `all` (here or in another tab). */
  | "signed-out"
  /** The server refused the refresh token: ended elsewhere, expired, revoked or reused. */
  | "refresh-refused";

/** Dispatched once per session, when it ends. */
export class SessionEndedEvent extends Event {
  readonly reason: SessionEndReason;
  /** `true` when another tab found out first and told this one. */
  readonly fromOtherTab: boolean;

  constructor(reason: SessionEndReason, fromOtherTab: boolean) {
    super("sessionended");
    this.reason = reason;
    this.fromOtherTab = fromOtherTab;
  }
}

/** Where a new access token came from. */
export type TokenSource = "sign-in" | "refresh" | "other-tab";

/** Dispatched whenever the client holds a new access token. */
export class TokenRefreshedEvent extends Event {
  readonly source: TokenSource;
  /** Local clock, milliseconds since the epoch. */
  readonly expiresAt: number;

  constructor(source: TokenSource, expiresAt: number) {
    super("tokenrefreshed");
    this.source = source;
    this.expiresAt = expiresAt;
  }
}

/** Event name → event type, for typed listeners. */
export interface LatchkeyClientEventMap {
  sessionended: SessionEndedEvent;
  tokenrefreshed: TokenRefreshedEvent;
}
