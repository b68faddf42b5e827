/**
 * What a destination needs to sign a release as it publishes it (`docs/provenance.md`): the release's
 * provenance, completed from what the destination verified was staged, and a way to sign its receipt.
 * Plain types, so the destination ports can name them.
 *
 * @module
 */
import type { ReleaseProvenance } from "./provenance.ts";
import type { ReceiptClaims } from "./release_receipt.ts";
import type { StagedContent } from "./staging_manifest.ts";

/** A signed receipt: the compact JWS and the claims it signs. */
export interface SignedReceipt {
  readonly jws: string;
  readonly claims: ReceiptClaims;
}

/** A release's RO-Crate and its signed receipt. */
export interface PublishedRelease {
  readonly crate: Record<string, unknown>;
  readonly receipt: SignedReceipt;
}

/** The provenance of a release being published and the signer of its receipt. */
export interface ReleaseSigning {
  /** The provenance of the release, given what the destination verified was staged. */
  provenance(staged: StagedContent): ReleaseProvenance;
  /** Signs the receipt's claims with the current key, which names itself in `kid`. */
  sign(claims: Omit<ReceiptClaims, "kid">): Promise<SignedReceipt>;
}
