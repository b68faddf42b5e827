import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemorySecretStore } from "../memory/memory_secret_store.ts";
import { ReceiptInvalidError, verifyReceipt } from "../../domain/release_receipt.ts";
import { ReleaseKeyUnavailableError } from "../../ports/release_signer.ts";
import { Ed25519ReleaseSigner, generateReleaseKey } from "./ed25519_release_signer.ts";

const claims = {
  receipt_version: 1 as const,
  release_id: "rel-1",
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  destination: { type: "filestore", name: "LSC" },
  subject: { kind: "bagit-tagmanifest-sha512" as const, sha512: "a".repeat(128) },
  signed_at: "2025-06-11T09:30:00.000Z",
};

Deno.test("Ed25519ReleaseSigner: signs with the key in the secret store; the receipt verifies with its key set", async () => {
  const { privateJwk, publicJwk } = await generateReleaseKey();
  const signer = new Ed25519ReleaseSigner({
    secrets: new MemorySecretStore({ "release-key": JSON.stringify(privateJwk) }),
    keySecretName: "release-key",
  });
  const signed = await signer.sign(claims);
  assert.equal(signed.claims.kid, publicJwk.kid);
  assert.deepEqual(await signer.keySet(), { keys: [publicJwk] });
  assert.deepEqual(await verifyReceipt(signed.jws, await signer.keySet()), signed.claims);
  assert.ok(!JSON.stringify(await signer.keySet()).includes(privateJwk.d!));
});

Deno.test("Ed25519ReleaseSigner: rotation — a receipt signed by the old key verifies with the new key set that lists the old one as retired", async () => {
  const oldKey = await generateReleaseKey();
  const newKey = await generateReleaseKey();
  const values: Record<string, string> = { "release-key": JSON.stringify(oldKey.privateJwk) };
  const secrets = { get: (name: string) => new MemorySecretStore(values).get(name) };
  const signer = new Ed25519ReleaseSigner({
    secrets,
    keySecretName: "release-key",
    retiredKeysSecretName: "release-retired-keys",
  });
  values["release-retired-keys"] = JSON.stringify({ keys: [] });
  const old = await signer.sign(claims);

  // Rotate without a restart: the new key becomes current, the old public key is retired.
  values["release-key"] = JSON.stringify(newKey.privateJwk);
  values["release-retired-keys"] = JSON.stringify({ keys: [oldKey.publicJwk] });
  const keys = await signer.keySet();
  assert.deepEqual(keys.keys.map((k) => k.kid), [newKey.publicJwk.kid, oldKey.publicJwk.kid]);
  assert.deepEqual(await verifyReceipt(old.jws, keys), old.claims);
  const fresh = await signer.sign(claims);
  assert.equal(fresh.claims.kid, newKey.publicJwk.kid);
  assert.deepEqual(await verifyReceipt(fresh.jws, keys), fresh.claims);

  // Without the retired set, the old receipt no longer verifies.
  await assert.rejects(
    verifyReceipt(old.jws, { keys: [newKey.publicJwk] }),
    ReceiptInvalidError,
  );
});

Deno.test("Ed25519ReleaseSigner: a secret that is not an Ed25519 private JWK is refused without echoing it", async () => {
  const { publicJwk } = await generateReleaseKey();
  for (const value of ["not json secret-value", JSON.stringify(publicJwk)]) {
    const signer = new Ed25519ReleaseSigner({
      secrets: new MemorySecretStore({ "release-key": value }),
      keySecretName: "release-key",
    });
    await assert.rejects(signer.sign(claims), (e: unknown) => {
      assert.ok(e instanceof ReleaseKeyUnavailableError);
      assert.ok(!e.message.includes("secret-value"));
      return true;
    });
  }
  const { privateJwk } = await generateReleaseKey();
  const leaky = new Ed25519ReleaseSigner({
    secrets: new MemorySecretStore({
      "release-key": JSON.stringify(privateJwk),
      "retired": JSON.stringify({ keys: [privateJwk] }),
    }),
    keySecretName: "release-key",
    retiredKeysSecretName: "retired",
  });
  await assert.rejects(leaky.keySet(), /private key material/);
});

Deno.test("Ed25519ReleaseSigner: without a secret, a key is generated once (0600), reused by a new instance, and the warning is given once", async () => {
  const dir = await mkdtemp(join(tmpdir(), "release-key-"));
  try {
    const path = join(dir, "state", "release-signing-key.jwk");
    const warnings: string[] = [];
    const first = new Ed25519ReleaseSigner({
      generatedKeyFile: path,
      onGeneratedKey: (p) => warnings.push(p),
    });
    const [a, b] = await Promise.all([first.sign(claims), first.sign(claims)]);
    assert.equal(a.claims.kid, b.claims.kid);
    await first.keySet();
    assert.deepEqual(warnings, [path]);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const text = await readFile(path, "utf8");

    const second = new Ed25519ReleaseSigner({ generatedKeyFile: path });
    const again = await second.sign(claims);
    assert.equal(again.claims.kid, a.claims.kid);
    assert.deepEqual(await verifyReceipt(a.jws, await second.keySet()), a.claims);
    assert.equal(await readFile(path, "utf8"), text);
  } finally {
    await rm(dir, { recursive: true });
  }
});
