/**
 * End to end, the PostgreSQL destination: three real processes, a real PostgreSQL (source and
 * destination) and MariaDB, a fake OPAL over HTTP. Validate, package two datasets into the destination
 * database and publish them through OPAL for a project named as the CLI's template names it, and check
 * the schema and OPAL names, what the read-only role and OPAL end up with; then OPAL failing midway and a
 * re-run.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MysqlSandbox, PostgresSandbox } from "../support/databases.ts";
import { DestinationSandbox } from "../support/destination_databases.ts";
import { FakeOpal } from "../support/fake_opal.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import { canonicalJson } from "../../domain/audit.ts";
import { sha512Hex, verifyReceipt } from "../../domain/release_receipt.ts";
import {
  allowedLocalMysql,
  allowedLocalPostgres,
  ignoreMysql,
  ignorePostgres,
  MYSQL,
  POSTGRES,
  randomName,
} from "../support/services.ts";

const KEYS = newServiceKeys();

/** The project name of the CLI's template (`cr8-cookiecutter`'s `cookiecutter.json`). */
const PROJECT = "CR8TOR Demo Project";
/**
 * Its identifier, written out as the README documents it: lower-cased, other characters as `_`, and 8
 * hex digits of the SHA-256 of the name, since the mapping changed it.
 */
const IDENTIFIER = `cr8tor_demo_project_${
  createHash("sha256").update(PROJECT, "utf8").digest("hex").slice(0, 8)
}`;
const START = "20250611_093000";

const VISITS_DDL = (ts: string) => `
  create table $s.visits (
    id integer not null primary key,
    clinic varchar(20) not null,
    cost decimal(10,2),
    seen_at ${ts}
  );
  insert into $s.visits values
    (1, 'North, "A"', 12.50, '2020-01-01 10:00:00.25'),
    (2, 'South', null, null);
  create table $s.secrets (id integer primary key, note text);
  insert into $s.secrets values (1, 'not approved');
`;

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

