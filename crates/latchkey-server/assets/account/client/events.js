/**
 * The events a `LatchkeyClient` dispatches: `tokenrefreshed` when a new
 * access token is in hand, `sessionended` when the session is over (signed
 * out here or in another tab, or refused by the server).
 */
/** Dispatched once per session, when it ends. */
export class SessionEndedEvent extends Event {
    reason;
    /** `true` when another tab found out first and told this one. */
    fromOtherTab;
    constructor(reason, fromOtherTab) {
        super("sessionended");
        this.reason = reason;
        this.fromOtherTab = fromOtherTab;
    }
}
/** Dispatched whenever the client holds a new access token. */
export class TokenRefreshedEvent extends Event {
    source;
    /** Local clock, milliseconds since the epoch. */
    expiresAt;
    constructor(source, expiresAt) {
        super("tokenrefreshed");
        this.source = source;
        this.expiresAt = expiresAt;
    }
}
