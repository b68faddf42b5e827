import assert from "node:assert/strict";
import {
  base64url,
  fromBase64url,
  publicReleaseKey,
  type ReceiptClaims,
  ReceiptInvalidError,
  signReceipt,
  verifyReceipt,
} from "./release_receipt.ts";

async function newKey(): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  return await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
}

async function claimsFor(
  key: CryptoKey,
  overrides: Partial<ReceiptClaims> = {},
): Promise<ReceiptClaims> {
  return {
    receipt_version: 1,
    release_id: "3f1c0a5e-0000-4000-8000-000000000001",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    subject: { kind: "bagit-tagmanifest-sha512", sha512: "ab".repeat(64) },
    signed_at: "2026-12-06T10:00:00.000Z",
    kid: (await publicReleaseKey(key)).kid,
    ...overrides,
  };
}

/** `text` (base64url) with its first decoded byte changed: always another value. */
function flipFirstByte(text: string): string {
  const bytes = fromBase64url(text);
  bytes[0] = bytes[0]! ^ 0xff;
  return base64url(bytes);
}

Deno.test("base64url round-trips every byte value", () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(fromBase64url(base64url(bytes)), bytes);
  assert.throws(() => fromBase64url("a+b"), SyntaxError);
});

Deno.test("a receipt verifies with its key, also among retired keys, and returns its claims", async () => {
  const current = await newKey();
  const retired = await newKey();
  const claims = await claimsFor(retired.publicKey);
  const jws = await signReceipt(claims, retired.privateKey);
  const keys = {
    keys: [await publicReleaseKey(current.publicKey), await publicReleaseKey(retired.publicKey)],
  };
  assert.deepEqual(await verifyReceipt(jws, keys), claims);
});

Deno.test("the key id is the RFC 7638 thumbprint of the public key", async () => {
  // RFC 8037 Appendix A.3: the thumbprint of its example Ed25519 key.
  const key = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
    "Ed25519",
    true,
    ["verify"],
  );
  assert.equal((await publicReleaseKey(key)).kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
});

Deno.test("a receipt does not verify when anything in it changed", async (t) => {
  const { privateKey, publicKey } = await newKey();
  const keys = { keys: [await publicReleaseKey(publicKey)] };
  const jws = await signReceipt(await claimsFor(publicKey), privateKey);
  const [header, payload, signature] = jws.split(".") as [string, string, string];
  const forged = base64url(new TextEncoder().encode(JSON.stringify({
    ...(await claimsFor(publicKey)),
    project_name: "Pr043",
  })));
  const cases: [string, string, RegExp][] = [
    ["payload", `${header}.${forged}.${signature}`, /signature does not verify/],
    ["signature", `${header}.${payload}.${flipFirstByte(signature)}`, /signature does not verify/],
    ["shape", `${header}.${payload}`, /not a compact JWS/],
    ["header", `${base64url(new TextEncoder().encode('{"alg":"none"}'))}.${payload}.`, /EdDSA/],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(verifyReceipt(text, keys), (e) => {
        assert.ok(e instanceof ReceiptInvalidError);
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("a receipt signed by a key outside the set does not verify", async () => {
  const signer = await newKey();
  const other = await newKey();
  const jws = await signReceipt(await claimsFor(signer.publicKey), signer.privateKey);
  await assert.rejects(
    verifyReceipt(jws, { keys: [await publicReleaseKey(other.publicKey)] }),
    /not in the key set/,
  );
  // A key set that lists the signer's key under a false id is refused too.
  const honest = await publicReleaseKey(signer.publicKey);
  const renamed = { ...await publicReleaseKey(other.publicKey), kid: honest.kid };
  await assert.rejects(verifyReceipt(jws, { keys: [renamed] }), /not its thumbprint/);
});

Deno.test("claims that are not a receipt's are refused even when signed", async () => {
  const { privateKey, publicKey } = await newKey();
  const keys = { keys: [await publicReleaseKey(publicKey)] };
  const bad = await claimsFor(publicKey, {
    subject: { kind: "bagit-tagmanifest-sha512", sha512: "zz" },
  });
  await assert.rejects(verifyReceipt(await signReceipt(bad, privateKey), keys), /no valid subject/);
});
