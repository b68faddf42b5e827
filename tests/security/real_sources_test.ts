/**
 * Hostile requests against the three services as real processes: refused hosts open no TCP connection
 * (a listener of our own counts them), the size, nesting, table and column limits hold over real HTTP,
 * and SQL-injection-looking names leave a real PostgreSQL and MariaDB unchanged, even though the source
 * login owns the canary table and could drop it.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { RowDataPacket } from "mysql2/promise";
import type { AllowedSource } from "../../domain/allowed_sources.ts";
import { MysqlSandbox, PostgresSandbox, quoteMysql, quotePostgres } from "../support/databases.ts";
import {
  newServiceKeys,
  type ServiceProcess,
  type ServiceStack,
  startStack,
} from "../support/processes.ts";
import {
  allowedLocalMysql,
  allowedLocalPostgres,
  ignoreMysql,
  ignorePostgres,
  MYSQL,
  POSTGRES,
  randomName,
} from "../support/services.ts";
import { changedPaths, snapshotTree } from "./_hostile_world.ts";

const KEYS = newServiceKeys();

/** A TCP listener that counts the connections it accepts; `hold` keeps them open and silent. */
function tcpRecorder(hold: boolean) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  let accepted = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      accepted++;
      if (hold) held.push(conn);
      else conn.close();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    async close() {
      listener.close();
      for (const conn of held) {
        try {
          conn.close();
        } catch {
          // already closed by the peer
        }
      }
      await loop;
    },
  };
}

type Json = Record<string, unknown>;

function request(source: Json, schema: string, tables: unknown, format = "csv"): Json {
  return {
    project_name: "SecProject",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format },
    extract_config: null,
    source,
    dataset: {
      name: "security",
      schema_name: schema,
      description: "",
      tables,
      staging_path: null,
      publish_path: null,
    },
  };
}

function sqlSource(type: "postgresql" | "mysql", host: string, port: number, database: string) {
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

function keyOf(url: string, stack: ServiceStack): string {
  if (url.startsWith(stack.metadata.url)) return KEYS.metadataserviceapikey;
  if (url.startsWith(stack.publish.url)) return KEYS.publishserviceapikey;
  return KEYS.approvalserviceapikey;
}

async function post(
  stack: ServiceStack,
  url: string,
  body: unknown,
  init: RequestInit = {},
): Promise<{ status: number; json: Json }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": keyOf(url, stack) },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${url} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, json };
}

/** The status, the envelope and the code; the detail names no secret and no server path. */
function assertRefused(
  reply: { status: number; json: Json },
  status: number,
  code: string,
  forbidden: readonly string[],
): void {
  const payload = reply.json.payload as Record<string, unknown> | undefined;
  assert.equal(reply.status, status, JSON.stringify(reply.json).slice(0, 400));
  assert.equal(reply.json.status, "error");
  assert.equal(payload?.code, code, String(payload?.detail));
  assert.equal(typeof payload?.detail, "string");
  assert.equal(typeof payload?.request_id, "string");
  const text = JSON.stringify(reply.json);
  for (const value of [...Object.values(KEYS), ...forbidden]) {
    assert.ok(!text.includes(value), `the reply leaks ${value}`);
  }
}

/** Work folder, secrets, filestore and sentinels for one stack. */
async function workspace(secrets: Record<string, string>) {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-security-"));
  const storage = join(work, "lsc");
  await mkdir(join(work, "secrets"));
  await mkdir(join(storage, "staging"), { recursive: true });
  await mkdir(join(storage, "production"));
  await writeFile(join(work, "sentinel.txt"), "next to the filestore base\n");
  await writeFile(join(storage, "staging", "sentinel.txt"), "inside staging\n");
  for (const [name, value] of Object.entries({ ...KEYS, ...secrets })) {
    await writeFile(join(work, "secrets", name), value + "\n");
  }
  return { work, secrets: join(work, "secrets"), storage };
}

