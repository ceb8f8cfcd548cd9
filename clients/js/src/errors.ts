/**
 * The one error type of the client: a refused request, carrying the server's
 * `{"error", "error_description"}` answer and the HTTP status.
 */

/** A Latchkey answer outside 2xx, or a network failure (`status` 0). */
export class LatchkeyError extends Error {
  /** HTTP status; 0 when no answer arrived (network error, abort). */
  readonly status: number;
  /** The server's `error` code (`invalid_grant`, `invalid_token`, …); `network_error` or `invalid_response` when the server gave none. */
  readonly code: string;
  /** The server's `error_description`, meant for people, not for branching. */
  readonly description: string;
  /** Seconds from `Retry-After` (429, 503), when present. */
  readonly retryAfter: number | undefined;

  constructor(
    status: number,
    code: string,
    description: string,
    options?: { retryAfter?: number | undefined; cause?: unknown },
  ) {
    super(
      `${status === 0 ? "no answer" : `HTTP ${status}`}: ${code}${description ? `: ${description}` : ""}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "LatchkeyError";
    this.status = status;
    this.code = code;
    this.description = description;
    this.retryAfter = options?.retryAfter;
  }

  /** The error a non-2xx `response` stands for (reads its body). */
  static async fromResponse(response: Response): Promise<LatchkeyError> {
    let code = "invalid_response";
    let description = "";
    try {
      const body: unknown = await response.json();
      if (body !== null && typeof body === "object") {
        const fields = body as Record<string, unknown>;
        if (typeof fields.error === "string") code = fields.error;
        if (typeof fields.error_description === "string") description = fields.error_description;
      }
    } catch {
      // Not JSON (a proxy's error page, a 408 without a body): the status says enough.
    }
    const retryHeader = response.headers.get("retry-after");
    const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
    return new LatchkeyError(response.status, code, description, { retryAfter });
  }
}
