/**
 * A hostile or careless source, against the three services as real processes and a real PostgreSQL
 * and MariaDB: a value over `SOURCE_MAX_VALUE_BYTES` fails `package` with 422 `value_too_large`
 * naming the table, the column and the limit, for every destination (CSV and DuckDB filestores, the
 * PostgreSQL destination), and nothing is staged or loaded; a 300 MiB value is refused by the server
 * without being sent, so the publish service stays small; descriptions of 1 MB come back capped.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_DESCRIPTION_CHARS, TRUNCATION_MARKER } from "../../domain/catalog.ts";
import {
  mysqlAdmin,
  MysqlSandbox,
  PostgresSandbox,
  quoteMysql,
  quotePostgres,
} from "../support/databases.ts";
import { DestinationSandbox } from "../support/destination_databases.ts";
import { FakeOpal } from "../support/fake_opal.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
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
import { assertErrorEnvelope, changedPaths, snapshotTree } from "./_hostile_world.ts";

const KEYS = newServiceKeys();
const PROJECT = "SourceValues";
const START = "20250611_093000";
const MIB = 1024 * 1024;

/** A value's text never appears in a reply or a log: a run of the character it is made of. */
const VALUE_TEXT = "x".repeat(64);

/** `docs`, whose `body` holds one value of `bigBytes` bytes of `x`, made by the server. */
function docsDdl(engine: "postgres" | "mysql", bigBytes: number): string {
  const [text, repeat] = engine === "postgres"
    ? ["text", `repeat('x', ${bigBytes})`]
    : ["LONGTEXT", `REPEAT('x', ${bigBytes})`];
  return `
    create table $s.docs (id integer not null primary key, title varchar(100), body ${text});
    insert into $s.docs values (1, 'small', 'short');
    insert into $s.docs values (2, 'big', ${repeat});`;
}

function sqlSource(engine: "postgres" | "mysql", database: string) {
  return engine === "postgres"
    ? {
      type: "postgresql",
      host_url: POSTGRES.host,
      port: POSTGRES.port,
      database: POSTGRES.database,
      credentials: { username_key: "pguser", password_key: "pgpassword" },
    }
    : {
      type: "mysql",
      host_url: MYSQL.host,
      port: MYSQL.port,
      database,
      credentials: { username_key: "myuser", password_key: "mypassword" },
    };
}

function transfer(source: unknown, schema: string, destination: unknown, tables: unknown = null) {
  return {
    project_name: PROJECT,
    project_start_time: START,
    destination,
    extract_config: null,
    source,
    dataset: { name: "docs", schema_name: schema, tables },
  };
}

const DESTINATIONS = [
  { name: "LSC", type: "filestore", format: "csv" },
  { name: "LSC", type: "filestore", format: "duckdb" },
  { type: "postgresql" },
] as const;

/** Work folder with secrets and an empty filestore. */
async function workspace(secrets: Record<string, string>) {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-source-values-"));
  const storage = join(work, "lsc");
  await mkdir(join(work, "secrets"));
  await mkdir(join(storage, "staging"), { recursive: true });
  await mkdir(join(storage, "production"));
  for (const [name, value] of Object.entries({ ...KEYS, ...secrets })) {
    await writeFile(join(work, "secrets", name), value);
  }
  return { work, secrets: join(work, "secrets"), storage };
}

function allLogs(stack: ServiceStack): string {
  return [stack.approval, stack.metadata, stack.publish].flatMap((s) => s.logs).join("\n");
}