Deno.test({
  name: "real processes: refused hosts and secrets open no TCP connection; limits hold over HTTP",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const hostile = tcpRecorder(false);
    const control = tcpRecorder(true);
    const { work, secrets, storage } = await workspace({
      pguser: "reader",
      pgpassword: "control-password",
    });
    const services: ServiceProcess[] = [];
    try {
      const allowed: AllowedSource[] = [
        {
          type: "postgresql",
          host: "127.0.0.1",
          port: control.port,
          database: "control",
          credentials: [{ username: "pguser", password: "pgpassword" }],
        },
        {
          type: "postgresql",
          host: "127.0.0.1",
          port: 5432,
          database: "research",
          credentials: [{ username: "pguser", password: "pgpassword" }],
        },
      ];
      const stack = await startStack({
        secrets,
        storage,
        allowedSources: allowed,
        env: { SOURCE_CONNECT_TIMEOUT_SECONDS: "1" },
      }, services);
      const before = await snapshotTree(work);
      const forbidden = [work, "control-password", Deno.cwd()];
      const routes = [
        `${stack.approval.url}/project/validate`,
        `${stack.approval.url}/project/package`,
        `${stack.metadata.url}/metadata/project`,
        `${stack.publish.url}/data-publish/validate`,
        `${stack.publish.url}/data-publish/package`,
      ];

      const spellings = [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
        "LOCALHOST.",
      ];
      for (const host of spellings) {
        await t.step(`${host}:<unlisted port> is refused on every route`, async () => {
          for (const url of routes) {
            const body = request(
              sqlSource("postgresql", host, hostile.port, "control"),
              "public",
              null,
            );
            assertRefused(await post(stack, url, body), 403, "source_not_allowed", forbidden);
          }
        });
      }

      await t.step("the cloud metadata address is refused at once", async () => {
        for (const host of ["169.254.169.254", "0xa9fea9fe", "[fd00:ec2::254]"]) {
          for (const url of routes) {
            const started = performance.now();
            const body = request(sqlSource("postgresql", host, 80, "latest"), "public", null);
            assertRefused(await post(stack, url, body), 403, "source_not_allowed", forbidden);
            assert.ok(performance.now() - started < 1000, "refused before any connect timeout");
          }
        }
      });

      await t.step(
        "an unlisted port, database or secret on an allowed host is refused",
        async () => {
          const cases: Json[] = [
            sqlSource("postgresql", "127.0.0.1", 5433, "research"),
            sqlSource("postgresql", "127.0.0.1", control.port, "postgres"),
            sqlSource("mysql", "127.0.0.1", control.port, "control"),
            {
              ...sqlSource("postgresql", "127.0.0.1", control.port, "control"),
              credentials: { username_key: "pguser", password_key: "publishserviceapikey" },
            },
            {
              ...sqlSource("postgresql", "127.0.0.1", control.port, "control"),
              credentials: { username_key: "approvalserviceapikey", password_key: "pgpassword" },
            },
          ];
          for (const source of cases) {
            for (const url of routes) {
              const reply = await post(stack, url, request(source, "public", null));
              assertRefused(reply, 403, "source_not_allowed", forbidden);
            }
          }
        },
      );

      await t.step("oversized, deep and over-long bodies are refused", async () => {
        const valid = request(
          sqlSource("postgresql", "127.0.0.1", control.port, "control"),
          "s",
          null,
        );
        for (const url of routes) {
          // 2 MiB, sent chunked (no content-length), so the limit counts the stream itself.
          const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
          let sent = 0;
          const stream = new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent >= 2 * 1024 * 1024) return controller.close();
              sent += chunk.length;
              controller.enqueue(chunk);
            },
          });
          const big = await post(stack, url, "", { body: stream });
          assertRefused(big, 413, "body_too_large", forbidden);

          const deep = JSON.stringify(valid).replace(
            '"staging_path":null',
            `"staging_path":${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`,
          );
          assertRefused(await post(stack, url, deep), 422, "body_too_deep", forbidden);

          // Publish validate takes no dataset (the gateway's validate checks it).
          if (url.endsWith("/data-publish/validate")) continue;
          const tables = Array.from({ length: 10_001 }, (_, i) => ({ name: `t${i}` }));
          const many = await post(stack, url, { ...valid, dataset: { schema_name: "s", tables } });
          assertRefused(many, 422, "invalid_request", forbidden);
          const issues = (many.json.payload as { issues: { path: string }[] }).issues;
          assert.deepEqual(issues.map((i) => i.path), ["dataset.tables"]);

          const columns = Array.from({ length: 10_001 }, (_, i) => ({ name: `c${i}` }));
          const wide = await post(stack, url, {
            ...valid,
            dataset: { schema_name: "s", tables: [{ name: "t", columns }] },
          });
          assertRefused(wide, 422, "invalid_request", forbidden);
          const wideIssues = (wide.json.payload as { issues: { path: string }[] }).issues;
          assert.deepEqual(wideIssues.map((i) => i.path), ["dataset.tables.0.columns"]);
        }
      });

      await t.step("nothing connected to the unlisted listener, and no file changed", async () => {
        assert.equal(hostile.accepted, 0, "connections to the unlisted port");
        assert.equal(control.accepted, 0, "connections to the listed port so far");
        assert.deepEqual(changedPaths(before, await snapshotTree(work)), []);
      });

      await t.step(
        "control: an allowed source is connected to, and gives up after the connect timeout",
        async () => {
          const started = performance.now();
          const body = request(
            sqlSource("postgresql", "127.1", control.port, "control"),
            "s",
            null,
          );
          const reply = await post(stack, `${stack.publish.url}/data-publish/validate`, body);
          assertRefused(reply, 502, "source_connection_failed", forbidden);
          assert.ok(control.accepted >= 1, "the allowed listener was reached");
          assert.ok(performance.now() - started < 10_000, "the connect timeout applied");
          assert.equal(hostile.accepted, 0);
        },
      );

      await t.step("no log line holds a key or a password", () => {
        const logs = services.flatMap((s) => s.logs).join("\n");
        for (const value of [...Object.values(KEYS), "control-password"]) {
          assert.ok(!logs.includes(value), `a log line holds ${value}`);
        }
      });
    } finally {
      for (const service of services) await service.stop();
      await hostile.close();
      await control.close();
      await rm(work, { recursive: true, force: true });
    }
  },
});

