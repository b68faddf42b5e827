/**
 * Verified TLS to the databases, with the three services as real processes. The local PostgreSQL and
 * MariaDB have no TLS, so TLS-terminating proxies stand in front of them (`tests/support/*_tls_proxy.ts`)
 * with certificates of a throw-away CA, which the services trust through `DENO_CERT` alone, as an
 * operator would trust a private CA. Proves the environment wiring of `SOURCE_POSTGRES_SSLMODE`,
 * `SOURCE_MYSQL_SSLMODE` and `DESTINATION_POSTGRESQL_SSLMODE`; then that a machine in the middle whose
 * certificate the services do not trust, or a server without TLS, never gets the login.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../apps/_shared/app_errors.ts";
import { buildMetadataService } from "../../apps/metadata/main.ts";
import { buildPublishService } from "../../apps/publish/main.ts";
import type { AllowedSource } from "../../domain/allowed_sources.ts";
import { destinationSchemaName } from "../../domain/destination_schema.ts";
import { MysqlSandbox, PostgresSandbox } from "../support/databases.ts";
import { DestinationSandbox } from "../support/destination_databases.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../support/fake_key_vault.ts";
import { startMysqlTlsProxy } from "../support/mysql_tls_proxy.ts";
import { startPostgresTlsProxy } from "../support/postgres_tls_proxy.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import { ignoreMysql, ignorePostgres, MYSQL, POSTGRES, randomName } from "../support/services.ts";
import { assertErrorEnvelope, changedPaths, snapshotTree } from "./_hostile_world.ts";

const KEYS = newServiceKeys();
const PROJECT = "TlsProject";
const START = "20250611_093000";

/** The settings under test: the secure defaults, written out (the test harness opts out otherwise). */
const VERIFIED_TLS = {
  SOURCE_POSTGRES_SSLMODE: "verify-full",
  SOURCE_MYSQL_SSLMODE: "VERIFY_IDENTITY",
  DESTINATION_POSTGRESQL_SSLMODE: "verify-full",
} as const;

const VISITS_DDL = `
  create table $s.visits (id integer not null primary key, clinic varchar(20) not null);
  insert into $s.visits values (1, 'North'), (2, 'South');`;

function source(type: "postgresql" | "mysql", host: string, port: number, database: string) {
  const [user, password] = type === "postgresql"
    ? ["pguser", "pgpassword"]
    : ["myuser", "mypassword"];
  return {
    type,
    host_url: host,
    port,
    database,
    credentials: { username_key: user, password_key: password },
  };
}

function transfer(
  from: ReturnType<typeof source>,
  schema: string,
  destination: Record<string, string>,
) {
  return {
    project_name: PROJECT,
    project_start_time: START,
    destination,
    source: from,
    dataset: { name: "tls", schema_name: schema, tables: [{ name: "visits", columns: null }] },
  };
}

const LSC = { name: "LSC", type: "filestore", format: "csv" };
const POSTGRESQL = { type: "postgresql" };

/** A work folder with the secrets, the filestore and the audit trail. */
async function workspace(secrets: Record<string, string>) {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-tls-"));
  const storage = join(work, "lsc");
  await mkdir(join(work, "secrets"));
  await mkdir(join(storage, "staging"), { recursive: true });
  await mkdir(join(storage, "production"));
  for (const [name, value] of Object.entries({ ...KEYS, ...secrets })) {
    await writeFile(join(work, "secrets", name), value + "\n");
  }
  return { work, secrets: join(work, "secrets"), storage, audit: join(work, "audit.jsonl") };
}

/** The destination settings of the publish service, for a destination database behind `port`. */
function destinationEnv(destination: DestinationSandbox, host: string, port: number) {
  return {
    DESTINATION_POSTGRESQL_HOST: host,
    DESTINATION_POSTGRESQL_PORT: String(port),
    DESTINATION_POSTGRESQL_DATABASE: destination.database,
    DESTINATION_POSTGRESQL_USERNAME: destination.loader,
    DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
    DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: destination.reader,
    DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "readerpassword",
    // Packaging never calls OPAL; nothing listens here.
    DESTINATION_OPAL_HOST: "http://127.0.0.1:9",
    DESTINATION_OPAL_USERNAME: "administrator",
    DESTINATION_OPAL_PASSWORD_SECRET_NAME: "destpassword",
  };
}

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

