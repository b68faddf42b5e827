/**
 * The port for deleting what a release published (`docs/revocation.md`): the publish service's
 * `POST /data-publish/revoke`, called by the gateway when a release is revoked (by a person, the key, or
 * its expiry).
 *
 * @module
 */
import type { Release, Revocation } from "../domain/release.ts";

/** The deletion certificate the publish service gives, kept as it came (a JSON object). */
export type DeletionCertificateObject = Record<string, unknown>;

/** Deletes what a release published. */
export interface ReleaseRevoker {
  /**
   * Asks for `release`'s published data to be deleted, for `revocation`'s reason and requester, and
   * returns the deletion certificate. Idempotent: asking again for a release already revoked there
   * returns its certificate.
   *
   * @throws an `AppError` when the publish service refuses or cannot be reached (the release then stays
   *   `revoking`, to be retried).
   */
  revoke(release: Release, revocation: Revocation): Promise<DeletionCertificateObject>;
}
