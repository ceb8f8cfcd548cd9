/**
 * The shapes of Latchkey's `/v1` answers this client reads (see the
 * server's `docs/API.md`), and the client's own option and result types.
 */
export {};
