/**
 * End to end with `SECRETS_PROVIDER=azure-keyvault`: the three services as real processes read their API
 * keys and the source credentials from a fake Azure Key Vault over TLS, with no secret file anywhere. The
 * services trust the fake's certificate authority through Deno's `DENO_CERT` alone (nothing is passed to
 * the SDK), and get their token from the fake's Entra endpoint with a client secret (`AZURE_AUTHORITY_HOST`).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import { PostgresSandbox } from "../support/databases.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  startFakeKeyVault,
} from "../support/fake_key_vault.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startFailing,
  startStack,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEYS = newServiceKeys();
const CLIENT = { id: "e2e-client-id", secret: `client-secret-${crypto.randomUUID()}` };
const TOKEN = `vault-token-${crypto.randomUUID()}`;

const PEOPLE_DDL = `
  create table $s.people (id integer not null primary key, name varchar(40));
  insert into $s.people values (1, 'VAULT-ROW-MARKER');
`;

function request(source: Record<string, unknown>, schema: string): Record<string, unknown> {
  return {
    project_name: "E2eVault",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "csv" },
    source,
    dataset: { name: schema, schema_name: schema, tables: null },
  };
}

/** The `/ready` reply of a service, with its checks (asked with the service's key). */
async function ready(url: string, apiKey: string): Promise<JsonReply> {
  const res = await fetch(`${url}/ready`, { headers: { "x-api-key": apiKey } });
  return { status: res.status, json: await res.json() };
}

/** The message of the `startup_failed` log line. */
function startupError(output: string): string {
  const line = output.split("\n").find((l) => l.includes('"startup_failed"'));
  assert.ok(line, `no startup_failed line in: ${output}`);
  return JSON.parse(line).message;
}

