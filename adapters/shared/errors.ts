/**
 * Small helpers the adapters share for reporting driver failures. Secrets are removed from such texts
 * with `redactSecrets` (`domain/redaction.ts`), the one redaction rule for adapters and apps.
 *
 * @module
 */

/**
 * The text of a driver failure, for an error message or a log line: the error's own message; for an
 * `AggregateError` (a connect that tried several addresses) its errors' messages joined with `; `; for
 * an error without a message its `code`, else its name. Drivers that throw plain objects with a
 * `message` (Databricks' `StatusError`) are read the same way.
 *
 * @param e whatever was thrown.
 * @returns a one-line description; never empty for an `Error`.
 */
export function messageOf(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) {
    return e.errors.map(messageOf).join("; ");
  }
  if (typeof e !== "object" || e === null) return String(e);
  const error = e as { message?: unknown; code?: unknown; name?: unknown };
  if (typeof error.message === "string" && error.message !== "") return error.message;
  if (typeof error.code === "string" || typeof error.code === "number") return String(error.code);
  if (typeof error.name === "string" && error.name !== "") return error.name;
  return String(e);
}

/**
 * The messages of an error and its causes, outermost first, e.g. `fetch failed: … invalid peer
 * certificate` (Deno's fetch says only "fetch failed" and puts the connection or TLS error in `cause`).
 * Empty and repeated messages are left out; at most `depth` levels are read.
 *
 * @param error whatever was thrown.
 * @param depth how many levels of `cause` to read, the error itself included.
 * @returns the messages joined with `: `; the error's name when none has a message.
 */
export function causeChain(error: unknown, depth = 4): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let level = 0; level < depth && current !== undefined && current !== null; level++) {
    const message = current instanceof Error ? current.message : String(current);
    if (message !== "" && !messages.includes(message)) messages.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  if (messages.length === 0) return error instanceof Error ? error.name : String(error);
  return messages.join(": ");
}

/** Whether `e` is a zod validation error (bad input or a bad stored row, not a storage failure). */
export function isZodError(e: unknown): boolean {
  return e instanceof Error && e.name === "ZodError";
}
