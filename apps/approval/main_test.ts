/**
 * The gateway's composition root with and without `APPROVAL_POLICY_FILE`: what startup logs, what it
 * refuses, and the release store in `/ready`.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { quotePostgresIdentifier } from "../../adapters/postgres/postgres_dialect.ts";
import { postgresClientOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { postgresConnectionOptions } from "../../tests/support/databases.ts";
import {
  ignorePostgres,
  LOCAL_DATABASES_WITHOUT_TLS,
  POSTGRES,
  randomName,
} from "../../tests/support/services.ts";

import { ConfigError } from "../_shared/app_errors.ts";
import { startKeyServer, TEST_AUDIENCE } from "../../tests/support/identity_providers.ts";
import { buildApprovalService } from "./main.ts";

const KEYS = {
  approvalserviceapikey: "approval-key-0123456789",
  metadataserviceapikey: "metadata-key-0123456789",
  publishserviceapikey: "publish-key-0123456789",
};

const POLICY = {
  approval_types: { OUTPUT_CHECKER: { roles: ["output-checker"] } },
  gates: [{ name: "disclosure", before: "publish", require: { OUTPUT_CHECKER: 2 } }],
  destinations: ["LSC"],
};

/** Log lines kept in memory. */
function memorySink() {
  const lines: string[] = [];
  return { lines, sink: (line: string) => void lines.push(line) };
}

