/**
 * The data API's configuration through the gateway's composition root: off by default, the clients file
 * checked at startup, keys from the secret store, nonces in the release store's database, and every read
 * on the audit trail at shutdown.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import postgres from "postgres";
import { quotePostgresIdentifier } from "../../adapters/postgres/postgres_dialect.ts";
import { postgresClientOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { verifyAuditChain } from "../../domain/audit.ts";
import { postgresConnectionOptions } from "../../tests/support/databases.ts";
import { hawk } from "../../tests/support/data_api_world.ts";
import {
  ignorePostgres,
  LOCAL_DATABASES_WITHOUT_TLS,
  POSTGRES,
  randomName,
} from "../../tests/support/services.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { memoryLogger } from "../_shared/log.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { buildApprovalService } from "./main.ts";
import { dataApiFromEnv, readDataApiClients } from "./data_api_from_env.ts";

const KEYS = {
  approvalserviceapikey: "approval-key-0123456789",
  metadataserviceapikey: "metadata-key-0123456789",
  publishserviceapikey: "publish-key-0123456789",
  "hawk-pipeline-a": "pipeline-a-hawk-key-0123456789abcdef",
};

const CLIENTS_YAML = `
# Who may read what (docs/data-api.md)
clients:
  - id: pipeline-a
    secret_name: hawk-pipeline-a
    scopes:
      - project: proj_a
        tables: "*"
`;

async function aDeployment(clients: string = CLIENTS_YAML) {
  const root = await Deno.makeTempDir({ prefix: "cr8tor_data_api_" });
  await Deno.mkdir(`${root}/secrets`);
  for (const [name, value] of Object.entries(KEYS)) {
    await Deno.writeTextFile(`${root}/secrets/${name}`, value);
  }
  await Deno.writeTextFile(`${root}/clients.yaml`, clients);
  return {
    root,
    env: {
      SECRETS_MNT_PATH: `${root}/secrets`,
      STATE_DIR: `${root}/state`,
      AUDIT_LOG_PATH: `${root}/audit.jsonl`,
      DATA_API: "on",
      DATA_API_CLIENTS_FILE: `${root}/clients.yaml`,
    } as Record<string, string>,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

function signedGet(path: string, credentials = {
  id: "pipeline-a",
  key: KEYS["hawk-pipeline-a"],
  algorithm: "sha256",
}) {
  const url = `http://gateway.example:8000${path}`;
  const { header, artifacts } = hawk.client.header(url, "GET", { credentials });
  return {
    request: new Request(url, { headers: { authorization: header, host: "gateway.example:8000" } }),
    artifacts,
    credentials,
  };
}

Deno.test("dataApiFromEnv() is off unless DATA_API=on", async () => {
  const log = memoryLogger();
  assert.equal(await dataApiFromEnv({}, new MemorySecretStore({}), undefined, log), undefined);
  assert.equal(
    await dataApiFromEnv({ DATA_API: "off" }, new MemorySecretStore({}), undefined, log),
    undefined,
  );
  await assert.rejects(
    dataApiFromEnv({ DATA_API: "yes" }, new MemorySecretStore({}), undefined, log),
    (e) => e instanceof ConfigError && /DATA_API/.test(e.message),
  );
});

Deno.test("dataApiFromEnv() refuses a bad configuration with a clear message", async (t) => {
  const cases: [string, string | undefined, Record<string, string>, RegExp][] = [
    ["no clients file", undefined, {}, /DATA_API_CLIENTS_FILE is not set/],
    ["not YAML", "clients: [", {}, /not YAML or JSON/],
    [
      "an invalid scope",
      "clients:\n  - id: a\n    secret_name: s\n    scopes:\n      - tables: '*'\n",
      {},
      /clients\.0\.scopes\.0: give exactly one of project or release/,
    ],
    [
      "a missing key",
      "clients:\n  - id: a\n    secret_name: nowhere\n    scopes: [{project: p, tables: '*'}]\n",
      {},
      /HAWK key of data API client "a" \(secret "nowhere"\)/,
    ],
    [
      "a short key",
      "clients:\n  - id: a\n    secret_name: short\n    scopes: [{project: p, tables: '*'}]\n",
      { short: "too-short" },
      /shorter than 32 characters/,
    ],
    ["a bad flush period", CLIENTS_YAML, {}, /DATA_API_AUDIT_FLUSH_SECONDS/],
  ];
  for (const [name, file, secrets, message] of cases) {
    await t.step(name, async () => {
      const dir = await Deno.makeTempDir();
      try {
        const env: Record<string, string> = { DATA_API: "on", STATE_DIR: `${dir}/state` };
        if (file !== undefined) {
          await Deno.writeTextFile(`${dir}/clients.yaml`, file);
          env.DATA_API_CLIENTS_FILE = `${dir}/clients.yaml`;
        }
        if (name === "a bad flush period") env.DATA_API_AUDIT_FLUSH_SECONDS = "0";
        await assert.rejects(
          dataApiFromEnv(env, new MemorySecretStore(secrets), undefined, memoryLogger()),
          (e) => {
            assert.ok(e instanceof ConfigError, String(e));
            assert.match(e.message, message);
            assert.ok(!e.message.includes("too-short"), "the key is never in the message");
            return true;
          },
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});

Deno.test("readDataApiClients() reads JSON as well as YAML", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/clients.json`,
      JSON.stringify({
        clients: [{ id: "b", secret_name: "s", scopes: [{ release: "r1", tables: ["t"] }] }],
      }),
    );
    assert.deepEqual(readDataApiClients(`${dir}/clients.json`).clients[0]!.scopes, [
      { release: "r1", tables: ["t"] },
    ]);
    assert.throws(() => readDataApiClients(`${dir}/missing.json`), ConfigError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("approval main: DATA_API=on serves /data/v1 with HAWK, nonces in releases.sqlite, reads audited at shutdown", async () => {
  await using d = await aDeployment();
  const lines: string[] = [];
  const service = await buildApprovalService(d.env, (line) => void lines.push(line));
  let closed = false;
  try {
    const { request, artifacts, credentials } = signedGet("/data/v1/releases");
    const res = await service.fetch(request);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.deepEqual(JSON.parse(text).payload, { releases: [], next: null });
    const headers: Record<string, string> = {};
    res.headers.forEach((value, name) => headers[name] = value);
    hawk.client.authenticate({ headers }, credentials, artifacts, {
      payload: text,
      required: true,
    });
    const replay = await service.fetch(
      new Request(request.url, { headers: request.headers }),
    );
    assert.equal(replay.status, 401);
    const unsigned = await service.fetch(
      new Request("http://gateway.example:8000/data/v1/releases", {
        headers: { "x-api-key": KEYS.approvalserviceapikey },
      }),
    );
    assert.equal(unsigned.status, 401);
    const db = new DatabaseSync(`${d.root}/state/releases.sqlite`, { readOnly: true });
    try {
      assert.equal(db.prepare("SELECT count(*) AS n FROM hawk_nonces").get()?.n, 1);
    } finally {
      db.close();
    }
    assert.ok(lines.some((l) => l.includes('"data_api"') && l.includes("pipeline-a")));
    assert.ok(!lines.some((l) => l.includes(KEYS["hawk-pipeline-a"])), "the key is never logged");
    await service.close?.();
    closed = true;
    const trail = await Deno.readTextFile(`${d.root}/audit.jsonl`);
    assert.equal((await verifyAuditChain(trail)).intact, true);
    const records = trail.trim().split("\n").map((l) => JSON.parse(l));
    const reads = records.filter((r) => r.kind === "data_reads").flatMap((r) => r.reads);
    assert.deepEqual(reads.map((r) => [r.client_id, r.action, r.status]), [
      ["pipeline-a", "list_releases", 200],
    ]);
  } finally {
    if (!closed) await service.close?.();
  }
});

Deno.test({
  name:
    "approval main: with RELEASE_STORE=postgresql, nonces are shared in the release store's schema",
  ignore: ignorePostgres,
  fn: async () => {
    const database = randomName("data_api_main");
    const admin = postgres(postgresClientOptions(postgresConnectionOptions()));
    await admin.unsafe(`create database ${quotePostgresIdentifier(database)}`);
    try {
      await using d = await aDeployment();
      await Deno.writeTextFile(`${d.root}/secrets/releasestorepassword`, "unused-by-trust");
      const env = {
        ...d.env,
        RELEASE_STORE: "postgresql",
        RELEASE_STORE_POSTGRESQL_HOST: POSTGRES.host,
        RELEASE_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
        RELEASE_STORE_POSTGRESQL_DATABASE: database,
        RELEASE_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
        RELEASE_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "releasestorepassword",
        RELEASE_STORE_POSTGRESQL_SSLMODE: LOCAL_DATABASES_WITHOUT_TLS.SOURCE_POSTGRES_SSLMODE!,
      };
      const one = await buildApprovalService(env, () => {});
      const two = await buildApprovalService(env, () => {});
      try {
        const { request } = signedGet("/data/v1/releases");
        assert.equal((await one.fetch(request.clone())).status, 200);
        assert.equal((await two.fetch(request.clone())).status, 401, "a replay to another replica");
        const sql = postgres(postgresClientOptions({ ...postgresConnectionOptions(), database }));
        try {
          const [row] = await sql.unsafe(
            "select count(*)::int as n from cr8tor_releases.hawk_nonces",
          );
          assert.equal(row?.n, 1);
        } finally {
          await sql.end({ timeout: 5 });
        }
      } finally {
        await one.close?.();
        await two.close?.();
      }
    } finally {
      await admin.unsafe(
        `drop database if exists ${quotePostgresIdentifier(database)} with (force)`,
      );
      await admin.end({ timeout: 5 });
    }
  },
});