/** Every table and view of the schemas with its row count (views are not counted). */
async function postgresState(pg: PostgresSandbox, schemas: string[]): Promise<string[]> {
  const rows = await pg.admin<{ table_schema: string; table_name: string; table_type: string }[]>`
    select table_schema, table_name, table_type from information_schema.tables
    where table_schema in ${pg.admin(schemas)} order by 1, 2`;
  const out: string[] = [];
  for (const { table_schema, table_name, table_type } of rows) {
    if (table_type === "VIEW") {
      out.push(`${table_schema}.${table_name} view`);
      continue;
    }
    const [count] = await pg.admin.unsafe<{ n: number }[]>(
      `select count(*)::int as n from ${quotePostgres(table_schema)}.${quotePostgres(table_name)}`,
    );
    out.push(`${table_schema}.${table_name} ${count!.n}`);
  }
  return out;
}

async function mysqlState(my: MysqlSandbox, database: string): Promise<string[]> {
  const admin = await my.admin();
  const [rows] = await admin.query<RowDataPacket[]>(
    "SELECT table_name AS name, table_type AS type FROM information_schema.tables " +
      "WHERE table_schema = ? ORDER BY 1",
    [database],
  );
  const out: string[] = [];
  for (const { name, type } of rows) {
    if (type === "VIEW") {
      out.push(`${name} view`);
      continue;
    }
    const [count] = await admin.query<RowDataPacket[]>(
      `SELECT count(*) AS n FROM ${quoteMysql(database)}.${quoteMysql(name)}`,
    );
    out.push(`${name} ${count[0]!.n}`);
  }
  return out;
}

const PG_DDL = `
  create table $s.canary (id integer primary key, note text);
  insert into $s.canary values (1, 'one'), (2, 'two'), (3, 'three');
  create table $s."t--x" (id integer primary key, "c$1" text, "select" text);
  insert into $s."t--x" values (1, 'a', 'b');
  create view $s.slow as select 1 as x from pg_sleep(30);
`;

