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
