/**
 * `deno task release-key`: makes a new release signing key (`docs/provenance.md`, "Signing keys and
 * rotation"). Prints the private JWK, one line on stdout, for the operator to store as the secret
 * `RELEASE_SIGNING_KEY_SECRET_NAME` names; and its key id and public JWK on stderr, which go into the
 * retired key set (`RELEASE_RETIRED_KEYS_SECRET_NAME`) when the key is later rotated out. Nothing is
 * written to disk.
 *
 * @module
 */
import { generateReleaseKey } from "../adapters/crypto/ed25519_release_signer.ts";

/** The tool's two outputs: the secret's value, and what to tell the operator about the key. */
export async function newReleaseKeyText(): Promise<{ secret: string; notice: string }> {
  const { privateJwk, publicJwk } = await generateReleaseKey();
  return {
    secret: JSON.stringify(privateJwk) + "\n",
    notice: `New release signing key ${publicJwk.kid}. Store stdout as the secret named by ` +
      "RELEASE_SIGNING_KEY_SECRET_NAME. When it is rotated out, add this public key to the retired " +
      `key set (RELEASE_RETIRED_KEYS_SECRET_NAME):\n${JSON.stringify(publicJwk)}\n`,
  };
}

if (import.meta.main) {
  const { secret, notice } = await newReleaseKeyText();
  await Deno.stderr.write(new TextEncoder().encode(notice));
  await Deno.stdout.write(new TextEncoder().encode(secret));
}
