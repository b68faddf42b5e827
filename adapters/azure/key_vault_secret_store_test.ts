import assert from "node:assert/strict";
import type { AccessToken, TokenCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { secretStoreContract } from "../../tests/contracts/secret_store_contract.ts";
import {
  type FakeKeyVault,
  makeTestCertificates,
  removeTestCertificates,
  startFakeKeyVault,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";
import {
  KeyVaultConfigurationError,
  keyVaultCredentialFromEnv,
  keyVaultSecretName,
  KeyVaultSecretStore,
  keyVaultSecretStoreFromEnv,
} from "./key_vault_secret_store.ts";

/** A credential that always returns the same token, and counts how often it was asked. */
class FixedTokenCredential implements TokenCredential {
  calls = 0;
  constructor(readonly token: string) {}
  getToken(): Promise<AccessToken> {
    this.calls++;
    return Promise.resolve({ token: this.token, expiresOnTimestamp: Date.now() + 3600_000 });
  }
}

interface World {
  readonly certificates: TestCertificates;
  readonly vault: FakeKeyVault;
  client(options?: { url?: string; ca?: string | false }): SecretClient;
}

async function withVault(body: (world: World) => Promise<void>): Promise<void> {
  const certificates = await makeTestCertificates();
  const vault = startFakeKeyVault({
    certificates,
    client: { id: "test-client-id", secret: "test-client-secret" },
  });
  try {
    await body({
      certificates,
      vault,
      client: (options = {}) =>
        new SecretClient(options.url ?? vault.url, new FixedTokenCredential(vault.token), {
          ...(options.ca === false
            ? {}
            : { tlsOptions: { ca: options.ca ?? certificates.caCert } }),
          disableChallengeResourceVerification: true,
          retryOptions: { maxRetries: 1, retryDelayInMs: 10, maxRetryDelayInMs: 20 },
        }),
    });
  } finally {
    await vault.close();
    await removeTestCertificates(certificates);
  }
}

Deno.test("KeyVaultSecretStore passes the SecretStore contract against a fake vault over TLS", async (t) => {
  await withVault(async ({ vault, client }) => {
    await secretStoreContract(t, (values) => {
      vault.clear();
      for (const [name, value] of Object.entries(values)) {
        vault.setSecret(keyVaultSecretName(name), value);
      }
      return Promise.resolve(new KeyVaultSecretStore(client()));
    });
  });
});

Deno.test("KeyVaultSecretStore", async (t) => {
  await withVault(async ({ vault, client, certificates }) => {
    await t.step("answers the bearer challenge, then sends the token", async () => {
      vault.setSecret("dbpassword", "pw");
      const before = vault.requests.length;
      assert.equal(await new KeyVaultSecretStore(client()).get("dbpassword"), "pw");
      const seen = vault.requests.slice(before);
      assert.deepEqual(seen.map((r) => r.authorized), [false, true]);
      assert.match(seen[1]?.path ?? "", /^\/secrets\/dbpassword\/?$/);
    });

    await t.step("serves a value from its cache until the TTL passes", async () => {
      vault.setSecret("cached", "first");
      let now = 1_000_000;
      const store = new KeyVaultSecretStore(client(), { cacheTtlMs: 60_000, now: () => now });
      const before = vault.authorizedSecretRequests;
      assert.equal(await store.get("cached"), "first");
      vault.setSecret("cached", "second");
      now += 59_999;
      assert.equal(await store.get("cached"), "first");
      assert.equal(vault.authorizedSecretRequests - before, 1);
      now += 1;
      assert.equal(await store.get("cached"), "second");
      assert.equal(vault.authorizedSecretRequests - before, 2);
    });

    await t.step("shares one request between concurrent reads of a name", async () => {
      vault.setSecret("concurrent", "v");
      const store = new KeyVaultSecretStore(client());
      const before = vault.authorizedSecretRequests;
      const values = await Promise.all([store.get("concurrent"), store.get("concurrent")]);
      assert.deepEqual(values, ["v", "v"]);
      assert.equal(vault.authorizedSecretRequests - before, 1);
    });

    await t.step("does not cache 'not found' (a secret added later is seen)", async () => {
      const store = new KeyVaultSecretStore(client());
      await assert.rejects(store.get("later"), SecretNotFoundError);
      vault.setSecret("later", "now-here");
      assert.equal(await store.get("later"), "now-here");
    });

    await t.step("a cache TTL of 0 reads the vault every time", async () => {
      vault.setSecret("uncached", "v");
      const store = new KeyVaultSecretStore(client(), { cacheTtlMs: 0 });
      const before = vault.authorizedSecretRequests;
      await store.get("uncached");
      await store.get("uncached");
      assert.equal(vault.authorizedSecretRequests - before, 2);
    });

    await t.step("5xx is 'unavailable', not 'not found', and never carries the value", async () => {
      vault.setSecret("flaky", "flaky-secret-value");
      const store = new KeyVaultSecretStore(client());
      vault.failNext(503, 2); // the client retries once
      const error = await store.get("flaky").catch((e: unknown) => e);
      assert.ok(error instanceof SecretStoreUnavailableError, String(error));
      assert.match(error.message, /"flaky".*HTTP 503/);
      assert.ok(!error.message.includes("flaky-secret-value"));
      assert.ok(!String((error as Error).cause).includes("flaky-secret-value"));
      assert.equal(await store.get("flaky"), "flaky-secret-value");
    });

    await t.step("500 after retries is 'unavailable'", async () => {
      vault.setSecret("broken", "x");
      vault.failNext(500, 2);
      await assert.rejects(
        new KeyVaultSecretStore(client()).get("broken"),
        SecretStoreUnavailableError,
      );
    });

    await t.step("a refused token is 'unavailable'", async () => {
      vault.setSecret("guarded", "x");
      const wrong = new SecretClient(vault.url, new FixedTokenCredential("wrong-token"), {
        tlsOptions: { ca: certificates.caCert },
        disableChallengeResourceVerification: true,
        retryOptions: { maxRetries: 0 },
      });
      await assert.rejects(
        new KeyVaultSecretStore(wrong).get("guarded"),
        SecretStoreUnavailableError,
      );
    });

    await t.step("an unreachable vault is 'unavailable'", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      listener.close();
      const store = new KeyVaultSecretStore(client({ url: `https://127.0.0.1:${port}` }));
      await assert.rejects(store.get("anything"), SecretStoreUnavailableError);
    });

    await t.step("an untrusted certificate is 'unavailable'", async () => {
      vault.setSecret("tls", "x");
      const store = new KeyVaultSecretStore(client({ ca: false }));
      const error = await store.get("tls").catch((e: unknown) => e);
      assert.ok(error instanceof SecretStoreUnavailableError, String(error));
      assert.match(error.message, /certificate/);
    });

    await t.step("plain HTTP is refused by the SDK; no token ever leaves over it", async () => {
      // The SDK will not talk to an http:// vault at all ("Cannot connect to http://… while
      // allowInsecureConnection is false"). Even with allowInsecureConnection, core-rest-pipeline's bearer
      // policy refuses to attach a token to a non-TLS URL. Hence the fake vault is served over TLS.
      vault.setSecret("plain", "x");
      const before = vault.requests.length;
      const error = await new KeyVaultSecretStore(client({ url: vault.plainUrl })).get("plain")
        .catch((e: unknown) => e);
      assert.ok(error instanceof SecretStoreUnavailableError, String(error));
      assert.match(error.message, /allowInsecureConnection/);
      assert.equal(vault.requests.length, before, "nothing reached the server");

      const insecure = new SecretClient(vault.plainUrl, new FixedTokenCredential(vault.token), {
        allowInsecureConnection: true,
        disableChallengeResourceVerification: true,
        retryOptions: { maxRetries: 0 },
      });
      const second = await new KeyVaultSecretStore(insecure).get("plain").catch((e: unknown) => e);
      assert.ok(second instanceof SecretStoreUnavailableError, String(second));
      assert.ok(
        vault.requests.slice(before).every((r) => !r.authorized),
        "no token sent over HTTP",
      );
    });

    await t.step("maps '_' and '.' to '-' for Key Vault", async () => {
      assert.equal(keyVaultSecretName("spn_clientid"), "spn-clientid");
      assert.equal(keyVaultSecretName("name.with-dots_1"), "name-with-dots-1");
      assert.equal(keyVaultSecretName("Already-Fine9"), "Already-Fine9");
      assert.throws(() => keyVaultSecretName("../x"), InvalidSecretNameError);
      vault.setSecret("password-key", "mapped");
      assert.equal(await new KeyVaultSecretStore(client()).get("password_key"), "mapped");
    });

    await t.step("refuses unsafe names without a request", async () => {
      const before = vault.requests.length;
      await assert.rejects(
        new KeyVaultSecretStore(client()).get("../etc/passwd"),
        InvalidSecretNameError,
      );
      assert.equal(vault.requests.length, before);
    });
  });
});

Deno.test("keyVaultSecretStoreFromEnv", async (t) => {
  await t.step("requires an https:// AZURE_KEYVAULT_URL and a valid TTL", () => {
    assert.throws(() => keyVaultSecretStoreFromEnv({}), KeyVaultConfigurationError);
    assert.throws(
      () => keyVaultSecretStoreFromEnv({ AZURE_KEYVAULT_URL: "http://vault.example" }),
      KeyVaultConfigurationError,
    );
    assert.throws(
      () =>
        keyVaultSecretStoreFromEnv({
          AZURE_KEYVAULT_URL: "https://v.vault.azure.net",
          AZURE_KEYVAULT_CACHE_TTL_SECONDS: "soon",
        }),
      KeyVaultConfigurationError,
    );
  });

  await t.step("picks the credential from the environment", () => {
    const secret = { AZURE_TENANT_ID: "t", AZURE_CLIENT_ID: "c", AZURE_CLIENT_SECRET: "s" };
    assert.equal(keyVaultCredentialFromEnv(secret).kind, "client-secret");
    assert.equal(
      keyVaultCredentialFromEnv({
        AZURE_TENANT_ID: "t",
        AZURE_CLIENT_ID: "c",
        AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/azure/tokens/azure-identity-token",
      }).kind,
      "workload-identity",
    );
    assert.throws(
      () => keyVaultCredentialFromEnv({ AZURE_FEDERATED_TOKEN_FILE: "/f" }),
      KeyVaultConfigurationError,
    );
    assert.equal(keyVaultCredentialFromEnv({}).kind, "managed-identity");
    assert.equal(keyVaultCredentialFromEnv({ AZURE_CLIENT_ID: "c" }).kind, "managed-identity");
    assert.equal(
      keyVaultCredentialFromEnv({ ...secret, AZURE_CLIENT_SECRET: " " }).kind,
      "managed-identity",
    );
  });

  await t.step("reads a secret with a given credential", async () => {
    await withVault(async ({ vault, certificates }) => {
      vault.setSecret("approvalserviceapikey", "k");
      const { store, credentialKind } = keyVaultSecretStoreFromEnv(
        { AZURE_KEYVAULT_URL: vault.url },
        {
          caCertificates: certificates.caCert,
          disableChallengeResourceVerification: true,
          credential: new FixedTokenCredential(vault.token),
        },
      );
      assert.equal(credentialKind, "given");
      assert.equal(await store.get("approvalserviceapikey"), "k");
    });
  });

  await t.step(
    "client secret via AZURE_AUTHORITY_HOST gets a token from the fake endpoint",
    async () => {
      await withVault(async ({ vault, certificates }) => {
        vault.setSecret("metadataserviceapikey", "m");
        const env = {
          AZURE_KEYVAULT_URL: vault.url,
          AZURE_AUTHORITY_HOST: vault.url,
          AZURE_TENANT_ID: vault.tenantId,
          AZURE_CLIENT_ID: "test-client-id",
          AZURE_CLIENT_SECRET: "test-client-secret",
        };
        const { store, credentialKind } = keyVaultSecretStoreFromEnv(env, {
          caCertificates: certificates.caCert,
          disableChallengeResourceVerification: true,
        });
        assert.equal(credentialKind, "client-secret");
        assert.equal(await store.get("metadataserviceapikey"), "m");
        assert.ok(vault.tokenRequests >= 1);

        const bad = keyVaultSecretStoreFromEnv({ ...env, AZURE_CLIENT_SECRET: "wrong" }, {
          caCertificates: certificates.caCert,
          disableChallengeResourceVerification: true,
        });
        const error = await bad.store.get("metadataserviceapikey").catch((e: unknown) => e);
        assert.ok(error instanceof SecretStoreUnavailableError, String(error));
        assert.ok(!error.message.includes("wrong"));
      });
    },
  );
});
