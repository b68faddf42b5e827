/**
 * Secret roles and driver messages (issue 12, point 1). A driver's error quotes what it was sent
 * (`role "…" does not exist`, `Access denied for user '…'`), so a request that sent the password secret
 * as the user name got the password back. These attacks run against the real PostgreSQL and MariaDB, the
 * wire-level fakes of SQL Server and Databricks (through the real tedious and `@databricks/sql`
 * clients), and the PostgreSQL destination of a real publish process:
 *
 * - a secret named in another role than its allow-list login binds it to is a 403 before any secret is
 *   read or any connection made, on every route;
 * - a refused login or a failed connection answers a fixed sentence and code, and the driver's message
 *   reaches the service log only, without the secret values;
 * - an error after connecting that quotes the login (MariaDB's `SELECT command denied to user '…'`)
 *   comes out without it;
 * - the old, role-less `secrets` list stops the services at startup.
 *
 * Each case checks the status and the CR8TOR envelope, that no file changed, and that no secret value
 * is in the reply, any log line or any audit record.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SourceAccess } from "../../apps/_shared/source_access.ts";
import { parseEnv, SourceEnv } from "../../apps/_shared/config.ts";
import { sourceConnectors } from "../../apps/_shared/source_connectors.ts";
import type { AllowedSource } from "../../domain/allowed_sources.ts";
import type { SourceDatabase } from "../../ports/source_database.ts";
import { APPROVAL_KEY, METADATA_KEY, PUBLISH_KEY } from "../support/apps.ts";
import { MysqlSandbox, PostgresSandbox, quoteMysql } from "../support/databases.ts";
import { startFakeDatabricks } from "../support/fake_databricks.ts";
import { createFakeThrift } from "../support/fake_databricks_thrift.ts";
import type { FakeWorkspace } from "../support/fake_databricks_workspace.ts";
import { type FakeSchema, startFakeTdsServer } from "../support/fake_tds_server.ts";
import { passwordRefusingServer } from "../support/password_refusing_postgres.ts";
import {
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startFailing,
  startService,
  writeAllowList,
} from "../support/processes.ts";
import { aTransferRequest, postJson } from "../support/requests.ts";
import {
  allowedLocalPostgres,
  ignoreMysql,
  ignorePostgres,
  LOCAL_DATABASES_WITHOUT_TLS,
  MYSQL,
  POSTGRES,
  randomName,
} from "../support/services.ts";
import {
  assertErrorEnvelope,
  assertLeaksNothing,
  changedPaths,
  HostileWorld,
  hostileWorld,
  snapshotTree,
} from "./_hostile_world.ts";

type Json = Record<string, unknown>;
type Engine = "PostgreSQL" | "MariaDB" | "SQL Server" | "Databricks";

const MS_USER = `ms_reader_${crypto.randomUUID().slice(0, 8)}`;
const MS_PASSWORD = `Ms-${crypto.randomUUID()}`;
const DBX_CLIENT_ID = `spn-${crypto.randomUUID()}`;
const DBX_SECRET = `dbx-${crypto.randomUUID()}`;
const DBX_HTTP_PATH = "/sql/1.0/warehouses/roles0001";
const GHOST_ROLE = randomName("cr8_ghost");
const WRONG = {
  mysql: `wrong-my-${crypto.randomUUID()}`,
  mssql: `Wrong-ms-${crypto.randomUUID()}`,
  databricks: `wrong-dbx-${crypto.randomUUID()}`,
};

const WORKSPACE: FakeWorkspace = {
  catalog: "gold",
  clientId: DBX_CLIENT_ID,
  clientSecret: DBX_SECRET,
  schemas: [{
    name: "clinic",
    tables: [{
      name: "canary",
      table_type: "MANAGED",
      primaryKey: ["id"],
      columns: [{ name: "id", type_name: "LONG", type_text: "bigint", nullable: false }],
      rows: [[1n], [2n]],
    }],
  }],
};

const TDS_SCHEMAS: readonly FakeSchema[] = [{
  name: "clinic",
  tables: [{
    name: "canary",
    kind: "BASE TABLE",
    primaryKey: ["id"],
    columns: [{ name: "id", type: "int", nullable: false }],
    rows: [[1], [2]],
  }],
}];

/** The routes that open a source, with the key each service takes. */
const ROUTES = [
  ["approval", "/project/validate"],
  ["approval", "/project/package"],
  ["metadata", "/metadata/project"],
  ["publish", "/data-publish/validate"],
  ["publish", "/data-publish/package"],
] as const;

