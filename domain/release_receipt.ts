/**
 * Signed release receipts (`docs/provenance.md`): each publish signs what it released, so anyone holding
 * the service's public keys can prove, offline, that this service produced a release and that nothing in
 * it changed since. A receipt is a compact JWS (RFC 7515) signed with Ed25519 (`alg: EdDSA`, RFC 8037)
 * through WebCrypto. Its claims name the release and the SHA-512 of its subject: the bag's
 * `tagmanifest-sha512.txt` for a filestore release (which in turn covers the payload manifest and the
 * RO-Crate), or the RO-Crate itself for a PostgreSQL release.
 *
 * Keys are identified by their RFC 7638 thumbprint (`kid`), so a key id can never name two keys. The
 * public keys, current and retired, are published as a JWKS; a retired key still verifies the receipts it
 * signed.
 *
 * This module needs nothing but the runtime (no npm package), so `deno task verify-release` runs on a
 * researcher's machine with Deno alone.
 *
 * @module
 */

/** The receipt's tag file in a bag; not listed in the tag manifest, whose digest it signs. */
export const RECEIPT_TAG_FILE = "release-receipt.jws";

/** The RO-Crate's tag file in a bag (RO-Crate 1.1), listed in the tag manifest. */
export const CRATE_TAG_FILE = "ro-crate-metadata.json";

/** The JWS `typ` of a receipt. */
export const RECEIPT_JWS_TYPE = "cr8tor-receipt+jws";

/** What a receipt's signature covers. */
export type ReceiptSubjectKind = "bagit-tagmanifest-sha512" | "ro-crate-sha512";

/** A receipt's claims: what was released, by whom, when, and the digest that pins its content. */
export interface ReceiptClaims {
  readonly receipt_version: 1;
  /** The gateway's release id; `null` when the publish service was called without the gateway. */
  readonly release_id: string | null;
  readonly project_name: string;
  readonly project_start_time: string;
  readonly destination: { readonly type: string; readonly name: string };
  /** The SHA-512 (lower-case hex) of the tag manifest (filestore) or of the crate (PostgreSQL). */
  readonly subject: { readonly kind: ReceiptSubjectKind; readonly sha512: string };
  /** When it was signed, ISO 8601 with milliseconds and `Z`. */
  readonly signed_at: string;
  /** The signing key's id ({@link jwkThumbprint}). */
  readonly kid: string;
}

/** An Ed25519 public key as a JWK, as the JWKS lists it. */
export interface PublicReleaseKey {
  readonly kty: "OKP";
  readonly crv: "Ed25519";
  /** The public key, base64url. */
  readonly x: string;
  readonly kid: string;
  readonly alg: "EdDSA";
  readonly use: "sig";
}

/** A JWK Set of release keys (`GET /.well-known/release-keys`). */
export interface ReleaseKeySet {
  readonly keys: readonly PublicReleaseKey[];
}

/** A receipt that does not verify; `reason` completes "the receipt ...". */
export class ReceiptInvalidError extends Error {
  constructor(readonly reason: string) {
    super(`The receipt ${reason}`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const SHA512_HEX = /^[0-9a-f]{128}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Base64url without padding (RFC 7515 §2). */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Decodes base64url without padding.
 *
 * @throws {SyntaxError} on characters outside the base64url alphabet.
 */
export function fromBase64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new SyntaxError("not base64url");
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") +
    "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/** The SHA-512 (lower-case hex) of a text's UTF-8 bytes: how a receipt's subject digest is computed. */
export async function sha512Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", encoder.encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The RFC 7638 thumbprint of an Ed25519 public key (SHA-256 over `{"crv","kty","x"}` in that order),
 * base64url: the key's id.
 */
export async function jwkThumbprint(key: { readonly x: string }): Promise<string> {
  const canonical = `{"crv":"Ed25519","kty":"OKP","x":"${key.x}"}`;
  return base64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(canonical))),
  );
}

/** The public JWK of an extractable Ed25519 key (private or public), with its thumbprint as `kid`. */
export async function publicReleaseKey(key: CryptoKey): Promise<PublicReleaseKey> {
  const jwk = await crypto.subtle.exportKey("jwk", key);
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
    throw new RangeError("Cannot use the release key: it is not an Ed25519 key");
  }
  return {
    kty: "OKP",
    crv: "Ed25519",
    x: jwk.x,
    kid: await jwkThumbprint(jwk as { x: string }),
    alg: "EdDSA",
    use: "sig",
  };
}