const MY_DDL = `
  CREATE TABLE $s.canary (id INT PRIMARY KEY, note TEXT);
  INSERT INTO $s.canary VALUES (1, 'one'), (2, 'two'), (3, 'three');
  CREATE TABLE $s.\`t--x\` (id INT PRIMARY KEY, \`c$1\` TEXT, \`select\` TEXT);
  INSERT INTO $s.\`t--x\` VALUES (1, 'a', 'b');
  CREATE VIEW $s.slow AS SELECT sleep(30) AS x;
`;

Deno.test({
  name: "real databases: SQL-injection-looking names leave PostgreSQL and MariaDB unchanged",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const schema = randomName("cr8_sec");
    const hostileSchema = `${schema}_h`;
    const services: ServiceProcess[] = [];
    const space = await workspace({});
    try {
      await pg.createRole();
      await pg.createSchema(schema, PG_DDL);
      // Source-side hostile names: tables the request cannot name, but "every table" reaches.
      await pg.createSchema(
        hostileSchema,
        `create table $s."x""; drop table ${schema}.canary; --" (id integer);
         create table $s."../../escape" (id integer);`,
      );
      // The source login owns the canary: an injected DROP would succeed.
      const role = quotePostgres(pg.role);
      await pg.admin.unsafe(
        `alter table ${quotePostgres(schema)}.canary owner to ${role};
         grant create on schema ${quotePostgres(schema)} to ${role}`,
      );
      await my.createUser();
      await my.createDatabase(schema, MY_DDL);
      const myAdmin = await my.admin();
      for (const host of ["%", "127.0.0.1", "localhost"]) {
        await myAdmin.query(`GRANT ALL ON ${quoteMysql(schema)}.* TO ?@?`, [my.user, host]);
      }
      for (
        const [name, value] of Object.entries({
          pguser: pg.role,
          pgpassword: pg.password,
          myuser: my.user,
          mypassword: my.password,
        })
      ) {
        await writeFile(join(space.secrets, name), value + "\n");
      }
      const stack = await startStack({
        secrets: space.secrets,
        storage: space.storage,
        allowedSources: [
          allowedLocalPostgres(),
          allowedLocalMysql(schema),
        ],
        env: { SOURCE_STATEMENT_TIMEOUT_SECONDS: "2" },
      }, services);
      const forbidden = [space.work, pg.password, my.password, Deno.cwd()];
      const pgSource = sqlSource("postgresql", POSTGRES.host, POSTGRES.port, POSTGRES.database);
      const mySource = sqlSource("mysql", MYSQL.host, MYSQL.port, schema);
      const pgBefore = await postgresState(pg, [schema, hostileSchema]);
      const myBefore = await mysqlState(my, schema);
      const filesBefore = await snapshotTree(space.work);
      const gateway = stack.approval.url;

      const hostileNames: [string, Json, number, string][] = [];
      for (const [engine, source] of [["PostgreSQL", pgSource], ["MariaDB", mySource]] as const) {
        const q = engine === "PostgreSQL" ? '"' : "`";
        hostileNames.push(
          [
            `${engine}: schema with ; DROP`,
            request(source, `${schema}; drop table canary`, null),
            422,
            "invalid_request",
          ],
          [
            `${engine}: schema with a quote`,
            request(source, `${schema}${q}; drop table canary; --`, null),
            422,
            "invalid_request",
          ],
          [
            `${engine}: table with a quote`,
            request(source, schema, [{ name: `canary${q} cascade; --` }]),
            422,
            "invalid_request",
          ],
          [
            `${engine}: table with a comment`,
            request(source, schema, [{ name: "canary/**/" }]),
            422,
            "invalid_request",
          ],
          [
            `${engine}: table with a look-alike`,
            request(source, schema, [{ name: "c\u0430nary" }]),
            422,
            "invalid_request",
          ],
          [
            `${engine}: column closing the list`,
            request(source, schema, [{
              name: "canary",
              columns: [{ name: "id) from canary; delete from canary; --" }],
            }]),
            422,
            "invalid_request",
          ],
          [
            `${engine}: table canary-- passes the pattern, not the catalogue`,
            request(source, schema, [{ name: "canary--" }]),
            404,
            "dataset_items_not_found",
          ],
          [
            `${engine}: column id$1 passes the pattern, not the catalogue`,
            request(source, schema, [{ name: "canary", columns: [{ name: "id$1" }] }]),
            404,
            "dataset_items_not_found",
          ],
          [
            `${engine}: a schema that does not exist`,
            request(source, `${schema}--`, null),
            // In MySQL the schema is the database: another one is outside the allow-list entry.
            engine === "MariaDB" ? 403 : 404,
            engine === "MariaDB" ? "source_not_allowed" : "schema_not_found",
          ],
        );
      }
      for (const [name, body, status, code] of hostileNames) {
        await t.step(name, async () => {
          for (const url of [`${gateway}/project/validate`, `${gateway}/project/package`]) {
            assertRefused(await post(stack, url, body), status, code, forbidden);
          }
        });
      }

      for (const [engine, source] of [["PostgreSQL", pgSource], ["MariaDB", mySource]] as const) {
        await t.step(
          `${engine}: names that pass the pattern are quoted, and read exactly`,
          async () => {
            const body = request(source, schema, [
              { name: "t--x", columns: [{ name: "c$1" }, { name: "select" }] },
            ]);
            const validated = await post(stack, `${gateway}/project/validate`, body);
            assert.equal(validated.status, 200, JSON.stringify(validated.json));
            const packaged = await post(stack, `${gateway}/project/package`, body);
            assert.equal(packaged.status, 200, JSON.stringify(packaged.json));
            const csv = await Deno.readTextFile(
              join(
                space.storage,
                "staging/SecProject/20250611_093000/data/outputs",
                schema,
                "t--x.csv",
              ),
            );
            assert.equal(csv, "c$1,select\na,b\n");
          },
        );

        await t.step(`${engine}: a statement over the statement timeout is cancelled`, async () => {
          const started = performance.now();
          const reply = await post(
            stack,
            `${gateway}/project/package`,
            request(source, schema, [{ name: "slow" }]),
          );
          assertRefused(reply, 502, "source_unavailable", forbidden);
          assert.ok(performance.now() - started < 20_000, "cancelled well before the 30 s sleep");
        });
      }

      await t.step(
        "PostgreSQL: source-side names unsafe as file names are refused, not staged",
        async () => {
          const csv = await post(
            stack,
            `${gateway}/project/package`,
            request(pgSource, hostileSchema, null, "csv"),
          );
          assertRefused(csv, 422, "unsafe_table_name", forbidden);
          assert.match(
            String((csv.json.payload as Json).detail),
            /^PublishService: Cannot stage table "(\.\.\/\.\.\/escape|x\\"; drop table .*)" of schema/,
          );
          // DuckDB keeps them as quoted table names inside the one database file.
          const duckdb = await post(
            stack,
            `${gateway}/project/package`,
            request(pgSource, hostileSchema, null, "duckdb"),
          );
          assert.equal(duckdb.status, 200, JSON.stringify(duckdb.json));
          assert.deepEqual((duckdb.json.payload as Json).data_retrieved, [
            { file_path: "data/outputs/database.duckdb" },
          ]);
        },
      );

      await t.step("the databases and the files outside the filestore are unchanged", async () => {
        assert.deepEqual(await postgresState(pg, [schema, hostileSchema]), pgBefore);
        assert.deepEqual(await mysqlState(my, schema), myBefore);
        assert.ok(pgBefore.includes(`${schema}.canary 3`), pgBefore.join());
        assert.ok(myBefore.includes("canary 3"), myBefore.join());
        const outside = changedPaths(filesBefore, await snapshotTree(space.work))
          .filter((p) => !p.startsWith(`${relative(space.work, space.storage)}/staging/SecProject`))
          .filter((p) => p !== "lsc/staging");
        assert.deepEqual(outside, []);
        const logs = services.flatMap((s) => s.logs).join("\n");
        for (const value of [...Object.values(KEYS), pg.password, my.password]) {
          assert.ok(!logs.includes(value), `a log line holds ${value}`);
        }
      });
    } finally {
      for (const service of services) await service.stop();
      await rm(space.work, { recursive: true, force: true });
      await my.cleanup();
      await pg.cleanup();
    }
  },
});
