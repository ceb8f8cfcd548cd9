/**
 * `@latchkey/client`: the public surface of the package.
 */
export { LatchkeyClient, REFRESH_LOCK_NAME } from "./client.js";
export { LatchkeyError } from "./errors.js";
export { SessionEndedEvent, TokenRefreshedEvent, } from "./events.js";
export { MutexLock, webLocks } from "./lock.js";
export { MemoryStorage } from "./storage.js";
