/**
 * The upload quarantine area as the publish service reads it (`docs/uploads.md`): it copies an
 * approved upload's bytes into staging, hashing them on the way.
 *
 * @module
 */

/** Reads uploads out of the quarantine area. */
export interface QuarantinedFiles {
  /**
   * Copies upload `id`'s bytes into a new file at `target` (which must not exist), hashing them in the
   * same read; the copy is flushed before this resolves.
   *
   * @returns the SHA-512 (lower-case hex) and size of the bytes copied.
   * @throws {Error} when there is no such upload, or it is a link or not a plain file.
   */
  copyInto(id: string, target: string): Promise<{ sha512: string; bytes: number }>;
}