type Service = (typeof ROUTES)[number][0];

const KEY: Record<Service, string> = {
  approval: APPROVAL_KEY,
  metadata: METADATA_KEY,
  publish: PUBLISH_KEY,
};

/** Everything the in-process apps reach: the sources, the secret files, the allow-list. */
interface Environment {
  readonly secretFiles: Record<string, string>;
  readonly allowed: AllowedSource[];
  readonly databricksCa: string;
  /** Every secret value; none may appear in a reply, a log line or an audit record. */
  readonly secretValues: readonly string[];
}

/**
 * A {@link HostileWorld} whose apps reach sources through the real connectors, each call of which is
 * counted, and read secret files that record each name asked for.
 */
class RolesWorld extends HostileWorld {
  /** Each connector call, as `engine host:port`. */
  readonly attempts: string[] = [];
  databricksCa: string[] = [];

  override sourceAccess(): SourceAccess {
    const real = sourceConnectors(
      parseEnv(SourceEnv, { ...LOCAL_DATABASES_WITHOUT_TLS, SOURCE_MSSQL_ENCRYPT: "false" }),
      { databricks: { caCertificates: this.databricksCa } },
    );
    const attempts = this.attempts;
    function counted<O extends { host: string; port: number }>(
      engine: string,
      connect: ((options: O) => Promise<SourceDatabase>) | undefined,
    ): (options: O) => Promise<SourceDatabase> {
      return (options) => {
        attempts.push(`${engine} ${options.host}:${options.port}`);
        return connect!(options);
      };
    }
    return {
      ...super.sourceAccess(),
      connectors: {
        postgresql: counted("postgresql", real.postgresql),
        mysql: counted("mysql", real.mysql),
        mssql: counted("mssql", real.mssql),
        databrickssql: counted("databrickssql", real.databrickssql),
      },
      connectTimeoutMs: 5_000,
      statementTimeoutMs: 30_000,
    };
  }
}

function rolesWorld(env: Environment): RolesWorld {
  const world = hostileWorld(RolesWorld);
  for (const [name, value] of Object.entries(env.secretFiles)) {
    Deno.writeTextFileSync(join(world.secretsDir, name), value + "\n");
  }
  world.allow(...env.allowed);
  world.databricksCa = [env.databricksCa];
  return world;
}

/** One request and what must come of it. */
interface Attack {
  readonly service: Service;
  readonly path: string;
  readonly body: Json;
  readonly status: number;
  readonly code: string;
  /** The whole detail after the service prefix, when it is fixed. */
  readonly detail?: string | RegExp;
  /** Whether a connection may be attempted (and secrets read); a 403 allows neither. */
  readonly connects: boolean;
  /** The driver's message that must be in the log, as the `reason` of the `request_failed` line. */
  readonly reason?: RegExp;
}

