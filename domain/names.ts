/**
 * The naming rules for every name a request carries. Each rule lives here once; the zod schemas in
 * `contract.ts` and the adapters that touch files or SQL both use these functions.
 *
 * @module
 */

/**
 * A schema, table, column, database or catalog name: letters, digits, `_`, `$` and `-`, 1 to 128 characters,
 * not starting with `$` or `-`. Such a name is safe as a quoted SQL identifier and as one path segment.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_$-]{0,127}$/;

/** A filestore destination name: it becomes part of `TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`. */
export const DESTINATION_NAME_PATTERN = /^[A-Za-z0-9_]{1,64}$/;

/**
 * A secret name: letters, digits, `_`, `-` and `.`, 1 to 127 characters, starting with a letter, digit or
 * `_`, and never containing `..`. It names one file directly inside the secrets directory.
 */
export const SECRET_NAME_PATTERN = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$/;

/** `YYYYMMDD_HHMMSS`, as `cr8tor create` writes it. */
export const PROJECT_START_TIME_PATTERN = /^[0-9]{8}_[0-9]{6}$/;

/** A host name or an IP literal (IPv6 in brackets); no scheme, port, path or credentials. */
export const HOST_PATTERN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])$/;

/** A Databricks SQL warehouse or cluster path such as `/sql/1.0/warehouses/abc123`. */
export const HTTP_PATH_PATTERN = /^\/[A-Za-z0-9_./-]{1,255}$/;

const PROJECT_NAME_MAX = 64;

/**
 * Explains why a project name is unsafe, or returns `undefined` when it is fine. A project name becomes a
 * directory name, so it must be 1 to 64 characters with no path separator, no `..`, no whitespace and no
 * control character.
 */
export function projectNameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (name.length > PROJECT_NAME_MAX) return `must be at most ${PROJECT_NAME_MAX} characters`;
  if (/[/\\]/.test(name)) return "must not contain a path separator";
  if (name === "." || name.includes("..")) return "must not be '.' or contain '..'";
  if (/[\s\p{Cc}\p{Cf}]/u.test(name)) return "must not contain whitespace or control characters";
  return undefined;
}

/** Returns true when `name` may be used as a secret name (see {@link SECRET_NAME_PATTERN}). */
export function isSafeSecretName(name: string): boolean {
  return SECRET_NAME_PATTERN.test(name);
}

/** Returns true when `name` may be used as a schema, table or column name (see {@link IDENTIFIER_PATTERN}). */
export function isSafeIdentifier(name: string): boolean {
  return IDENTIFIER_PATTERN.test(name);
}