Deno.test({
  name: "e2e: SECRETS_PROVIDER=azure-keyvault, keys and source credentials from the vault",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-vault-"));
    const noSecrets = join(work, "no-secrets"); // never created: nothing may come from files
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_kv");
    const certificates = await makeTestCertificates();
    const vault = startFakeKeyVault({ certificates, token: TOKEN, client: CLIENT });
    let vaultOpen = true;
    const services: ServiceProcess[] = [];
    try {
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(schema, PEOPLE_DDL);
      for (const [name, value] of Object.entries(KEYS)) vault.setSecret(name, value);
      // The services ask for `pg_user` and `pg.password`; Key Vault names may only hold hyphens.
      vault.setSecret("pg-user", pg.role);
      vault.setSecret("pg-password", pg.password);

      const { metadata, publish, approval } = await startStack({
        secrets: noSecrets,
        storage,
        allowedSources: [
          allowedLocalPostgres(
            { username: "pg_user", password: "pg.password" },
            { username: "absent_secret", password: "pg.password" },
          ),
        ],
        env: {
          SECRETS_PROVIDER: "azure-keyvault",
          AZURE_KEYVAULT_URL: vault.url,
          AZURE_AUTHORITY_HOST: vault.url,
          AZURE_TENANT_ID: vault.tenantId,
          AZURE_CLIENT_ID: CLIENT.id,
          AZURE_CLIENT_SECRET: CLIENT.secret,
          // The fake's challenge names vault.azure.net, which 127.0.0.1 is not under.
          AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: "true",
          // Every read goes to the vault, so each step sees what it caused (the cache has unit tests).
          AZURE_KEYVAULT_CACHE_TTL_SECONDS: "0",
          DENO_CERT: join(certificates.directory, "ca.pem"),
        },
      }, services);
      const source = {
        type: "postgresql",
        host_url: POSTGRES.host,
        port: POSTGRES.port,
        database: POSTGRES.database,
        credentials: { username_key: "pg_user", password_key: "pg.password" },
      };
      const reads = (name: string) =>
        vault.requests.filter((r) =>
          r.authorized && r.path.replace(/\/$/, "") === `/secrets/${name}`
        )
          .length;

      await t.step("the services start with their API keys from the vault", () => {
        assert.equal(existsSync(noSecrets), false);
        // The gateway reads all three keys; metadata and publish read their own.
        assert.equal(reads("approvalserviceapikey"), 1);
        assert.ok(reads("metadataserviceapikey") >= 2);
        assert.ok(reads("publishserviceapikey") >= 2);
        assert.ok(vault.tokenRequests >= 3, "each service got its own token");
        for (const service of [metadata, publish, approval]) {
          const line = service.logs.map((l) => JSON.parse(l)).find((l) =>
            l.event === "secrets_provider"
          );
          assert.equal(line?.provider, "azure-keyvault");
          assert.equal(line?.credential, "client-secret");
          assert.deepEqual(line?.ca_bundles, ["DENO_CERT"]);
        }
      });

      await t.step("/ready checks the vault", async () => {
        for (const service of [metadata, publish]) {
          const key = service === metadata ? KEYS.metadataserviceapikey : KEYS.publishserviceapikey;
          const reply = await ready(service.url, key);
          assert.equal(reply.status, 200, JSON.stringify(reply.json));
          assert.deepEqual(reply.json.payload.checks[0], { name: "secrets", ok: true });
        }
        assert.equal((await ready(approval.url, KEYS.approvalserviceapikey)).status, 200);
      });

      await t.step("the gateway authenticates with the vault's keys", async () => {
        const wrong = await postToService(
          `${approval.url}/project/validate`,
          request(source, schema),
          KEYS.metadataserviceapikey,
        );
        assert.equal(wrong.status, 403);
        // Reaching publish and metadata also proves the gateway holds their keys from the vault.
        const before = { user: reads("pg-user"), password: reads("pg-password") };
        const res = await postToService(
          `${approval.url}/project/validate`,
          request(source, schema),
          KEYS.approvalserviceapikey,
        );
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload.tables.map((t: { name: string }) => t.name), ["people"]);
        // publish (its connection check) and metadata (the catalogue) each read both credentials.
        assert.equal(reads("pg-user") - before.user, 2);
        assert.equal(reads("pg-password") - before.password, 2);
      });

      await t.step("package reads the credentials in the publish service", async () => {
        const before = reads("pg-password");
        const res = await postToService(
          `${approval.url}/project/package`,
          request(source, schema),
          KEYS.approvalserviceapikey,
        );
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const csv = await readFile(
          join(storage, "staging/E2eVault/20250611_093000/data/outputs", schema, "people.csv"),
          "utf8",
        );
        assert.equal(csv, "id,name\n1,VAULT-ROW-MARKER\n");
        assert.ok(reads("pg-password") > before);
      });

      await t.step("a missing secret is the same 404 the file store gives", async () => {
        const fileError = await new FileSecretStore(work).get("absent_secret").catch((e) => e);
        const res = await postToService(
          `${approval.url}/project/validate`,
          request({
            ...source,
            credentials: { ...source.credentials, username_key: "absent_secret" },
          }, schema),
          KEYS.approvalserviceapikey,
        );
        assert.equal(res.status, 404, JSON.stringify(res.json));
        assert.equal(res.json.payload.code, "secret_not_found");
        assert.equal(res.json.payload.detail, `PublishService: ${fileError.message}`);
        assert.equal(reads("absent-secret"), 1);
      });

      await t.step(
        "a vault that is down is a 500 'unavailable', and /ready says not ready",
        async () => {
          await vault.close();
          vaultOpen = false;
          const res = await postToService(
            `${approval.url}/project/validate`,
            request(source, schema),
            KEYS.approvalserviceapikey,
          );
          assert.equal(res.status, 500, JSON.stringify(res.json));
          assert.equal(res.json.payload.code, "secret_store_unavailable");
          assert.match(
            res.json.payload.detail,
            // The two credentials are read at once: either may be the one reported.
            /^PublishService: Cannot read secret "(pg_user|pg\.password)" from Azure Key Vault/,
          );
          assert.doesNotMatch(res.json.payload.detail, /Cannot find/);
          for (const service of [metadata, publish]) {
            const key = service === metadata
              ? KEYS.metadataserviceapikey
              : KEYS.publishserviceapikey;
            const reply = await ready(service.url, key);
            assert.equal(reply.status, 503, JSON.stringify(reply.json));
            assert.deepEqual(reply.json.payload.checks[0], {
              name: "secrets",
              ok: false,
              detail: "Azure Key Vault cannot be read",
            });
            assert.ok(!JSON.stringify(reply.json).includes(vault.url));
          }
        },
      );

      await t.step(
        "no log line holds a key, a password, the client secret or a token",
        async () => {
          for (const service of services) await service.stop();
          const logs = services.flatMap((s) => s.logs).join("\n");
          assert.ok(logs.includes('"event":"secrets_unavailable"'), "the outage was logged");
          for (const secret of [...Object.values(KEYS), pg.password, CLIENT.secret, TOKEN]) {
            assert.ok(!logs.includes(secret), "a secret reached the logs");
          }
          assert.ok(!logs.includes("VAULT-ROW-MARKER"), "row data reached the logs");
        },
      );
    } finally {
      for (const service of services) await service.stop();
      if (vaultOpen) await vault.close();
      await removeTestCertificates(certificates);
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});

Deno.test("e2e: a service refuses to start on a bad or unreachable Key Vault setting", async (t) => {
  await t.step("an unknown SECRETS_PROVIDER names the allowed values", async () => {
    const { code, output } = await startFailing("metadata", { SECRETS_PROVIDER: "vault" });
    assert.equal(code, 1);
    assert.equal(
      startupError(output),
      'Cannot start: invalid configuration: SECRETS_PROVIDER: must be one of "file", "azure-keyvault"',
    );
  });

  await t.step("azure-keyvault without AZURE_KEYVAULT_URL", async () => {
    const { code, output } = await startFailing("approval", { SECRETS_PROVIDER: "azure-keyvault" });
    assert.equal(code, 1);
    assert.equal(
      startupError(output),
      'Cannot start: SECRETS_PROVIDER is "azure-keyvault" but AZURE_KEYVAULT_URL is not set',
    );
  });

  await t.step("a vault that does not answer is 'cannot read', not 'not set'", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const { code, output } = await startFailing("publish", {
      SECRETS_PROVIDER: "azure-keyvault",
      AZURE_KEYVAULT_URL: `https://127.0.0.1:${port}`,
      AZURE_TENANT_ID: "tenant",
      AZURE_CLIENT_ID: CLIENT.id,
      AZURE_CLIENT_SECRET: CLIENT.secret,
    });
    assert.equal(code, 1);
    assert.match(
      startupError(output),
      /^Cannot start: cannot read API key "publishserviceapikey": Cannot read secret "publishserviceapikey" from Azure Key Vault/,
    );
    assert.ok(!output.includes(CLIENT.secret));
  });
});