/** Fails when any service's log or the audit trail holds one of `secrets`. */
async function assertNowhere(
  services: readonly ServiceProcess[],
  auditPath: string,
  secrets: readonly string[],
): Promise<void> {
  const logs = services.flatMap((s) => s.logs).join("\n");
  const audit = await readFile(auditPath, "utf8");
  assert.ok(audit.length > 0, "the audit trail has records");
  for (const value of [...Object.values(KEYS), ...secrets]) {
    assert.ok(!logs.includes(value), `a log line holds ${value}`);
    assert.ok(!audit.includes(value), `the audit trail holds ${value}`);
  }
}

Deno.test({
  name:
    "real processes: sources and the PostgreSQL destination over TLS verified against DENO_CERT",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const certificates = await makeTestCertificates();
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const destination = new DestinationSandbox();
    const schema = randomName("cr8_tls");
    const services: ServiceProcess[] = [];
    let work: string | undefined;
    try {
      await using pgProxy = await startPostgresTlsProxy(certificates);
      await using myProxy = await startMysqlTlsProxy(certificates);
      await pg.createRole();
      await pg.createSchema(schema, VISITS_DDL);
      await my.createUser();
      await my.createDatabase(schema, VISITS_DDL);
      await destination.create();
      const space = await workspace({
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
        destpassword: destination.loaderPassword,
        readerpassword: destination.readerPassword,
      });
      work = space.work;
      const pgSource = source("postgresql", "127.0.0.1", pgProxy.port, POSTGRES.database);
      // VERIFY_IDENTITY checks a host name: MySQL sources are listed by name.
      const mySource = source("mysql", "localhost", myProxy.port, schema);
      const allowed: AllowedSource[] = [
        {
          type: "postgresql",
          host: "127.0.0.1",
          port: pgProxy.port,
          database: POSTGRES.database,
          credentials: [{ username: "pguser", password: "pgpassword" }],
        },
        {
          type: "mysql",
          host: "localhost",
          port: myProxy.port,
          database: schema,
          credentials: [{ username: "myuser", password: "mypassword" }],
        },
      ];
      const { approval } = await startStack({
        secrets: space.secrets,
        storage: space.storage,
        allowedSources: allowed,
        env: {
          ...VERIFIED_TLS,
          DENO_CERT: join(certificates.directory, "ca.pem"),
          AUDIT_LOG_PATH: space.audit,
        },
        publishEnv: destinationEnv(destination, "localhost", pgProxy.port),
      }, services);

      await t.step("validate reads both sources' catalogues over TLS", async () => {
        for (const from of [pgSource, mySource]) {
          const res = await post(`${approval.url}/project/validate`, transfer(from, schema, LSC));
          assert.equal(res.status, 200, JSON.stringify(res.json));
          assert.deepEqual(
            res.json.payload.tables.map((x: { name: string }) => x.name),
            ["visits"],
          );
        }
      });

      await t.step("package reads PostgreSQL into the filestore over TLS", async () => {
        const res = await post(`${approval.url}/project/package`, transfer(pgSource, schema, LSC));
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload, {
          data_retrieved: [{ file_path: `data/outputs/${schema}/visits.csv` }],
        });
        const staged = join(space.storage, "staging", PROJECT, START, "data/outputs", schema);
        assert.equal(
          await readFile(join(staged, "visits.csv"), "utf8"),
          "id,clinic\n1,North\n2,South\n",
        );
      });

      await t.step("package loads MariaDB into the destination over TLS", async () => {
        const res = await post(
          `${approval.url}/project/package`,
          transfer(mySource, schema, POSTGRESQL),
        );
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const target = destinationSchemaName(PROJECT, START, schema);
        const rows = await destination.admin().unsafe(
          `select id, clinic from "${target}".visits order by id`,
        );
        assert.deepEqual(rows.map((r) => ({ ...r })), [
          { id: 1, clinic: "North" },
          { id: 2, clinic: "South" },
        ]);
      });

      await t.step("every connection was TLS, and nothing weakened TLS", async () => {
        assert.ok(pgProxy.connections.length >= 4, "sources, startup recovery and loads");
        for (const c of [...pgProxy.connections, ...myProxy.connections]) {
          assert.match(c.tls ?? "none", /^TLSv1\.[23]$/);
        }
        assert.ok(myProxy.connections.every((c) => c.loggedIn));
        const logs = services.flatMap((s) => s.logs).join("\n");
        assert.ok(!logs.includes("database_tls_"), "a weakened-TLS warning was logged");
        await assertNowhere(services, space.audit, [
          pg.password,
          my.password,
          destination.loaderPassword,
        ]);
      });
    } finally {
      await Promise.all(services.map((s) => s.stop()));
      await pg.cleanup();
      await my.cleanup();
      await destination.cleanup();
      await removeTestCertificates(certificates);
      if (work !== undefined) await rm(work, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name:
    "real processes: a machine in the middle without a trusted certificate, or a server without TLS, never gets the login",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const trusted = await makeTestCertificates();
    const attacker: TestCertificates = await makeTestCertificates();
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const destination = new DestinationSandbox();
    const schema = randomName("cr8_tls");
    const services: ServiceProcess[] = [];
    let work: string | undefined;
    try {
      await using trustedPg = await startPostgresTlsProxy(trusted);
      await using forgedPg = await startPostgresTlsProxy(attacker);
      await using forgedMy = await startMysqlTlsProxy(attacker);
      await pg.createRole();
      await pg.createSchema(schema, VISITS_DDL);
      await my.createUser();
      await my.createDatabase(schema, VISITS_DDL);
      await destination.create();
      const space = await workspace({
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
        destpassword: destination.loaderPassword,
        readerpassword: destination.readerPassword,
      });
      work = space.work;
      const entry = (type: "postgresql" | "mysql", host: string, port: number) => ({
        type,
        host,
        port,
        database: type === "postgresql" ? POSTGRES.database : schema,
        credentials: [
          type === "postgresql"
            ? { username: "pguser", password: "pgpassword" }
            : { username: "myuser", password: "mypassword" },
        ],
      });
      const targets = {
        "PostgreSQL behind a forged certificate": entry("postgresql", "127.0.0.1", forgedPg.port),
        "MariaDB behind a forged certificate": entry("mysql", "localhost", forgedMy.port),
        "PostgreSQL without TLS": entry("postgresql", "127.0.0.1", POSTGRES.port),
        "MariaDB without TLS": entry("mysql", "localhost", MYSQL.port),
      };
      const reasons: Record<keyof typeof targets, RegExp> = {
        "PostgreSQL behind a forged certificate":
          /TLS handshake failed \(sslmode verify-full\): unable to verify the first certificate/,
        "MariaDB behind a forged certificate":
          /TLS handshake failed \(ssl-mode VERIFY_IDENTITY\): unable to verify the first certificate/,
        "PostgreSQL without TLS":
          /does not accept TLS connections .*sslmode verify-full never falls back to plain text/,
        "MariaDB without TLS":
          /does not accept TLS connections, and ssl-mode VERIFY_IDENTITY never falls back/,
      };
      const stack = await startStack({
        secrets: space.secrets,
        storage: space.storage,
        allowedSources: [
          ...Object.values(targets),
          entry("postgresql", "127.0.0.1", trustedPg.port),
        ],
        env: {
          ...VERIFIED_TLS,
          // The services trust the test CA only: the forged certificates chain to another one.
          DENO_CERT: join(trusted.directory, "ca.pem"),
          AUDIT_LOG_PATH: space.audit,
        },
        // The destination is behind the forged certificate too.
        publishEnv: destinationEnv(destination, "localhost", forgedPg.port),
      }, services);
      const before = await snapshotTree(space.storage);
      const passwords = [pg.password, my.password, destination.loaderPassword];
      const logs = () => services.flatMap((s) => s.logs).join("\n");

      for (const [name, allowed] of Object.entries(targets)) {
        const reason = reasons[name as keyof typeof targets];
        await t.step(`${name}: validate and package are 502 source_connection_failed`, async () => {
          const from = source(allowed.type, allowed.host, allowed.port, allowed.database);
          for (
            const [url, key] of [
              [`${stack.metadata.url}/metadata/project`, KEYS.metadataserviceapikey],
              [`${stack.publish.url}/data-publish/package`, KEYS.publishserviceapikey],
              [`${stack.approval.url}/project/validate`, KEYS.approvalserviceapikey],
            ]
          ) {
            const reply = await postToService(url!, transfer(from, schema, LSC), key!);
            assert.equal(reply.status, 502, JSON.stringify(reply.json));
            const payload = assertErrorEnvelope(reply.json, {
              code: "source_connection_failed",
              forbidden: passwords,
            });
            // The reason is plain to the operator in the log; the reply gives the fixed sentence only.
            assert.match(`${payload.detail}\n${logs()}`, reason);
          }
        });
      }

      await t.step("a destination behind a forged certificate: 502, nothing loaded", async () => {
        const from = source("postgresql", "127.0.0.1", trustedPg.port, POSTGRES.database);
        const reply = await post(
          `${stack.approval.url}/project/package`,
          transfer(from, schema, POSTGRESQL),
        );
        assert.equal(reply.status, 502, JSON.stringify(reply.json));
        const payload = assertErrorEnvelope(reply.json, {
          code: "destination_unavailable",
          forbidden: passwords,
        });
        assert.match(
          `${payload.detail}\n${logs()}`,
          /TLS handshake failed \(sslmode verify-full\): unable to verify the first certificate/,
        );
        const schemas = await destination.admin()<{ name: string }[]>`
          select nspname as name from pg_namespace where nspname like ${PROJECT.toLowerCase() + "%"}
             or nspname like 'Cr8torLoad_%'`;
        assert.deepEqual(schemas.map((s) => s.name), []);
      });

      await t.step("no TLS handshake with a forged certificate finished: no login was sent", () => {
        assert.ok(forgedPg.connections.length >= 4, "sources, startup recovery, destination");
        assert.ok(forgedMy.connections.length >= 3);
        for (const c of [...forgedPg.connections, ...forgedMy.connections]) {
          assert.deepEqual([c.askedForTls, c.tls], [true, null]);
        }
        assert.ok(forgedMy.connections.every((c) => !c.loggedIn));
      });

      await t.step("nothing was staged, and no secret is in a log or the audit trail", async () => {
        assert.deepEqual(changedPaths(before, await snapshotTree(space.storage)), []);
        await assertNowhere(services, space.audit, passwords);
      });
    } finally {
      await Promise.all(services.map((s) => s.stop()));
      await pg.cleanup();
      await my.cleanup();
      await destination.cleanup();
      await removeTestCertificates(trusted);
      await removeTestCertificates(attacker);
      if (work !== undefined) await rm(work, { recursive: true, force: true });
    }
  },
});