/** Runs one attack in a fresh world and checks the reply, the files, the log and the audit trail. */
async function attack(env: Environment, a: Attack): Promise<void> {
  using world = rolesWorld(env);
  const app = a.service === "approval"
    ? world.approvalApp()
    : a.service === "metadata"
    ? world.metadataApp()
    : world.publishApp();
  const before = await snapshotTree(world.root);

  const res = await app.request(postJson(a.path, a.body, KEY[a.service]));
  const text = await res.text();

  assert.equal(res.status, a.status, text.slice(0, 500));
  const forbidden = [...env.secretValues, world.root, Deno.cwd()];
  const payload = assertErrorEnvelope(JSON.parse(text), { code: a.code, forbidden });
  const detail = payload.detail.replace(/^(MetadataService|PublishService): /, "");
  if (typeof a.detail === "string") assert.equal(detail, a.detail);
  else if (a.detail !== undefined) assert.match(detail, a.detail);

  if (a.connects) {
    assert.ok(world.attempts.length > 0, "the source was connected to");
  } else {
    assert.deepEqual(world.attempts, [], "no connection was attempted");
    assert.deepEqual(world.fileSecrets.reads, [], "no secret was read");
  }
  assert.deepEqual(changedPaths(before, await snapshotTree(world.root)), [], "files changed");

  const records = world.audit?.records ?? [];
  assert.ok(records.length > 0, "the request was audited");
  for (const record of records) {
    assert.equal(record.status, a.status);
    assert.equal(record.error_code, a.code);
  }
  assertLeaksNothing(world.audit?.text() ?? "", forbidden);
  const logs = world.allLogLines();
  assertLeaksNothing(logs.join("\n"), forbidden);
  if (a.reason !== undefined) {
    const failures = logs.map((line) => JSON.parse(line) as Json)
      .filter((line) => line.event === "request_failed" && line.code === a.code);
    assert.ok(failures.length > 0, `a request_failed line: ${logs.join("\n")}`);
    for (const line of failures) assert.match(String(line.reason), a.reason);
  }
}

/** A transfer request for `source`, reading the table `canary` of `schema`. */
function transfer(source: Json, schema: string): Json {
  return aTransferRequest({
    source,
    dataset: {
      name: "roles",
      schema_name: schema,
      description: "",
      tables: [{ name: "canary", columns: null }],
      staging_path: null,
      publish_path: null,
    },
  });
}

function credentials(engine: Engine, identity: string, secret: string): Json {
  return engine === "Databricks"
    ? { spn_clientid: identity, spn_secret: secret }
    : { username_key: identity, password_key: secret };
}

const REFUSED_LOGIN = "The source database refused the login";
const CANNOT_CONNECT = "Cannot connect to the source database";

