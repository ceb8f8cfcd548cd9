/**
 * The tab-to-tab protocol over a BroadcastChannel: a tab says when it
 * starts refreshing, what access token it got (or that it failed), and when
 * the session ended. `TabNews` keeps track of which other tabs are in the
 * middle of a refresh, so that a tab that wants to refresh can wait for
 * theirs instead of spending the refresh token again.
 */

import type { SessionEndReason } from "./events.js";

/** One message on the channel; `from` is the sender's random id. */
export type TabMessage =
  | { type: "refreshing"; from: string }
  | { type: "refresh-failed"; from: string }
  | { type: "token"; from: string; accessToken: string; expiresAt: number; lifetimeMs: number }
  | { type: "ended"; from: string; reason: SessionEndReason };

/** Minimal shape of `BroadcastChannel`, the global of browsers and Node ≥ 18. */
interface Channel {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

/** What a message that passes `parse` looks like; anything else is ignored. */
function parse(data: unknown): TabMessage | null {
  if (data === null || typeof data !== "object") return null;
  const m = data as Record<string, unknown>;
  if (typeof m.from !== "string") return null;
  switch (m.type) {
    case "refreshing":
    case "refresh-failed":
      return { type: m.type, from: m.from };
    case "token":
      if (
        typeof m.accessToken === "string" &&
        typeof m.expiresAt === "number" &&
        typeof m.lifetimeMs === "number"
      ) {
        return {
          type: "token",
          from: m.from,
          accessToken: m.accessToken,
          expiresAt: m.expiresAt,
          lifetimeMs: m.lifetimeMs,
        };
      }
      return null;
    case "ended":
      if (m.reason === "signed-out" || m.reason === "refresh-refused") {
        return { type: "ended", from: m.from, reason: m.reason };
      }
      return null;
    default:
      return null;
  }
}

/** A tab's end of the channel. */
export class TabNews {
  readonly id: string;
  readonly #channel: Channel;
  readonly #refreshing = new Set<string>();
  #waiters: Array<() => void> = [];

  /** `null` when the runtime has no BroadcastChannel. */
  static open(name: string, onMessage: (message: TabMessage) => void): TabNews | null {
    const Ctor = (globalThis as { BroadcastChannel?: new (name: string) => Channel }).BroadcastChannel;
    if (typeof Ctor !== "function") return null;
    return new TabNews(new Ctor(name), onMessage);
  }

  private constructor(channel: Channel, onMessage: (message: TabMessage) => void) {
    this.id = randomId();
    this.#channel = channel;
    channel.onmessage = (event: MessageEvent) => {
      const message = parse(event.data);
      if (message === null || message.from === this.id) return;
      if (message.type === "refreshing") {
        this.#refreshing.add(message.from);
      } else {
        this.#refreshing.delete(message.from);
        this.#wake();
      }
      onMessage(message);
    };
    // Node: an open channel must not keep the process alive on its own.
    (channel as { unref?: () => void }).unref?.();
  }

  /** Sends `message` (without `from`) to every other tab. */
  post(message: DistributiveOmit<TabMessage, "from">): void {
    try {
      this.#channel.postMessage({ ...message, from: this.id });
    } catch {
      // A closed channel (the client was closed): nobody to tell.
    }
  }

  /**
   * Resolves once no other tab is refreshing (they all sent their token, a
   * failure or the end), or after `limitMs`: a tab closed mid-refresh never
   * says so, and must not block this one for long.
   */
  async othersDone(limitMs: number): Promise<void> {
    if (this.#refreshing.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.#refreshing.size === 0) resolve();
        else this.#waiters.push(check);
      };
      timer = setTimeout(() => {
        this.#refreshing.clear();
        resolve();
      }, limitMs);
      check();
    });
    clearTimeout(timer);
  }

  close(): void {
    this.#channel.onmessage = null;
    this.#channel.close();
    this.#refreshing.clear();
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