/**
 * Signs `claims` with `privateKey` (Ed25519) as a compact JWS whose header names the key's id.
 *
 * @throws {RangeError} when `claims.kid` is not the key's thumbprint.
 */
export async function signReceipt(claims: ReceiptClaims, privateKey: CryptoKey): Promise<string> {
  const header = { alg: "EdDSA", kid: claims.kid, typ: RECEIPT_JWS_TYPE };
  const input = `${base64url(encoder.encode(JSON.stringify(header)))}.${
    base64url(encoder.encode(JSON.stringify(claims)))
  }`;
  const signature = await crypto.subtle.sign("Ed25519", privateKey, encoder.encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

/**
 * Verifies a compact JWS receipt against `keys` and returns its claims: the header must be EdDSA with a
 * `kid` of the set, the signature must verify with that key, and the claims must be a receipt's.
 *
 * @throws {ReceiptInvalidError} saying what does not hold.
 */
export async function verifyReceipt(jws: string, keys: ReleaseKeySet): Promise<ReceiptClaims> {
  const parts = jws.trim().split(".");
  if (parts.length !== 3) throw new ReceiptInvalidError("is not a compact JWS");
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeJson(headerPart, "header");
  if (header.alg !== "EdDSA") throw new ReceiptInvalidError("is not signed with EdDSA");
  if (header.typ !== RECEIPT_JWS_TYPE) throw new ReceiptInvalidError("is not a release receipt");
  const key = keys.keys.find((k) => k.kid === header.kid);
  if (key === undefined) {
    throw new ReceiptInvalidError(
      `was signed with key ${JSON.stringify(header.kid)}, not in the key set`,
    );
  }
  if (await jwkThumbprint(key) !== key.kid) {
    throw new ReceiptInvalidError(
      `names key ${key.kid}, whose id in the key set is not its thumbprint`,
    );
  }
  let signature: Uint8Array;
  try {
    signature = fromBase64url(signaturePart);
  } catch {
    throw new ReceiptInvalidError("has a signature that is not base64url");
  }
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: key.x },
    "Ed25519",
    false,
    ["verify"],
  );
  const valid = await crypto.subtle.verify(
    "Ed25519",
    publicKey,
    signature as Uint8Array<ArrayBuffer>,
    encoder.encode(`${headerPart}.${payloadPart}`),
  );
  if (!valid) throw new ReceiptInvalidError("signature does not verify");
  const claims = receiptClaimsOf(decodeJson(payloadPart, "payload"));
  if (claims.kid !== header.kid) throw new ReceiptInvalidError("names another key than its header");
  return claims;
}

/**
 * The claims of a receipt's payload, checked field by field.
 *
 * @throws {ReceiptInvalidError} naming the first field that is not what a receipt holds.
 */
export function receiptClaimsOf(value: Record<string, unknown>): ReceiptClaims {
  const text = (v: unknown) => typeof v === "string" && v.length > 0;
  const destination = value.destination as Record<string, unknown> | null | undefined;
  const subject = value.subject as Record<string, unknown> | null | undefined;
  const problems: [boolean, string][] = [
    [value.receipt_version === 1, "receipt_version"],
    [value.release_id === null || text(value.release_id), "release_id"],
    [text(value.project_name), "project_name"],
    [text(value.project_start_time), "project_start_time"],
    [
      typeof destination === "object" && destination !== null && text(destination.type) &&
      typeof destination.name === "string",
      "destination",
    ],
    [
      typeof subject === "object" && subject !== null &&
      (subject.kind === "bagit-tagmanifest-sha512" || subject.kind === "ro-crate-sha512") &&
      typeof subject.sha512 === "string" && SHA512_HEX.test(subject.sha512),
      "subject",
    ],
    [typeof value.signed_at === "string" && ISO_TIME.test(value.signed_at), "signed_at"],
    [text(value.kid), "kid"],
  ];
  const wrong = problems.find(([ok]) => !ok);
  if (wrong !== undefined) throw new ReceiptInvalidError(`has no valid ${wrong[1]}`);
  return value as unknown as ReceiptClaims;
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(fromBase64url(part)));
  } catch {
    throw new ReceiptInvalidError(`has a ${what} that is not base64url JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ReceiptInvalidError(`has a ${what} that is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
