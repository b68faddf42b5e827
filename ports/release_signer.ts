/**
 * Signs release receipts (`domain/release_receipt.ts`) with the service's current release key, and
 * lists the public keys (current and retired) that verify them. An adapter reads its keys afresh on
 * each call, so a rotated key takes effect without a restart (`docs/provenance.md`).
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";
import type { ReceiptClaims, ReleaseKeySet } from "../domain/release_receipt.ts";
import type { SignedReceipt } from "../domain/release_signing.ts";

export type { SignedReceipt } from "../domain/release_signing.ts";

/** Signs receipts and publishes the keys that verify them. */
export interface ReleaseSigner {
  /**
   * Signs `claims` with the current key; the signer adds the key's id (`kid`).
   *
   * @throws {ReleaseKeyUnavailableError} when the key cannot be read or is not an Ed25519 private key.
   */
  sign(claims: Omit<ReceiptClaims, "kid">): Promise<SignedReceipt>;
  /**
   * The public keys: the current key first, then the retired ones (which still verify old receipts).
   *
   * @throws {ReleaseKeyUnavailableError} as {@link ReleaseSigner.sign}.
   */
  keySet(): Promise<ReleaseKeySet>;
}

/** The release signing key (or the retired key set) cannot be read or used. Never names key material. */
export class ReleaseKeyUnavailableError extends AppError {
  readonly code = "release_key_unavailable";
}
