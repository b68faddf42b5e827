/**
 * Keeping secret values out of error messages and log lines: one rule for every adapter and app. A
 * driver's error can quote what it was sent (`role "…" does not exist`, `Access denied for user '…'`),
 * so every text that may reach a reply or a log is passed through {@link redactSecrets} with every secret
 * value read for the request.
 *
 * @module
 */

/** What a secret value is replaced with. */
export const REDACTED = "***";

/**
 * Removes every secret value from `text`: the value as is, URL-encoded (a connection string), as in a
 * JSON string (escaped quotes and backslashes), and with its quotes doubled (an SQL literal or
 * identifier). Longer values go first, so a secret that contains another is removed whole.
 *
 * @param secrets the values read for the request; empty values are ignored.
 * @returns `text` with each occurrence replaced by {@link REDACTED}.
 */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret === "") continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(secret.replaceAll("'", "''"));
    forms.add(secret.replaceAll('"', '""'));
  }
  let redacted = text;
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    redacted = redacted.replaceAll(form, REDACTED);
  }
  return redacted;
}

/**
 * Removes every secret value from an error before it travels further: its message, its stack, the
 * `logDetail` of a project error, and the same on each error of its `cause` chain. The error keeps its
 * class, code and other fields, so the HTTP layer still maps it to its status.
 *
 * @param secrets the values read for the request; empty values are ignored.
 * @returns the same error, redacted in place (any other thrown value is returned as is, unless it is a
 *   string, which is redacted).
 */
export function redactError<T>(error: T, secrets: readonly string[]): T {
  if (secrets.every((s) => s === "")) return error;
  if (typeof error === "string") return redactSecrets(error, secrets) as T;
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    for (const field of ["message", "stack", "logDetail"] as const) {
      const value = (current as unknown as Record<string, unknown>)[field];
      if (typeof value !== "string") continue;
      const redacted = redactSecrets(value, secrets);
      if (redacted === value) continue;
      try {
        Object.defineProperty(current, field, {
          value: redacted,
          writable: true,
          configurable: true,
          enumerable: field === "logDetail",
        });
      } catch {
        // A frozen or sealed error cannot be changed; none of this project's errors is.
      }
    }
    current = current.cause;
  }
  return error;
}