Deno.test("startup refuses an sslmode that may fall back to plain text, and warns about weakened ones", async () => {
  const { work, secrets } = await workspace({});
  try {
    const base = { SECRETS_MNT_PATH: secrets, PORT: "0" };
    const destination = {
      DESTINATION_POSTGRESQL_HOST: "127.0.0.1",
      DESTINATION_POSTGRESQL_PORT: "1", // nothing listens: the startup sweep just logs its failure
      DESTINATION_POSTGRESQL_DATABASE: "dest",
      DESTINATION_POSTGRESQL_USERNAME: "loader",
      DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
      DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: "reader",
      DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "readerpassword",
      DESTINATION_OPAL_HOST: "http://127.0.0.1:9",
      DESTINATION_OPAL_USERNAME: "administrator",
      DESTINATION_OPAL_PASSWORD_SECRET_NAME: "opalpassword",
    };
    for (
      const [build, env, message] of [
        [buildMetadataService, { SOURCE_POSTGRES_SSLMODE: "prefer" }, /SOURCE_POSTGRES_SSLMODE/],
        [buildMetadataService, { SOURCE_MYSQL_SSLMODE: "PREFERRED" }, /SOURCE_MYSQL_SSLMODE/],
        [buildPublishService, { SOURCE_POSTGRES_SSLMODE: "allow" }, /SOURCE_POSTGRES_SSLMODE/],
        [
          buildPublishService,
          { ...destination, DESTINATION_POSTGRESQL_SSLMODE: "prefer" },
          /DESTINATION_POSTGRESQL_SSLMODE: "prefer" may fall back to plain text/,
        ],
      ] as const
    ) {
      await assert.rejects(build({ ...base, ...env }, () => {}), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, /^Cannot start: invalid configuration: /);
        assert.match(e.message, message);
        return true;
      });
    }

    const lines: string[] = [];
    await buildPublishService({
      ...base,
      ...destination,
      SOURCE_POSTGRES_SSLMODE: "disable",
      SOURCE_MYSQL_SSLMODE: "REQUIRED",
      DESTINATION_POSTGRESQL_SSLMODE: "require",
    }, (line) => lines.push(line));
    const warnings = lines.map((line) => JSON.parse(line))
      .filter((l) => l.event.startsWith("database_tls_"))
      .map((l) => `${l.level} ${l.event} ${l.variable}`);
    assert.deepEqual(warnings, [
      "warn database_tls_disabled SOURCE_POSTGRES_SSLMODE",
      "warn database_tls_unverified SOURCE_MYSQL_SSLMODE",
      "warn database_tls_unverified DESTINATION_POSTGRESQL_SSLMODE",
    ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