Deno.test({
  name: "secret roles: refused before reading, fixed sentences after, no secret anywhere",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const pgSchema = randomName("cr8_roles");
    const myDatabase = randomName("cr8_roles");
    const myInsertOnly = `${myDatabase}_w`;
    const thrift = createFakeThrift(WORKSPACE);
    await using databricks = await startFakeDatabricks(WORKSPACE, { thrift: thrift.handle });
    await using tds = await startFakeTdsServer({
      userName: MS_USER,
      password: MS_PASSWORD,
      schemas: TDS_SCHEMAS,
    });
    await using refusing = passwordRefusingServer();
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = closed.addr.port;
    closed.close();
    try {
      await pg.createRole();
      await pg.createSchema(pgSchema, "create table $s.canary (id integer primary key)");
      await my.createUser();
      await my.createDatabase(myDatabase, "CREATE TABLE $s.canary (id INT PRIMARY KEY)");
      // A table the login may insert into but not read: MariaDB's refusal names the login.
      await my.createDatabase(myInsertOnly, "CREATE TABLE $s.canary (id INT PRIMARY KEY)", false);
      const admin = await my.admin();
      for (const host of ["%", "127.0.0.1", "localhost"]) {
        await admin.query(`GRANT INSERT ON ${quoteMysql(myInsertOnly)}.canary TO ?@?`, [
          my.user,
          host,
        ]);
      }

      const mysqlEntry = (database: string): AllowedSource => ({
        type: "mysql",
        host: MYSQL.host,
        port: MYSQL.port,
        database,
        credentials: [
          { username: "myuser", password: "mypassword" },
          { username: "myuser", password: "mywrongpassword" },
        ],
      });
      const pgEntry = (port: number, database: string): AllowedSource => ({
        type: "postgresql",
        host: "127.0.0.1",
        port,
        database,
        credentials: [{ username: "pguser", password: "pgpassword" }],
      });
      const env: Environment = {
        secretFiles: {
          pguser: pg.role,
          pgpassword: pg.password,
          pgghost: GHOST_ROLE,
          myuser: my.user,
          mypassword: my.password,
          mywrongpassword: WRONG.mysql,
          msuser: MS_USER,
          mspassword: MS_PASSWORD,
          mswrongpassword: WRONG.mssql,
          dbxclientid: DBX_CLIENT_ID,
          dbxsecret: DBX_SECRET,
          dbxwrongsecret: WRONG.databricks,
        },
        allowed: [
          allowedLocalPostgres({ username: "pgghost", password: "pgpassword" }),
          pgEntry(refusing.port, "research"),
          pgEntry(closedPort, "research"),
          mysqlEntry(myDatabase),
          mysqlEntry(myInsertOnly),
          {
            type: "sqlserver",
            host: "127.0.0.1",
            port: tds.port,
            database: "clinic",
            credentials: [
              { username: "msuser", password: "mspassword" },
              { username: "msuser", password: "mswrongpassword" },
            ],
          },
          {
            type: "databrickssql",
            host: "127.0.0.1",
            port: databricks.port,
            http_path: DBX_HTTP_PATH,
            catalog: WORKSPACE.catalog,
            credentials: [
              { client_id: "dbxclientid", client_secret: "dbxsecret" },
              { client_id: "dbxclientid", client_secret: "dbxwrongsecret" },
            ],
          },
        ],
        databricksCa: databricks.caCertificate,
        secretValues: [
          pg.role,
          pg.password,
          GHOST_ROLE,
          my.user,
          my.password,
          MS_USER,
          MS_PASSWORD,
          DBX_CLIENT_ID,
          DBX_SECRET,
          ...Object.values(WRONG),
        ],
      };

      const sources: Record<
        Engine,
        { source: (id: string, secret: string) => Json; schema: string }
      > = {
        PostgreSQL: {
          source: (id, secret) => ({
            type: "postgresql",
            host_url: POSTGRES.host,
            port: POSTGRES.port,
            database: POSTGRES.database,
            credentials: credentials("PostgreSQL", id, secret),
          }),
          schema: pgSchema,
        },
        MariaDB: {
          source: (id, secret) => ({
            type: "mysql",
            host_url: MYSQL.host,
            port: MYSQL.port,
            database: myDatabase,
            credentials: credentials("MariaDB", id, secret),
          }),
          schema: myDatabase,
        },
        "SQL Server": {
          source: (id, secret) => ({
            type: "sqlserver",
            host_url: "127.0.0.1",
            port: tds.port,
            database: "clinic",
            credentials: credentials("SQL Server", id, secret),
          }),
          schema: "clinic",
        },
        Databricks: {
          source: (id, secret) => ({
            type: "databrickssql",
            host_url: "https://127.0.0.1",
            port: databricks.port,
            http_path: DBX_HTTP_PATH,
            catalog: WORKSPACE.catalog,
            credentials: credentials("Databricks", id, secret),
          }),
          schema: "clinic",
        },
      };
      const logins: Record<Engine, [string, string]> = {
        PostgreSQL: ["pguser", "pgpassword"],
        MariaDB: ["myuser", "mypassword"],
        "SQL Server": ["msuser", "mspassword"],
        Databricks: ["dbxclientid", "dbxsecret"],
      };
      const engines = Object.keys(sources) as Engine[];

      await t.step("control: each source's listed login is accepted and read", async () => {
        for (const engine of engines) {
          using world = rolesWorld(env);
          const { source, schema } = sources[engine];
          const body = transfer(source(...logins[engine]), schema);
          const res = await world.metadataApp().request(
            postJson("/metadata/project", body, METADATA_KEY),
          );
          const text = await res.text();
          assert.equal(res.status, 200, `${engine}: ${text.slice(0, 400)}`);
          assert.deepEqual(world.fileSecrets.reads.sort(), [...logins[engine]].sort(), engine);
          assertLeaksNothing(text + world.allLogLines().join("\n"), env.secretValues);
        }
      });

      for (const engine of engines) {
        const { source, schema } = sources[engine];
        const [identity, secret] = logins[engine];
        await t.step(`${engine}: the password secret as the user name is a 403`, async () => {
          const swaps: [string, string][] = [[secret, identity], [secret, secret], [
            identity,
            identity,
          ]];
          for (const [i, [id, pw]] of swaps.entries()) {
            // The plain swap on every route; the other two on one route each.
            const routes = i === 0 ? ROUTES : [ROUTES[i + 1]!];
            for (const [service, path] of routes) {
              await attack(env, {
                service,
                path,
                body: transfer(source(id, pw), schema),
                status: 403,
                code: "source_not_allowed",
                detail: new RegExp(`^Cannot use secret "${id}" as the .* and "${pw}" as the `),
                connects: false,
              });
            }
          }
        });
      }

      const refusals: [string, Json, string, string, RegExp][] = [
        [
          "PostgreSQL: a user secret naming no role",
          sources.PostgreSQL.source("pgghost", "pgpassword"),
          pgSchema,
          REFUSED_LOGIN,
          /^Cannot connect to PostgreSQL at 127\.0\.0\.1:5432: role "\*\*\*" does not exist$/,
        ],
        [
          "PostgreSQL: a refused password, which the server even echoes",
          {
            ...sources.PostgreSQL.source("pguser", "pgpassword"),
            host_url: "127.0.0.1",
            port: refusing.port,
            database: "research",
          },
          "research",
          REFUSED_LOGIN,
          /password authentication failed for user "loader" \(password "\*\*\*"\)$/,
        ],
        [
          "PostgreSQL: nothing listening",
          {
            ...sources.PostgreSQL.source("pguser", "pgpassword"),
            host_url: "127.0.0.1",
            port: closedPort,
            database: "research",
          },
          "research",
          CANNOT_CONNECT,
          /^Cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: .*ECONNREFUSED/,
        ],
        [
          "MariaDB: a wrong password",
          sources.MariaDB.source("myuser", "mywrongpassword"),
          myDatabase,
          REFUSED_LOGIN,
          /: Access denied for user '\*\*\*'@'[^']+' \(using password: YES\)$/,
        ],
        [
          "SQL Server: a wrong password",
          sources["SQL Server"].source("msuser", "mswrongpassword"),
          "clinic",
          REFUSED_LOGIN,
          /: Login failed for user '\*\*\*'\.$/,
        ],
        [
          "Databricks: a wrong client secret",
          sources.Databricks.source("dbxclientid", "dbxwrongsecret"),
          "clinic",
          REFUSED_LOGIN,
          /: HTTP 401 invalid_client \(Client authentication failed\)$/,
        ],
      ];
      for (const [name, source, schema, sentence, reason] of refusals) {
        await t.step(`${name}: a fixed sentence, the driver's message only logged`, async () => {
          const code = sentence === REFUSED_LOGIN
            ? "source_login_refused"
            : "source_connection_failed";
          for (const [service, path] of ROUTES) {
            await attack(env, {
              service,
              path,
              body: transfer(source, schema),
              status: 502,
              code,
              detail: sentence,
              connects: true,
              reason,
            });
          }
        });
      }

      await t.step("MariaDB: a query error that names the login comes out without it", async () => {
        for (const [service, path] of [ROUTES[1], ROUTES[4]]) {
          await attack(env, {
            service,
            path,
            body: transfer(
              { ...sources.MariaDB.source("myuser", "mypassword"), database: myInsertOnly },
              myInsertOnly,
            ),
            status: 502,
            code: "source_unavailable",
            detail: /: SELECT command denied to user '\*\*\*'@'[^']+' for table /,
            connects: true,
          });
        }
      });

      await t.step("the source databases are unchanged", async () => {
        const [row] = await pg.admin<{ n: number }[]>`
          select count(*)::int as n from information_schema.tables where table_schema = ${pgSchema}`;
        assert.equal(row?.n, 1);
        const [rows] = await admin.query(
          "SELECT table_schema AS s, table_name AS t FROM information_schema.tables " +
            "WHERE table_schema IN (?, ?) ORDER BY 1, 2",
          [myDatabase, myInsertOnly],
        );
        assert.deepEqual(
          (rows as { s: string; t: string }[]).map((r) => `${r.s}.${r.t}`),
          [`${myDatabase}.canary`, `${myInsertOnly}.canary`],
        );
      });
    } finally {
      await my.cleanup();
      await pg.cleanup();
    }
  },
});