Deno.test({
  name:
    "real processes: a value over SOURCE_MAX_VALUE_BYTES is a 422 naming it; nothing is staged " +
    "or loaded; 1 MB descriptions come back capped",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const destination = new DestinationSandbox();
    await using opal = await FakeOpal.start();
    const pgSchema = randomName("cr8_values");
    const myDatabase = randomName("cr8_values");
    const services: ServiceProcess[] = [];
    const space = await workspace({});
    try {
      await pg.createRole();
      await pg.createSchema(pgSchema, docsDdl("postgres", 2 * MIB));
      const s = quotePostgres(pgSchema);
      // COMMENT takes a literal only: build the statements with 1 MB literals server-side.
      await pg.admin.unsafe(`do $$ begin
        execute format('comment on schema %s is %L', '${s}', repeat('s', 1024 * 1024));
        execute format('comment on table %s.docs is %L', '${s}', repeat('t', 1024 * 1024));
        execute format('comment on column %s.docs.body is %L', '${s}', repeat('c', 1024 * 1024));
      end $$`);
      await my.createUser();
      await my.createDatabase(myDatabase, docsDdl("mysql", 2 * MIB));
      await destination.create();
      const passwords = {
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
        destpassword: destination.loaderPassword,
        readerpassword: destination.readerPassword,
        opalpassword: opal.admin.password,
      };
      for (const [name, value] of Object.entries(passwords)) {
        await writeFile(join(space.secrets, name), value);
      }
      const stack = await startStack({
        secrets: space.secrets,
        storage: space.storage,
        allowedSources: [allowedLocalPostgres(), allowedLocalMysql(myDatabase)],
        publishEnv: {
          SOURCE_MAX_VALUE_BYTES: String(MIB),
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
      const admin = destination.admin();
      const destinationState = async () =>
        JSON.stringify([
          await admin`select nspname from pg_catalog.pg_namespace order by 1`,
          await admin`select table_schema, table_name from information_schema.tables
            where table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`,
        ]);
      const forbidden = [...Object.values(passwords), space.work];
      const sources = [
        ["PostgreSQL", sqlSource("postgres", ""), pgSchema],
        ["MariaDB", sqlSource("mysql", myDatabase), myDatabase],
      ] as const;

      for (const [label, source, schema] of sources) {
        for (const target of DESTINATIONS) {
          const name = "format" in target ? `filestore ${target.format}` : "PostgreSQL destination";
          await t.step(`${label} → ${name}: 422 value_too_large, nothing written`, async () => {
            const files = await snapshotTree(space.storage);
            const loaded = await destinationState();
            const reply = await postToService(
              `${stack.approval.url}/project/package`,
              transfer(source, schema, target),
              KEYS.approvalserviceapikey,
            );
            assert.equal(reply.status, 422, JSON.stringify(reply.json).slice(0, 400));
            const payload = assertErrorEnvelope(reply.json, {
              code: "value_too_large",
              forbidden: [...forbidden, VALUE_TEXT],
            });
            assert.equal(
              payload.detail,
              `PublishService: Cannot read table "${schema}"."docs": a value in column "body" ` +
                "is larger than the limit of 1048576 bytes (1 MiB); leave the column out of the " +
                "dataset, or ask the operator to raise SOURCE_MAX_VALUE_BYTES",
            );
            assert.deepEqual(changedPaths(files, await snapshotTree(space.storage)), []);
            assert.equal(await destinationState(), loaded, "the destination database is unchanged");
          });
        }

        await t.step(`${label}: without the big column the same package succeeds`, async () => {
          const reply = await postToService(
            `${stack.approval.url}/project/package`,
            transfer(source, schema, DESTINATIONS[0], [
              { name: "docs", columns: [{ name: "id" }, { name: "title" }] },
            ]),
            KEYS.approvalserviceapikey,
          );
          assert.equal(reply.status, 200, JSON.stringify(reply.json));
        });
      }

      await t.step("no log holds a value or a secret", () => {
        const logs = allLogs(stack);
        for (const value of [VALUE_TEXT, ...Object.values(KEYS), ...Object.values(passwords)]) {
          assert.ok(!logs.includes(value), `a log holds ${value.slice(0, 20)}`);
        }
        assert.match(logs, /value_too_large/);
      });

      await t.step("metadata caps 1 MB descriptions at 4096 characters with a marker", async () => {
        const reply: JsonReply = await postToService(
          `${stack.metadata.url}/metadata/project`,
          transfer(sqlSource("postgres", ""), pgSchema, DESTINATIONS[0], [{ name: "docs" }]),
          KEYS.metadataserviceapikey,
        );
        assert.equal(reply.status, 200, JSON.stringify(reply.json).slice(0, 400));
        const payload = reply.json.payload;
        const docs = payload.tables[0];
        const body = docs.columns.find((c: { name: string }) => c.name === "body");
        for (
          const [description, letter] of [
            [payload.description, "s"],
            [docs.description, "t"],
            [body.description, "c"],
          ]
        ) {
          assert.equal(description.length, MAX_DESCRIPTION_CHARS);
          assert.equal(
            description,
            letter.repeat(MAX_DESCRIPTION_CHARS - TRUNCATION_MARKER.length) + TRUNCATION_MARKER,
          );
        }
        assert.ok(JSON.stringify(reply.json).length < 32 * 1024, "the reply stays small");
      });
    } finally {
      for (const service of services) await service.stop();
      await destination.cleanup();
      await pg.cleanup();
      await my.cleanup();
      await rm(space.work, { recursive: true, force: true });
    }
  },
});

/**
 * Runs a shell command and returns its output: `/proc` of another process needs `--allow-all` in Deno,
 * which `deno task test` does not give, so it is read and written through `bash` (as `tools/bench.ts`).
 */
async function shell(command: string): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", command],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`${command}: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

/** The process's peak resident set since the last reset, in bytes (`VmHWM`). */
async function peakRss(pid: number): Promise<number> {
  const status = await shell(`grep VmHWM /proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
}

/** Resets the peak resident set of a process (Linux `clear_refs` 5). */
async function resetPeakRss(pid: number): Promise<void> {
  await shell(`echo 5 > /proc/${pid}/clear_refs`);
}

/** 400 MiB: generous for a publish service that never holds the value, far below one that does. */
const PEAK_RSS_BOUND = 400 * MIB;

Deno.test({
  name: "real process: a 300 MiB value is refused by the server before it is sent; the publish " +
    "service stays small",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const pgSchema = randomName("cr8_huge");
    const myDatabase = randomName("cr8_huge");
    const services: ServiceProcess[] = [];
    const space = await workspace({});
    const myAdmin = await my.admin();
    // MariaDB cannot build a value longer than max_allowed_packet (16 MiB by default; REPEAT answers
    // NULL), so the test raises it for the insert and puts it back; reading is not limited by it.
    const [[packet]] = await myAdmin.query(
      "SELECT @@GLOBAL.max_allowed_packet AS bytes",
    ) as unknown as [[{ bytes: number }]];
    try {
      await pg.createRole();
      await pg.createSchema(pgSchema, docsDdl("postgres", 300 * MIB));
      await my.createUser();
      await myAdmin.query("SET GLOBAL max_allowed_packet = 1073741824");
      // A new session: max_allowed_packet is read when a session starts.
      const inserter = await mysqlAdmin();
      try {
        await my.createDatabase(myDatabase, "");
        await inserter.query(docsDdl("mysql", 300 * MIB).replaceAll("$s", quoteMysql(myDatabase)));
      } finally {
        await inserter.end();
        await myAdmin.query(`SET GLOBAL max_allowed_packet = ${Number(packet.bytes)}`);
      }
      const [[stored]] = await myAdmin.query(
        `SELECT LENGTH(body) AS bytes FROM ${quoteMysql(myDatabase)}.docs WHERE id = 2`,
      ) as unknown as [[{ bytes: number }]];
      assert.equal(Number(stored.bytes), 300 * MIB, "MariaDB holds the 300 MiB value");

      const passwords = {
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
      };
      for (const [name, value] of Object.entries(passwords)) {
        await writeFile(join(space.secrets, name), value);
      }
      const stack = await startStack({
        secrets: space.secrets,
        storage: space.storage,
        allowedSources: [allowedLocalPostgres(), allowedLocalMysql(myDatabase)],
      }, services);
      const publishPid = stack.publish.pid;
      let exitCode: number | undefined;
      stack.publish.exited.then((code) => exitCode = code);
      const running = () =>
        assert.equal(
          exitCode,
          undefined,
          `the publish service exited (${exitCode}): ${stack.publish.logs.slice(-3).join("\n")}`,
        );
      const sources = [
        ["PostgreSQL", sqlSource("postgres", ""), pgSchema],
        ["MariaDB", sqlSource("mysql", myDatabase), myDatabase],
      ] as const;
      for (const [label, source, schema] of sources) {
        for (const format of ["csv", "duckdb"]) {
          const target = { name: "LSC", type: "filestore", format };
          await t.step(`${label} → ${format}`, async () => {
            running();
            await resetPeakRss(publishPid);
            const reply = await postToService(
              `${stack.publish.url}/data-publish/package`,
              transfer(source, schema, target),
              KEYS.publishserviceapikey,
            );
            const peak = await peakRss(publishPid);
            assert.equal(reply.status, 422, JSON.stringify(reply.json).slice(0, 400));
            assert.equal(reply.json.payload.code, "value_too_large");
            assert.match(reply.json.payload.detail, /column "body" .* 67108864 bytes \(64 MiB\)/);
            // deno-lint-ignore no-console
            console.log(`${label} → ${format}: peak RSS ${(peak / MIB).toFixed(0)} MiB`);
            assert.ok(peak < PEAK_RSS_BOUND, `peak RSS ${(peak / MIB).toFixed(0)} MiB`);
          });
        }
      }
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await my.cleanup();
      await rm(space.work, { recursive: true, force: true });
    }
  },
});
