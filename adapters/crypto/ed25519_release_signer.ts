/**
 * The release signer (`ports/release_signer.ts`): Ed25519 through WebCrypto. The current private key is
 * a JWK in the secret store (`RELEASE_SIGNING_KEY_SECRET_NAME`), the retired public keys a JWKS in
 * another secret (`RELEASE_RETIRED_KEYS_SECRET_NAME`, optional); both are read on every call, so
 * rotating the key (`docs/provenance.md`, "Signing keys and rotation") needs no restart.
 *
 * Without a secret name the signer generates a key once and keeps it in a file (`${STATE_DIR}/
 * release-signing-key.jwk`, owner-only, created atomically so two processes never keep two keys), reused
 * after a restart. Key material is never logged or put in an error message.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import {
  jwkThumbprint,
  type PublicReleaseKey,
  publicReleaseKey,
  type ReceiptClaims,
  type ReleaseKeySet,
  signReceipt,
} from "../../domain/release_receipt.ts";
import {
  ReleaseKeyUnavailableError,
  type ReleaseSigner,
  type SignedReceipt,
} from "../../ports/release_signer.ts";
import type { SecretStore } from "../../ports/secret_store.ts";

/** The file name of a generated key under the service's state directory. */
export const GENERATED_RELEASE_KEY_FILE = "release-signing-key.jwk";

/** Where the signer finds its keys. */
export type ReleaseKeySource =
  | {
    /** The secret store and the names of the current private JWK and (optional) retired JWKS. */
    readonly secrets: SecretStore;
    readonly keySecretName: string;
    readonly retiredKeysSecretName?: string | undefined;
  }
  | {
    /** A file holding a generated private JWK, created on first use. */
    readonly generatedKeyFile: string;
    /** Told once, when the signer first uses a generated key (never the key). */
    readonly onGeneratedKey?: ((path: string) => void) | undefined;
  };

/** A private key, its public JWK and its id. */
interface CurrentKey {
  readonly privateKey: CryptoKey;
  readonly publicKey: PublicReleaseKey;
}

/** Signs release receipts with an Ed25519 key from the secret store or a generated key file. */
export class Ed25519ReleaseSigner implements ReleaseSigner {
  readonly #source: ReleaseKeySource;
  #warned = false;

  constructor(source: ReleaseKeySource) {
    this.#source = source;
  }

  async sign(claims: Omit<ReceiptClaims, "kid">): Promise<SignedReceipt> {
    const key = await this.#currentKey();
    const signed: ReceiptClaims = { ...claims, kid: key.publicKey.kid };
    return { jws: await signReceipt(signed, key.privateKey), claims: signed };
  }

  async keySet(): Promise<ReleaseKeySet> {
    const current = (await this.#currentKey()).publicKey;
    const retired = (await this.#retiredKeys()).filter((k) => k.kid !== current.kid);
    return { keys: [current, ...retired] };
  }

  async #currentKey(): Promise<CurrentKey> {
    const source = this.#source;
    if ("secrets" in source) {
      return await privateKeyOf(
        await source.secrets.get(source.keySecretName),
        source.keySecretName,
      );
    }
    const text = await readOrCreateKeyFile(source.generatedKeyFile);
    if (!this.#warned) {
      this.#warned = true;
      source.onGeneratedKey?.(source.generatedKeyFile);
    }
    return await privateKeyOf(text, "the generated release key file");
  }

  async #retiredKeys(): Promise<PublicReleaseKey[]> {
    const source = this.#source;
    if (!("secrets" in source) || source.retiredKeysSecretName === undefined) return [];
    const name = source.retiredKeysSecretName;
    return await publicKeysOf(await source.secrets.get(name), name);
  }
}

/**
 * A new Ed25519 key pair as JWKs: the private JWK an operator stores as the signing key secret, and its
 * public JWK (with its `kid`), which moves into the retired key set when the key is rotated out.
 */
export async function generateReleaseKey(): Promise<
  { privateJwk: JsonWebKey; publicJwk: PublicReleaseKey }
> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const exported = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const publicJwk = await publicReleaseKey(pair.publicKey);
  const privateJwk: JsonWebKey = {
    kty: "OKP",
    crv: "Ed25519",
    x: exported.x!,
    d: exported.d!,
    kid: publicJwk.kid,
  } as JsonWebKey;
  return { privateJwk, publicJwk };
}

async function privateKeyOf(text: string, where: string): Promise<CurrentKey> {
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new ReleaseKeyUnavailableError(`Cannot use the release signing key (${where}): not JSON`);
  }
  if (
    typeof jwk !== "object" || jwk === null || jwk.kty !== "OKP" || jwk.crv !== "Ed25519" ||
    typeof jwk.d !== "string" || typeof jwk.x !== "string"
  ) {
    throw new ReleaseKeyUnavailableError(
      `Cannot use the release signing key (${where}): not an Ed25519 private JWK`,
    );
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "jwk",
      { kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d },
      "Ed25519",
      true,
      ["sign"],
    );
  } catch {
    throw new ReleaseKeyUnavailableError(
      `Cannot use the release signing key (${where}): its key material is not valid`,
    );
  }
  return { privateKey, publicKey: await publicReleaseKey(privateKey) };
}

async function publicKeysOf(text: string, where: string): Promise<PublicReleaseKey[]> {
  const refuse = (why: string) =>
    new ReleaseKeyUnavailableError(`Cannot use the retired release keys (${where}): ${why}`);
  let set: unknown;
  try {
    set = JSON.parse(text);
  } catch {
    throw refuse("not JSON");
  }
  const keys = (set as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw refuse('not a JWK Set (no "keys" array)');
  const result: PublicReleaseKey[] = [];
  for (const key of keys as Record<string, unknown>[]) {
    if (key?.kty !== "OKP" || key.crv !== "Ed25519" || typeof key.x !== "string") {
      throw refuse("a key is not an Ed25519 public JWK");
    }
    if ("d" in key) throw refuse("a key holds private key material; list public keys only");
    const kid = await jwkThumbprint({ x: key.x });
    result.push({ kty: "OKP", crv: "Ed25519", x: key.x, kid, alg: "EdDSA", use: "sig" });
  }
  return result;
}

/**
 * The key file's text, creating it first when it does not exist: the new key is written to a private
 * temporary file and hard-linked to the final name, which fails if another process got there first (its
 * key is then used), so the file is never seen half-written.
 */
async function readOrCreateKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw unreadable(e);
  }
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const temporary = `${path}.${randomUUID()}.tmp`;
    const { privateJwk } = await generateReleaseKey();
    await writeFile(temporary, JSON.stringify(privateJwk) + "\n", { mode: 0o600, flag: "wx" });
    try {
      await link(temporary, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      await unlink(temporary);
    }
    return await readFile(path, "utf8");
  } catch (e) {
    throw unreadable(e);
  }
}

function unreadable(cause: unknown): ReleaseKeyUnavailableError {
  return new ReleaseKeyUnavailableError(
    "Cannot use the generated release signing key: its file cannot be read or created",
    { cause },
  );
}