/** A work folder with the service keys and more secrets, and an empty filestore. */
async function workspace(secrets: Record<string, string>) {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-roles-"));
  const keys = newServiceKeys();
  await mkdir(join(work, "secrets"));
  await mkdir(join(work, "lsc", "staging"), { recursive: true });
  await mkdir(join(work, "lsc", "production"));
  for (const [name, value] of Object.entries({ ...keys, ...secrets })) {
    await writeFile(join(work, "secrets", name), value + "\n");
  }
  return { work, keys, secrets: join(work, "secrets"), storage: join(work, "lsc") };
}

Deno.test("secret roles: the old secrets list stops metadata and publish, saying how to rewrite it", async () => {
  const space = await workspace({});
  try {
    const allowList = join(space.work, "old-allowed-sources.json");
    await writeFile(
      allowList,
      JSON.stringify({
        sources: [{
          type: "postgresql",
          host: "db.internal",
          port: 5432,
          database: "research",
          secrets: ["sourceuser", "sourcepassword"],
        }],
      }),
    );
    for (const service of ["metadata", "publish"]) {
      const { code, output } = await startFailing(service, {
        SECRETS_MNT_PATH: space.secrets,
        ALLOWED_SOURCES_FILE: allowList,
        TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: space.storage,
      });
      assert.notEqual(code, 0, output);
      const events = output.split("\n").filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Json);
      assert.ok(!events.some((e) => e.event === "listening"), output);
      const failed = String(events.find((e) => e.event === "startup_failed")?.message);
      assert.match(failed, /^Cannot read ALLOWED_SOURCES_FILE .*sources\.0\.secrets: /, output);
      assert.match(
        failed,
        /"secrets" is no longer accepted: .*; replace it with "credentials": \[\{ "username": "<user name secret>", "password": "<password secret>" \}\]/,
      );
    }
  } finally {
    await rm(space.work, { recursive: true, force: true });
  }
});

