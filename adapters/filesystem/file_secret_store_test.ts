import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { secretStoreContract } from "../../tests/contracts/secret_store_contract.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";
import { FileSecretStore } from "./file_secret_store.ts";

async function secretsDir(values: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-secrets-"));
  for (const [name, value] of Object.entries(values)) await writeFile(join(dir, name), value);
  return dir;
}

Deno.test("FileSecretStore passes the SecretStore contract", async (t) => {
  const dirs: string[] = [];
  try {
    await secretStoreContract(t, async (values) => {
      const dir = await secretsDir(values);
      dirs.push(dir);
      return new FileSecretStore(dir);
    });
  } finally {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("FileSecretStore specifics", async (t) => {
  const outside = await secretsDir({ stolen: "outside-value" });
  const dir = await secretsDir({ real: "real-value" });
  try {
    await t.step("follows Kubernetes-style symlinks that stay inside the directory", async () => {
      await mkdir(join(dir, "..data"));
      await writeFile(join(dir, "..data", "mounted"), "mounted-value\n");
      await symlink(join("..data", "mounted"), join(dir, "mounted"));
      assert.equal(await new FileSecretStore(dir).get("mounted"), "mounted-value");
    });

    await t.step("refuses a symlink that leads out of the directory", async () => {
      await symlink(join(outside, "stolen"), join(dir, "escape"));
      await assert.rejects(new FileSecretStore(dir).get("escape"), InvalidSecretNameError);
    });

    await t.step("reports a missing secret without naming the directory", async () => {
      const error = await new FileSecretStore(dir).get("absent").catch((e: Error) => e);
      assert.ok(error instanceof SecretNotFoundError);
      assert.equal(error.message, 'Cannot find secret "absent"');
    });

    await t.step("treats a directory entry as not found", async () => {
      await mkdir(join(dir, "adir"));
      await assert.rejects(new FileSecretStore(dir).get("adir"), SecretNotFoundError);
    });

    await t.step(
      "reports a missing secrets directory as unavailable, not as not found",
      async () => {
        const error = await new FileSecretStore(join(dir, "nope")).get("real").catch((e: Error) =>
          e
        );
        assert.ok(error instanceof SecretStoreUnavailableError);
        assert.ok(!error.message.includes(dir));
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  }
});