Deno.test({
  name: "e2e: package into PostgreSQL from PostgreSQL and MariaDB, then publish through OPAL",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-pgdest-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const destination = new DestinationSandbox();
    await using opal = await FakeOpal.start();
    // Short: "{identifier}_{start}_{schema}" must fit PostgreSQL's 63 bytes (28 + 17 + 15 here).
    const pgSchema = randomName("sp");
    const myDatabase = randomName("sm");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(pgSchema, VISITS_DDL("timestamp"));
      await my.createUser();
      await my.createDatabase(myDatabase, VISITS_DDL("datetime(6)"));
      await destination.create();
      const files = {
        ...KEYS,
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
        destpassword: destination.loaderPassword,
        readerpassword: destination.readerPassword,
        opalpassword: opal.admin.password,
      };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const { approval, publish } = await startStack({
        secrets,
        storage,
        allowedSources: [
          allowedLocalPostgres(),
          allowedLocalMysql(myDatabase),
        ],
        publishEnv: {
          DESTINATION_POSTGRESQL_HOST: POSTGRES.host,
          DESTINATION_POSTGRESQL_PORT: String(POSTGRES.port),
          DESTINATION_POSTGRESQL_DATABASE: destination.database,
          DESTINATION_POSTGRESQL_USERNAME: destination.loader,
          DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
          DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: destination.reader,
          DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "readerpassword",
          DESTINATION_OPAL_HOST: opal.url,
          DESTINATION_OPAL_USERNAME: opal.admin.username,
          DESTINATION_OPAL_PASSWORD_SECRET_NAME: "opalpassword",
        },
      }, services);
      const sources = {
        pg: {
          type: "postgresql",
          host_url: POSTGRES.host,
          port: POSTGRES.port,
          database: POSTGRES.database,
          credentials: { username_key: "pguser", password_key: "pgpassword" },
        },
        my: {
          type: "mysql",
          host_url: MYSQL.host,
          port: MYSQL.port,
          database: myDatabase,
          credentials: { username_key: "myuser", password_key: "mypassword" },
        },
      };
      const transfer = (source: unknown, schema: string) => ({
        project_name: PROJECT,
        project_start_time: START,
        destination: { type: "postgresql" },
        source,
        dataset: { schema_name: schema, tables: [{ name: "visits", columns: null }] },
      });
      const publishBody = {
        project_name: PROJECT,
        project_start_time: START,
        destination: { type: "postgresql" },
      };
      const pgTarget = `${IDENTIFIER}_${START}_${pgSchema}`;
      const myTarget = `${IDENTIFIER}_${START}_${myDatabase}`;
      const reader = destination.asReader();
      const admin = destination.admin();

      await t.step("validate checks the destination database and OPAL", async () => {
        const res = await post(`${approval.url}/project/validate`, transfer(sources.pg, pgSchema));
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.equal(res.json.payload.schema_name, pgSchema);
      });

      await t.step(
        "package loads the approved table of each dataset, and nothing else",
        async () => {
          for (
            const [source, schema, target] of [
              [sources.pg, pgSchema, pgTarget],
              [sources.my, myDatabase, myTarget],
            ] as const
          ) {
            const res = await post(`${approval.url}/project/package`, transfer(source, schema));
            assert.equal(res.status, 200, JSON.stringify(res.json));
            assert.deepEqual(res.json.payload, {
              data_retrieved: [{ table_name: `${target}.visits` }],
            });
          }
          const tables = await admin`select table_schema, table_name from information_schema.tables
          where table_schema in (${pgTarget}, ${myTarget}) order by 1, 2`;
          assert.deepEqual(
            tables.map((r) => `${r.table_schema}.${r.table_name}`),
            [
              `${pgTarget}.visits`,
              `${myTarget}.visits`,
            ].sort(),
          );
          const registered = await admin`select destination_schema, project_name
            from cr8tor_publisher.datasets order by 1`;
          assert.deepEqual(
            registered.map((r) => [r.destination_schema, r.project_name]),
            [[pgTarget, PROJECT], [myTarget, PROJECT]].sort(),
          );
          for (const target of [pgTarget, myTarget]) {
            const rows = await admin.unsafe(
              `select id, clinic, cost::text, seen_at::text from "${target}".visits order by id`,
            );
            assert.deepEqual(rows.map((r) => ({ ...r })), [
              { id: 1, clinic: 'North, "A"', cost: "12.50", seen_at: "2020-01-01 10:00:00.25" },
              { id: 2, clinic: "South", cost: null, seen_at: null },
            ]);
          }
        },
      );

      await t.step("before publish the read-only role cannot read the tables", async () => {
        await assert.rejects(
          reader.unsafe(`select * from "${pgTarget}".visits`),
          /permission denied/,
        );
      });

      const expected = [pgTarget, myTarget].sort().map((schema) => ({
        postgresql_table_name: `${schema}.visits`,
        opal_resource_name: `tre_postgresql_${schema}_visits`,
        opal_project_name: IDENTIFIER,
        opal_group_name: `${IDENTIFIER}_group`,
      }));

      await t.step(
        "OPAL failing midway is a 502 naming the step, and changes are finished by a re-run",
        async () => {
          opal.failNext({
            method: "POST",
            path: `/ws/project/${IDENTIFIER}/resources`,
            status: 500,
            after: 1,
          });
          const failed = await post(`${approval.url}/project/publish`, publishBody);
          assert.equal(failed.status, 502, JSON.stringify(failed.json));
          assert.match(failed.json.payload.detail, /create resource tre_postgresql_/);
          const done = await post(`${approval.url}/project/publish`, publishBody);
          assert.equal(done.status, 200, JSON.stringify(done.json));
          assert.deepEqual(done.json.payload.data_published, expected);
          // The release's crate (kept by the gateway, not in the CLI's reply) and a receipt over its
          // SHA-512 (canonical JSON), verified with the keys the publish service serves.
          const { receipt, release_id } = done.json.payload;
          assert.equal(done.json.payload.crate, undefined);
          const crate = await (await fetch(`${approval.url}/releases/${release_id}/crate`, {
            headers: { "x-api-key": KEYS.approvalserviceapikey },
          })).json();
          const keys = await (await fetch(`${publish.url}/.well-known/release-keys`)).json();
          const claims = await verifyReceipt(receipt.jws, keys);
          assert.equal(claims.subject.kind, "ro-crate-sha512");
          assert.equal(claims.subject.sha512, await sha512Hex(canonicalJson(crate)));
          assert.deepEqual(claims.destination, { type: "postgresql", name: "postgresql" });
        },
      );

      await t.step("OPAL holds the project, group, user, grants and one resource per table", () => {
        const state = opal.state;
        assert.deepEqual(Object.keys(state.projects), [IDENTIFIER]);
        assert.deepEqual(state.groups[`${IDENTIFIER}_group`], ["dsuser_default"]);
        const resources = state.resources[IDENTIFIER] ?? {};
        assert.deepEqual(Object.keys(resources).sort(), expected.map((e) => e.opal_resource_name));
        for (const item of expected) {
          const resource = resources[item.opal_resource_name]!;
          const [schema, table] = item.postgresql_table_name.split(".");
          assert.equal(resource.provider, "resourcer");
          assert.equal(resource.factory, "sql");
          assert.deepEqual(JSON.parse(resource.parameters), {
            driver: "postgresql",
            host: POSTGRES.host,
            port: POSTGRES.port,
            db: destination.database,
            schema,
            table,
          });
          assert.deepEqual(JSON.parse(resource.credentials ?? "{}"), {
            username: destination.reader,
            password: destination.readerPassword,
          });
        }
        const grants = state.acls.filter((a) => a.principal === `${IDENTIFIER}_group`)
          .map((a) => a.permission).sort();
        assert.deepEqual(grants, ["DATASHIELD_USE", "RESOURCES_VIEW"]);
      });

      await t.step(
        "after publish the read-only role reads exactly the published tables",
        async () => {
          const rows = await reader.unsafe(`select count(*)::int as n from "${myTarget}".visits`);
          assert.equal(rows[0]?.n, 2);
          await assert.rejects(
            reader.unsafe(`insert into "${myTarget}".visits (id, clinic) values (9, 'x')`),
            /permission denied/,
          );
        },
      );

      await t.step(
        "publishing again gives the same reply and changes nothing in OPAL",
        async () => {
          const before = JSON.stringify(opal.state);
          const again = await post(`${approval.url}/project/publish`, publishBody);
          assert.equal(again.status, 200);
          assert.deepEqual(again.json.payload.data_published, expected);
          assert.equal(JSON.stringify(opal.state), before);
        },
      );

      await t.step("publishing a run that was never packaged is a 409", async () => {
        const res = await post(`${approval.url}/project/publish`, {
          ...publishBody,
          project_start_time: "20990101_000000",
        });
        assert.equal(res.status, 409, JSON.stringify(res.json));
      });

      await t.step("no log line holds a password", async () => {
        for (const service of services) await service.stop();
        const logs = services.flatMap((s) => s.logs).join("\n");
        for (const secret of Object.values(files)) assert.ok(!logs.includes(secret));
        assert.ok(!logs.includes("North"));
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await my.cleanup();
      await destination.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