Deno.test({
  name:
    "secret roles: the PostgreSQL destination answers a fixed sentence; its password is in no reply, log or audit record",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_roles_dest");
    const destinationPassword = `dest-${crypto.randomUUID()}`;
    const readerPassword = `reader-${crypto.randomUUID()}`;
    const opalPassword = `opal-${crypto.randomUUID()}`;
    await using refusing = passwordRefusingServer();
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = closed.addr.port;
    closed.close();
    const services: ServiceProcess[] = [];
    const space = await workspace({
      destpassword: destinationPassword,
      readerpassword: readerPassword,
      opalpassword: opalPassword,
    });
    try {
      await pg.createRole();
      await pg.createSchema(schema, "create table $s.canary (id integer primary key)");
      for (const [name, value] of Object.entries({ pguser: pg.role, pgpassword: pg.password })) {
        await writeFile(join(space.secrets, name), value + "\n");
      }
      const allowList = await writeAllowList(space.work, [allowedLocalPostgres()]);
      const secretValues = [
        destinationPassword,
        readerPassword,
        opalPassword,
        pg.password,
        pg.role,
      ];
      const cases = [
        {
          name: "a refused login",
          port: refusing.port,
          code: "destination_login_refused",
          detail: "The destination database refused the login",
          reason: /password authentication failed for user "loader" \(password "\*\*\*"\)/,
        },
        {
          name: "nothing listening",
          port: closedPort,
          code: "destination_connection_failed",
          detail: "Cannot connect to the destination database",
          reason: /ECONNREFUSED/,
        },
      ];
      for (const c of cases) {
        await t.step(c.name, async () => {
          const audit = join(space.work, `audit-${c.port}.jsonl`);
          const publish = await startService("publish", {
            SECRETS_MNT_PATH: space.secrets,
            ALLOWED_SOURCES_FILE: allowList,
            AUDIT_LOG_PATH: audit,
            TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: space.storage,
            SOURCE_CONNECT_TIMEOUT_SECONDS: "5",
            DESTINATION_POSTGRESQL_HOST: "127.0.0.1",
            DESTINATION_POSTGRESQL_PORT: String(c.port),
            DESTINATION_POSTGRESQL_DATABASE: "dest",
            DESTINATION_POSTGRESQL_USERNAME: "loader",
            DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
            DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: "reader",
            DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "readerpassword",
            DESTINATION_OPAL_HOST: "https://127.0.0.1:1",
            DESTINATION_OPAL_USERNAME: "administrator",
            DESTINATION_OPAL_PASSWORD_SECRET_NAME: "opalpassword",
          });
          services.push(publish);
          const before = await snapshotTree(space.work);
          const source = {
            type: "postgresql",
            host_url: POSTGRES.host,
            port: POSTGRES.port,
            database: POSTGRES.database,
            credentials: { username_key: "pguser", password_key: "pgpassword" },
          };
          const requests: [string, Json][] = [
            ["/data-publish/validate", {
              ...transfer(source, schema),
              destination: { type: "postgresql" },
            }],
            ["/data-publish/package", {
              ...transfer(source, schema),
              destination: { type: "postgresql" },
            }],
            ["/data-publish/publish", {
              project_name: "Pr042",
              project_start_time: "20250611_093000",
              destination: { type: "postgresql" },
            }],
          ];
          for (const [path, body] of requests) {
            const reply = await postToService(
              `${publish.url}${path}`,
              body,
              space.keys.publishserviceapikey,
            );
            assert.equal(reply.status, 502, `${path}: ${JSON.stringify(reply.json)}`);
            const payload = assertErrorEnvelope(reply.json, {
              code: c.code,
              forbidden: [...secretValues, space.work],
            });
            assert.equal(payload.detail, `PublishService: ${c.detail}`);
          }
          await publish.stop();
          const changed = changedPaths(before, await snapshotTree(space.work))
            .filter((p) => p !== `audit-${c.port}.jsonl`);
          assert.deepEqual(changed, [], "files changed");

          // The service log names its files (under /tmp here), so only the secrets are searched for.
          const logs = publish.logs.join("\n");
          for (const value of secretValues) {
            assert.ok(!logs.includes(value), `the log holds ${value}`);
          }
          const events = publish.logs.map((line) => JSON.parse(line) as Json);
          const recovery = events.find((e) => e.event === "recovery_failed");
          assert.match(String(recovery?.reason), c.reason, logs);
          const failures = events.filter((e) => e.event === "request_failed");
          assert.equal(failures.length, requests.length, logs);
          for (const line of failures) {
            assert.equal(line.code, c.code);
            assert.match(String(line.reason), c.reason);
          }

          const trail = await readFile(audit, "utf8");
          assertLeaksNothing(trail, secretValues);
          const records = trail.trim().split("\n").map((line) => JSON.parse(line) as Json);
          assert.deepEqual(records.map((r) => [r.status, r.error_code]), [
            [502, c.code],
            [502, c.code],
            [502, c.code],
          ]);
        });
      }
      assert.ok(refusing.passwords.length > 0, "the refusing server was asked");
      assert.ok(refusing.passwords.every((p) => p === destinationPassword));
    } finally {
      for (const service of services) await service.stop();
      await rm(space.work, { recursive: true, force: true });
      await pg.cleanup();
    }
  },
});
