/**
 * How a payload path becomes the `@id` of its File entity in a release's RO-Crate, and back: each path
 * segment percent-encoded, so any file name gives a valid relative URI reference (RO-Crate 1.1, data
 * entities). `releaseCrate` writes ids with {@link fileEntityId}; `deno task verify-release` reads them
 * with {@link filePathOfEntityId}. No imports, so the offline verifier's module graph stays npm-free.
 *
 * @module
 */

/** A payload path (`data/outputs/...`) as a File entity's `@id`. */
export function fileEntityId(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/**
 * The payload path a File entity's `@id` names; the inverse of {@link fileEntityId}.
 *
 * @throws {URIError} on a malformed percent-encoding.
 */
export function filePathOfEntityId(id: string): string {
  return id.split("/").map(decodeURIComponent).join("/");
}
