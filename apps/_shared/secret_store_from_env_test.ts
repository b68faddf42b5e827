import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import { KeyVaultSecretStore } from "../../adapters/azure/key_vault_secret_store.ts";
import { SecretNotFoundError } from "../../ports/secret_store.ts";
import {
  type FakeKeyVault,
  makeTestCertificates,
  removeTestCertificates,
  startFakeKeyVault,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import { ConfigError } from "./app_errors.ts";
import { memoryLogger } from "./log.ts";
import { type ServiceSecrets, serviceSecretsFromEnv } from "./secret_store_from_env.ts";

const CLIENT = { id: "unit-client-id", secret: "unit-client-secret-value" };

/** Rejects with a ConfigError whose message matches `message`. */
async function refuses(
  env: Record<string, string | undefined>,
  message: RegExp,
): Promise<void> {
  await assert.rejects(
    serviceSecretsFromEnv(env, { log: memoryLogger() }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, message);
      return true;
    },
  );
}

Deno.test("serviceSecretsFromEnv() configuration rules", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-secrets-env-"));
  const vaultEnv = {
    SECRETS_PROVIDER: "azure-keyvault",
    AZURE_KEYVAULT_URL: "https://v.vault.net",
  };
  try {
    await t.step("uses the files in SECRETS_MNT_PATH by default", async () => {
      await writeFile(join(dir, "dbpassword"), "from-file\n");
      const log = memoryLogger();
      const secrets = await serviceSecretsFromEnv({ SECRETS_MNT_PATH: dir }, { log });
      assert.equal(secrets.provider, "file");
      assert.ok(secrets.store instanceof FileSecretStore);
      assert.equal(await secrets.store.get("dbpassword"), "from-file");
      assert.equal(JSON.parse(log.lines[0] ?? "{}").provider, "file");
    });

    await t.step("builds a Key Vault store for SECRETS_PROVIDER=azure-keyvault", async () => {
      const log = memoryLogger();
      const secrets = await serviceSecretsFromEnv({
        ...vaultEnv,
        AZURE_TENANT_ID: "tenant",
        AZURE_CLIENT_ID: CLIENT.id,
        AZURE_CLIENT_SECRET: CLIENT.secret,
      }, { log });
      assert.equal(secrets.provider, "azure-keyvault");
      assert.ok(secrets.store instanceof KeyVaultSecretStore);
      const line = JSON.parse(log.lines[0] ?? "{}");
      assert.equal(line.event, "secrets_provider");
      assert.equal(line.vault, "v.vault.net");
      assert.equal(line.credential, "client-secret");
      assert.ok(!log.lines.join("\n").includes(CLIENT.secret));
    });

    await t.step("refuses an unknown SECRETS_PROVIDER, naming the allowed values", async () => {
      await refuses(
        { SECRETS_PROVIDER: "vault" },
        /SECRETS_PROVIDER: must be one of "file", "azure-keyvault"/,
      );
    });

    await t.step("azure-keyvault needs AZURE_KEYVAULT_URL", async () => {
      for (const url of [undefined, "", "  "]) {
        await refuses(
          { SECRETS_PROVIDER: "azure-keyvault", AZURE_KEYVAULT_URL: url },
          /^Cannot start: SECRETS_PROVIDER is "azure-keyvault" but AZURE_KEYVAULT_URL is not set$/,
        );
      }
    });

    await t.step("refuses a vault URL that is not https://", async () => {
      await refuses(
        { ...vaultEnv, AZURE_KEYVAULT_URL: "http://v.vault.net" },
        /^Cannot start: .*must be an https:\/\/ URL/,
      );
    });

    await t.step("refuses a bad cache TTL and a bad verification switch", async () => {
      await refuses({ ...vaultEnv, AZURE_KEYVAULT_CACHE_TTL_SECONDS: "-1" }, /CACHE_TTL_SECONDS/);
      await refuses(
        { ...vaultEnv, AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: "yes" },
        /AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: must be "true" or "false"/,
      );
    });

    await t.step("refuses workload identity without its tenant and client", async () => {
      await refuses(
        { ...vaultEnv, AZURE_FEDERATED_TOKEN_FILE: "/var/run/token" },
        /^Cannot start: Cannot use workload identity/,
      );
    });

    await t.step("refuses a DENO_CERT or NODE_EXTRA_CA_CERTS that Deno would ignore", async () => {
      await writeFile(join(dir, "not-a-cert.pem"), "hello\n");
      for (const name of ["DENO_CERT", "NODE_EXTRA_CA_CERTS"]) {
        await refuses(
          { ...vaultEnv, [name]: join(dir, "absent.pem") },
          new RegExp(`^Cannot start: ${name} .*absent\\.pem cannot be read \\(ENOENT\\)$`),
        );
        await refuses(
          { ...vaultEnv, [name]: join(dir, "not-a-cert.pem") },
          new RegExp(`^Cannot start: ${name} .* holds no PEM certificate$`),
        );
      }
      // The file provider does not read them.
      const files = await serviceSecretsFromEnv(
        { SECRETS_MNT_PATH: dir, DENO_CERT: join(dir, "absent.pem") },
        { log: memoryLogger() },
      );
      assert.equal(files.provider, "file");
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("ServiceSecrets.readApiKey() with files", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-keys-"));
  const files = (env: Record<string, string> = {}) =>
    serviceSecretsFromEnv({ SECRETS_MNT_PATH: dir, ...env }, { log: memoryLogger() });
  try {
    await writeFile(join(dir, "publishserviceapikey"), "  file-key-0123456789abcdef\n");
    await writeFile(join(dir, "shortkey"), "short");
    await writeFile(join(dir, "emptykey"), "\n");

    await t.step("reads the file in the secrets directory, trimmed", async () => {
      assert.equal(
        await (await files()).readApiKey("publishserviceapikey"),
        "file-key-0123456789abcdef",
      );
    });
    await t.step("prefers the env var, as written or upper case", async () => {
      assert.equal(
        await (await files({ publishserviceapikey: "env-key-0123456789" })).readApiKey(
          "publishserviceapikey",
        ),
        "env-key-0123456789",
      );
      assert.equal(
        await (await files({ PUBLISHSERVICEAPIKEY: "ENV-KEY-0123456789" })).readApiKey(
          "publishserviceapikey",
        ),
        "ENV-KEY-0123456789",
      );
    });
    const refusals: [string, string, Record<string, string>, RegExp][] = [
      [
        "a missing key",
        "metadataserviceapikey",
        {},
        /^Cannot start: API key "metadataserviceapikey" is not set or empty; put it in the file metadataserviceapikey under SECRETS_MNT_PATH or in the env var METADATASERVICEAPIKEY$/,
      ],
      ["an empty env var", "emptykey", { emptykey: "" }, /"emptykey" is empty/],
      ["a blank key file", "emptykey", {}, /"emptykey" is not set or empty/],
      ["a short key", "shortkey", {}, /too short; it must be at least 16 characters/],
    ];
    for (const [what, name, env, message] of refusals) {
      await t.step(`refuses ${what}`, async () => {
        await assert.rejects(
          (await files(env)).readApiKey(name),
          (e: unknown) => e instanceof ConfigError && message.test(e.message),
        );
      });
    }
    await t.step("a missing secrets directory is 'cannot read', with the same hint", async () => {
      const gone = await serviceSecretsFromEnv({ SECRETS_MNT_PATH: join(dir, "gone") }, {
        log: memoryLogger(),
      });
      await assert.rejects(
        gone.readApiKey("approvalserviceapikey"),
        (e: unknown) =>
          e instanceof ConfigError &&
          /^Cannot start: cannot read API key "approvalserviceapikey": Cannot open the secrets directory; put it in the file approvalserviceapikey/
            .test(e.message) &&
          !e.message.includes(dir),
      );
    });
    await t.step("never puts the key's value in the message", async () => {
      const error = await (await files()).readApiKey("shortkey").catch((e: Error) => e);
      assert.ok(error instanceof ConfigError);
      assert.ok(!error.message.includes('"short"') && !error.message.includes(": short"));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("ServiceSecrets.readinessCheck() with files", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-ready-"));
  try {
    await t.step("is ok while the directory can be listed, whatever the probe", async () => {
      const secrets = await serviceSecretsFromEnv({ SECRETS_MNT_PATH: dir }, {
        log: memoryLogger(),
      });
      assert.deepEqual(await secrets.readinessCheck("absent"), { name: "secrets", ok: true });
    });
    await t.step("is not ok without the directory, and does not name it", async () => {
      const secrets = await serviceSecretsFromEnv({ SECRETS_MNT_PATH: join(dir, "gone") }, {
        log: memoryLogger(),
      });
      assert.deepEqual(await secrets.readinessCheck("absent"), {
        name: "secrets",
        ok: false,
        detail: "the secrets directory cannot be read",
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

interface VaultWorld {
  readonly vault: FakeKeyVault;
  readonly certificates: TestCertificates;
  /** The service's secrets against the fake vault, authenticated with a client secret. */
  secrets(
    env?: Record<string, string>,
    log?: ReturnType<typeof memoryLogger>,
  ): Promise<ServiceSecrets>;
}

async function withVault(body: (world: VaultWorld) => Promise<void>): Promise<void> {
  const certificates = await makeTestCertificates();
  const vault = startFakeKeyVault({ certificates, client: CLIENT });
  try {
    await body({
      vault,
      certificates,
      secrets: (env = {}, log = memoryLogger()) =>
        serviceSecretsFromEnv({
          SECRETS_PROVIDER: "azure-keyvault",
          AZURE_KEYVAULT_URL: vault.url,
          AZURE_AUTHORITY_HOST: vault.url,
          AZURE_TENANT_ID: vault.tenantId,
          AZURE_CLIENT_ID: CLIENT.id,
          AZURE_CLIENT_SECRET: CLIENT.secret,
          AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: "true",
          ...env,
        }, { log, keyVault: { caCertificates: certificates.caCert } }),
    });
  } finally {
    await vault.close();
    await removeTestCertificates(certificates);
  }
}

/** Paths of the authorized secret requests the vault saw since `from` (the SDK adds a trailing `/`). */
function readsSince(vault: FakeKeyVault, from: number): string[] {
  return vault.requests.slice(from).filter((r) => r.authorized).map((r) =>
    r.path.replace(/\/$/, "")
  );
}

Deno.test("ServiceSecrets with Azure Key Vault", async (t) => {
  await withVault(async ({ vault, secrets }) => {
    await t.step("readApiKey() reads the key from the vault", async () => {
      vault.setSecret("approvalserviceapikey", " vault-key-0123456789abcdef\n");
      const before = vault.requests.length;
      assert.equal(
        await (await secrets()).readApiKey("approvalserviceapikey"),
        "vault-key-0123456789abcdef",
      );
      assert.deepEqual(readsSince(vault, before), ["/secrets/approvalserviceapikey"]);
    });

    await t.step("readApiKey() prefers the env var and then asks no vault", async () => {
      const before = vault.requests.length;
      const store = await secrets({ APPROVALSERVICEAPIKEY: "env-key-0123456789abcdef" });
      assert.equal(await store.readApiKey("approvalserviceapikey"), "env-key-0123456789abcdef");
      assert.equal(vault.requests.length, before);
    });

    await t.step("readApiKey() names the Key Vault secret when the key is missing", async () => {
      await assert.rejects(
        (await secrets()).readApiKey("publishserviceapikey"),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message ===
            'Cannot start: API key "publishserviceapikey" is not set or empty; put it in the Key Vault secret publishserviceapikey or in the env var PUBLISHSERVICEAPIKEY',
      );
    });

    await t.step("readApiKey() refuses a short key from the vault without showing it", async () => {
      vault.setSecret("metadataserviceapikey", "tiny-vault-key");
      const error = await (await secrets()).readApiKey("metadataserviceapikey").catch((e) => e);
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /too short/);
      assert.ok(!error.message.includes("tiny-vault-key"));
    });

    await t.step(
      "readApiKey() says 'cannot read', not 'not set', when the vault fails",
      async () => {
        vault.setSecret("approvalserviceapikey", "vault-key-0123456789abcdef");
        vault.failNext(503, 3); // the client tries three times
        const error = await (await secrets()).readApiKey("approvalserviceapikey").catch((e) => e);
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(
          error.message,
          /^Cannot start: cannot read API key "approvalserviceapikey": .*HTTP 503/,
        );
        assert.ok(!error.message.includes("not set"));
        assert.ok(!error.message.includes("vault-key-0123456789abcdef"));
      },
    );

    await t.step("the store reads source credentials by their Key Vault names", async () => {
      vault.setSecret("pg-user", "reader");
      vault.setSecret("pg-password", "pw-from-vault");
      const store = (await secrets()).store;
      const before = vault.requests.length;
      assert.equal(await store.get("pg_user"), "reader");
      assert.equal(await store.get("pg.password"), "pw-from-vault");
      assert.deepEqual(readsSince(vault, before), ["/secrets/pg-user", "/secrets/pg-password"]);
      const missing = await store.get("absent_secret").catch((e) => e);
      assert.ok(missing instanceof SecretNotFoundError);
      assert.equal(missing.message, new SecretNotFoundError("absent_secret").message);
    });

    await t.step("where() names the mapped Key Vault secret", async () => {
      assert.equal((await secrets()).where("pg_user.x"), "the Key Vault secret pg-user-x");
    });

    await t.step(
      "without the verification switch the SDK refuses the fake's challenge",
      async () => {
        vault.setSecret("approvalserviceapikey", "vault-key-0123456789abcdef");
        const strict = await secrets({
          AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: "false",
        });
        await assert.rejects(
          strict.readApiKey("approvalserviceapikey"),
          (e: unknown) => e instanceof ConfigError && /does not match/.test(e.message),
        );
      },
    );

    await t.step("readinessCheck() reads the probe once, then from the cache", async () => {
      vault.setSecret("metadataserviceapikey", "metadata-key-0123456789");
      const service = await secrets();
      const before = vault.requests.length;
      assert.deepEqual(await service.readinessCheck("metadataserviceapikey"), {
        name: "secrets",
        ok: true,
      });
      assert.deepEqual(await service.readinessCheck("metadataserviceapikey"), {
        name: "secrets",
        ok: true,
      });
      assert.deepEqual(readsSince(vault, before), ["/secrets/metadataserviceapikey"]);
    });

    await t.step("readinessCheck() is ok when the vault answers 'not found'", async () => {
      const before = vault.requests.length;
      assert.deepEqual(await (await secrets()).readinessCheck("nosuchprobe"), {
        name: "secrets",
        ok: true,
      });
      assert.deepEqual(readsSince(vault, before), ["/secrets/nosuchprobe"]);
    });

    await t.step(
      "readinessCheck() is not ok when the vault fails, and shows no value",
      async () => {
        vault.setSecret("publishserviceapikey", "publish-key-0123456789");
        const log = memoryLogger();
        const service = await secrets({}, log);
        vault.failNext(500, 3);
        const check = await service.readinessCheck("publishserviceapikey");
        assert.deepEqual(check, {
          name: "secrets",
          ok: false,
          detail: "Azure Key Vault cannot be read",
        });
        const warning = log.lines.map((l) => JSON.parse(l)).find((l) =>
          l.event === "secrets_unavailable"
        );
        assert.match(warning?.message ?? "", /"publishserviceapikey".*HTTP 500/);
        assert.ok(!log.lines.join("\n").includes("publish-key-0123456789"));
        assert.deepEqual(await service.readinessCheck("publishserviceapikey"), {
          name: "secrets",
          ok: true,
        });
      },
    );
  });
});
