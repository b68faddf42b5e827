/**
 * The naming rules for every name a request carries. Each rule lives here once; the zod schemas in
 * `contract.ts` and the adapters that touch files or SQL both use these functions.
 *
 * @module
 */
import { createHash } from "node:crypto";

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
 * Explains why a name cannot stand for itself, or returns `undefined` when it can: it must be well-formed
 * UTF-16 (no unpaired surrogate, which UTF-8 cannot encode and would turn into U+FFFD), must not hold
 * U+FFFD (what undecodable bytes become, so two different byte strings could arrive as one name), and must
 * be in Unicode NFC (otherwise `Café` composed and `Café` decomposed would be two names that look, and on
 * some filesystems are, the same). Every name a request carries obeys this rule: the project name and the
 * dataset name check it here, and the other names' patterns are ASCII, which satisfies it by construction.
 */
export function unicodeNameProblem(name: string): string | undefined {
  if (!name.isWellFormed()) return "must not contain an unpaired UTF-16 surrogate";
  if (name.includes("\ufffd")) return "must not contain U+FFFD, the replacement character";
  if (name.normalize("NFC") !== name) return "must be in Unicode normalization form NFC";
  return undefined;
}

/**
 * The characters refused in a project name besides `/` and `\`: those Windows, SMB and Azure Files refuse
 * in a file name.
 */
const SHARE_UNSAFE_CHARACTERS = /[<>:"|?*]/;

/**
 * Characters that are not printable, or print as nothing: controls, format characters (bidirectional
 * overrides, zero-width joiners), surrogates, private-use and unassigned code points, line and paragraph
 * separators, every space but U+0020, and the default-ignorable code points (variation selectors, Hangul
 * fillers) that render as nothing.
 */
const NON_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]|(?! )\p{Zs}/u;

/** Device names Windows reserves in every folder, alone or before an extension (`CON`, `nul.txt`). */
const WINDOWS_DEVICE_NAME = /^(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(?:\..*)?$/i;

/**
 * Explains why a project name is unsafe, or returns `undefined` when it is fine. A project name is used as
 * it is for its folder (`staging/{project_name}/...`), so it must be a folder name that cannot leave its
 * parent, cannot alias another name, and works on a Linux volume as well as on an SMB or Azure Files share:
 *
 * - 1 to 64 UTF-16 code units (so at most 192 UTF-8 bytes, within every filesystem's 255);
 * - the rules of {@link unicodeNameProblem}: well-formed, no U+FFFD, NFC;
 * - printable characters only (letters, marks, digits, punctuation, symbols) and the space U+0020;
 * - none of `/ \ < > : " | ? *`;
 * - no leading or trailing space, no leading `-` or `.` (so never `.` or `..`), no trailing `.` (Windows
 *   drops trailing dots and spaces, so `a.` would be `a` there), not a Windows device name (`CON`, `NUL`,
 *   `COM1`, ...);
 * - the same rules hold for its compatibility form (NFKC), so a look-alike such as the fullwidth solidus
 *   U+FF0F, which some systems turn into `/`, is refused too.
 *
 * `..` inside a name (`a..b`) is allowed: without a separator it can never name a parent folder.
 */
export function projectNameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (name.length > PROJECT_NAME_MAX) return `must be at most ${PROJECT_NAME_MAX} characters`;
  const unicode = unicodeNameProblem(name);
  if (unicode !== undefined) return unicode;
  const problem = folderNameProblem(name);
  if (problem !== undefined) return problem;
  const compatible = name.normalize("NFKC");
  const lookAlike = compatible === name ? undefined : folderNameProblem(compatible);
  if (lookAlike === undefined) return undefined;
  return `must not contain a look-alike of a refused character (its NFKC form ${
    JSON.stringify(compatible)
  } ${lookAlike})`;
}

function folderNameProblem(name: string): string | undefined {
  if (/[/\\]/.test(name)) return "must not contain a path separator";
  if (NON_PRINTABLE.test(name)) {
    return "must contain only printable characters and the space U+0020 (no control, format, " +
      "invisible or other space characters)";
  }
  if (SHARE_UNSAFE_CHARACTERS.test(name)) return 'must not contain any of < > : " | ? *';
  if (name.startsWith(" ") || name.endsWith(" ")) return "must not start or end with a space";
  if (name.startsWith("-") || name.startsWith(".")) return "must not start with '-' or '.'";
  if (name.endsWith(".")) return "must not end with '.'";
  if (WINDOWS_DEVICE_NAME.test(name)) return "must not be a device name Windows reserves";
  return undefined;
}

/**
 * The key under which work on a project's folder is serialised: the folder name as a case-insensitive
 * filesystem (an SMB or Azure Files share, NTFS, APFS) would compare it, so two names that differ only in
 * case, and could be one folder there, never run at the same time. The service cannot tell which kind of
 * filesystem a destination is, so it assumes the insensitive kind; on a case-sensitive one this only
 * serialises two projects that could have run side by side. Full case mapping folds more than any
 * filesystem does (`ß` and `SS` share a key), which is harmless for a lock.
 */
export function projectFolderKey(projectName: string): string {
  return projectName.toLowerCase().toUpperCase();
}

/** How many hex digits of the SHA-256 a changed project identifier ends with. */
const IDENTIFIER_HASH_DIGITS = 8;

const HASHED_ENDING = new RegExp(`_[0-9a-f]{${IDENTIFIER_HASH_DIGITS}}$`);

/**
 * The identifier that stands for a project where only `[a-z0-9_]` is safe: the PostgreSQL destination's
 * schemas (`{identifier}_{start}_{schema}`) and the OPAL project (and its `{identifier}_group`). The
 * registry, the folders and the replies keep the project name itself. The mapping:
 *
 * 1. ASCII letters are lower-cased; every run of other characters outside `[a-z0-9_]` becomes one `_`;
 *    leading and trailing `_` are removed.
 * 2. If that left the name unchanged, and it does not end with `_` and 8 hex digits, it is the identifier
 *    (`pr042` stays `pr042`).
 * 3. Otherwise the identifier is the result of step 1 (or `project` when that is empty), `_`, and the first
 *    8 hex digits of the SHA-256 of the name's UTF-8 bytes: `CR8TOR Demo Project` becomes
 *    `cr8tor_demo_project_` followed by those 8 digits.
 *
 * Two names never share an identifier by accident: an unchanged name never ends like a hashed one, and
 * two hashed ones meet only if their hashes' first 32 bits do; the PostgreSQL destination refuses a
 * project whose identifier another project already holds (409), so even a crafted collision cannot
 * reach another project's schemas or OPAL project.
 */
export function projectIdentifier(projectName: string): string {
  const slug = projectName.replace(/[A-Z]+/g, (letters) => letters.toLowerCase())
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (slug === projectName && !HASHED_ENDING.test(slug)) return slug;
  const hash = createHash("sha256").update(projectName, "utf8").digest("hex");
  return `${slug === "" ? "project" : slug}_${hash.slice(0, IDENTIFIER_HASH_DIGITS)}`;
}

/** Returns true when `name` may be used as a secret name (see {@link SECRET_NAME_PATTERN}). */
export function isSafeSecretName(name: string): boolean {
  return SECRET_NAME_PATTERN.test(name);
}

/** Returns true when `name` may be used as a schema, table or column name (see {@link IDENTIFIER_PATTERN}). */
export function isSafeIdentifier(name: string): boolean {
  return IDENTIFIER_PATTERN.test(name);
}
