/**
 * `@latchkey/client`: the public surface of the package.
 */

export { LatchkeyClient, REFRESH_LOCK_NAME } from "./client.js";
export { LatchkeyError } from "./errors.js";
export {
  type LatchkeyClientEventMap,
  type SessionEndReason,
  SessionEndedEvent,
  type TokenSource,
  TokenRefreshedEvent,
} from "./events.js";
export { MutexLock, type RefreshLock, webLocks } from "./lock.js";
export { MemoryStorage, type RefreshTokenStorage } from "./storage.js";
export type {
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
