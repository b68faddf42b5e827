/**
 * The contract every SecretStore adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  type SecretStore,
} from "../../ports/secret_store.ts";

/** Unsafe names every store must refuse before looking anything up. */
export const UNSAFE_SECRET_NAMES = [
  "../etc/passwd",
  "..",
  "a/../../b",
  "/etc/passwd",
  "dir/secret",
  "..\\secret",
  "secret\u0000",
  ".hidden",
  "%2e%2e%2fsecret",
  "",
  "x".repeat(128),
];

/**
 * Runs the SecretStore contract.
 *
 * @param make builds a store holding exactly the given secrets (values as stored, before trimming).
 */
export async function secretStoreContract(
  t: Deno.TestContext,
  make: (values: Record<string, string>) => Promise<SecretStore>,
): Promise<void> {
  await t.step("get() returns the value trimmed", async () => {
    const store = await make({ dbpassword: "  p@ss word\n", "name.with-dots_1": "v" });
    assert.equal(await store.get("dbpassword"), "p@ss word");
    assert.equal(await store.get("name.with-dots_1"), "v");
  });

  await t.step("get() rejects an unknown name with SecretNotFoundError", async () => {
    const store = await make({ present: "x" });
    await assert.rejects(store.get("absent"), SecretNotFoundError);
  });

  await t.step("get() treats an empty or blank secret as not found", async () => {
    const store = await make({ blank: " \n" });
    await assert.rejects(store.get("blank"), SecretNotFoundError);
  });

  await t.step("get() is case-sensitive", async () => {
    const store = await make({ Secret: "x" });
    await assert.rejects(store.get("secret"), SecretNotFoundError);
  });

  for (const name of UNSAFE_SECRET_NAMES) {
    await t.step(`get() refuses the unsafe name ${JSON.stringify(name)}`, async () => {
      const store = await make({ present: "x" });
      await assert.rejects(store.get(name), InvalidSecretNameError);
    });
  }

  await t.step("errors never carry the secret's value", async () => {
    const store = await make({ other: "top-secret-value" });
    const error = await store.get("absent").catch((e: Error) => e);
    assert.ok(error instanceof SecretNotFoundError);
    assert.ok(!String(error.message).includes("top-secret-value"));
  });
}