async function aDeployment() {
  const root = await Deno.makeTempDir({ prefix: "cr8tor_gates_main_" });
  await Deno.mkdir(`${root}/secrets`);
  for (const [name, value] of Object.entries(KEYS)) {
    await Deno.writeTextFile(`${root}/secrets/${name}`, value);
  }
  await Deno.writeTextFile(`${root}/policy.json`, JSON.stringify(POLICY));
  return {
    root,
    env: { SECRETS_MNT_PATH: `${root}/secrets`, STATE_DIR: `${root}/state` } as Record<
      string,
      string
    >,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("approval main: without a policy the log says there are no gates, and releases are still kept", async () => {
  await using d = await aDeployment();
  const log = memorySink();
  const service = await buildApprovalService(d.env, log.sink);
  await service.close?.();
  assert.ok(log.lines.some((l) => l.includes('"no_approval_policy"')));
  assert.ok(
    (await Array.fromAsync(Deno.readDir(`${d.root}/state`))).some((e) =>
      e.name === "releases.sqlite"
    ),
    "the SQLite release store is in STATE_DIR",
  );
});

Deno.test("approval main: a policy without OIDC stops startup with a clear message", async () => {
  await using d = await aDeployment();
  const log = memorySink();
  await assert.rejects(
    buildApprovalService({ ...d.env, APPROVAL_POLICY_FILE: `${d.root}/policy.json` }, log.sink),
    (e) =>
      e instanceof ConfigError && /APPROVAL_POLICY_FILE is set but OIDC_ISSUER_URL is not/.test(
        e.message,
      ),
  );
});

Deno.test("approval main: with a policy and OIDC, the SQLite release store is opened and ready", async () => {
  await using d = await aDeployment();
  await using idp = await startKeyServer();
  const log = memorySink();
  const service = await buildApprovalService({
    ...d.env,
    APPROVAL_POLICY_FILE: `${d.root}/policy.json`,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
  }, log.sink);
  try {
    assert.ok(log.lines.some((l) => l.includes('"approval_policy"')));
    assert.ok(log.lines.some((l) => l.includes('"release_store"') && l.includes("sqlite")));
    await Deno.stat(`${d.root}/state/releases.sqlite`);
    const ready = await service.fetch(
      new Request("http://svc.local/ready", {
        headers: { "x-api-key": KEYS.approvalserviceapikey },
      }),
    );
    const body = await ready.json();
    const checks = body.payload.checks as { name: string; ok: boolean }[];
    assert.deepEqual(checks.find((c) => c.name === "release store"), {
      name: "release store",
      ok: true,
    });
  } finally {
    await service.close?.();
  }
});

Deno.test("approval main: RELEASE_STORE=postgresql needs its settings, named in the message", async () => {
  await using d = await aDeployment();
  await using idp = await startKeyServer();
  await assert.rejects(
    buildApprovalService({
      ...d.env,
      APPROVAL_POLICY_FILE: `${d.root}/policy.json`,
      OIDC_ISSUER_URL: idp.issuer,
      OIDC_AUDIENCE: TEST_AUDIENCE,
      RELEASE_STORE: "postgresql",
    }, memorySink().sink),
    (e) => e instanceof ConfigError && /RELEASE_STORE_POSTGRESQL_HOST/.test(e.message),
  );
});

Deno.test({
  name: "approval main: RELEASE_STORE=postgresql opens the shared release store",
  ignore: ignorePostgres,
  fn: async () => {
    const database = randomName("releases_main");
    const admin = postgres(postgresClientOptions(postgresConnectionOptions()));
    await admin.unsafe(`create database ${quotePostgresIdentifier(database)}`);
    try {
      await using d = await aDeployment();
      await using idp = await startKeyServer();
      await Deno.writeTextFile(`${d.root}/secrets/releasestorepassword`, "unused-by-trust");
      const log = memorySink();
      const service = await buildApprovalService({
        ...d.env,
        APPROVAL_POLICY_FILE: `${d.root}/policy.json`,
        OIDC_ISSUER_URL: idp.issuer,
        OIDC_AUDIENCE: TEST_AUDIENCE,
        RELEASE_STORE: "postgresql",
        RELEASE_STORE_POSTGRESQL_HOST: POSTGRES.host,
        RELEASE_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
        RELEASE_STORE_POSTGRESQL_DATABASE: database,
        RELEASE_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
        RELEASE_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "releasestorepassword",
        RELEASE_STORE_POSTGRESQL_SSLMODE: LOCAL_DATABASES_WITHOUT_TLS.SOURCE_POSTGRES_SSLMODE!,
      }, log.sink);
      try {
        assert.ok(log.lines.some((l) => l.includes('"release_store"') && l.includes("postgresql")));
        const ready = await service.fetch(
          new Request("http://svc.local/ready", {
            headers: { "x-api-key": KEYS.approvalserviceapikey },
          }),
        );
        // The sub-services are not running: only the release store's check matters here.
        const checks = (await ready.json()).payload.checks as { name: string; ok: boolean }[];
        assert.ok(checks.some((c) => c.name === "release store" && c.ok));
      } finally {
        await service.close?.();
      }
    } finally {
      await admin.unsafe(
        `drop database if exists ${quotePostgresIdentifier(database)} with (force)`,
      );
      await admin.end({ timeout: 5 });
    }
  },
});

Deno.test("approval main: the dashboard needs a policy and UI_BASE_URL, and is served with them", async () => {
  await using d = await aDeployment();
  await using idp = await startKeyServer();
  const log = memorySink();
  await assert.rejects(
    buildApprovalService({ ...d.env, UI_OIDC_CLIENT_ID: "dashboard" }, log.sink),
    (e) => e instanceof ConfigError && /UI_BASE_URL/.test(e.message),
  );
  await assert.rejects(
    buildApprovalService({
      ...d.env,
      UI_OIDC_CLIENT_ID: "dashboard",
      UI_BASE_URL: "http://127.0.0.1:8000",
    }, log.sink),
    (e) =>
      e instanceof ConfigError &&
      /UI_OIDC_CLIENT_ID is set but APPROVAL_POLICY_FILE is not/.test(e.message),
  );
  const service = await buildApprovalService({
    ...d.env,
    APPROVAL_POLICY_FILE: `${d.root}/policy.json`,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
    UI_OIDC_CLIENT_ID: "dashboard",
    UI_BASE_URL: "http://127.0.0.1:8000",
  }, log.sink);
  try {
    const page = await service.fetch(new Request("http://127.0.0.1:8000/ui/"));
    assert.equal(page.status, 401);
    assert.match(await page.text(), /Sign in/);
    assert.ok(log.lines.some((l) => l.includes('"dashboard"')));
  } finally {
    await service.close?.();
  }
});

Deno.test("approval main: without UI_OIDC_CLIENT_ID there is no dashboard", async () => {
  await using d = await aDeployment();
  const service = await buildApprovalService(d.env, memorySink().sink);
  try {
    const page = await service.fetch(new Request("http://127.0.0.1:8000/ui/"));
    assert.equal(page.status, 403);
    await page.body?.cancel();
  } finally {
    await service.close?.();
  }
});
