import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Sql } from "postgres";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import { connectMssqlWith } from "../mssql/mssql_source_database.ts";
import { connectMysql } from "../mysql/mysql_source_database.ts";
import {
  type CatalogTable,
  type TableExtract,
  tableExtracts,
  type TableReader,
} from "../../domain/catalog.ts";
import { encodeCsvRow, encodeCsvRows } from "../../domain/csv.ts";
import { DestinationNameTooLongError } from "../../domain/destination_schema.ts";
import {
  type CanonicalRow,
  type LogicalType,
  truncateToMicroseconds,
} from "../../domain/logical_type.ts";
import {
  DestinationConnectionError,
  type DestinationDataset,
  DestinationLoginRefusedError,
  DestinationProjectConflictError,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  DestinationValueError,
  type LoadedTable,
} from "../../ports/destination_database.ts";
import { type SourceDatabase, SourceUnavailableError } from "../../ports/source_database.ts";
import { readAll, readCsvBytes, withinMs } from "../../tests/contracts/source_database_contract.ts";
import {
  destinationDatabaseContract,
  type DestinationDatabaseUnderTest,
} from "../../tests/contracts/destination_database_contract.ts";
import {
  MysqlSandbox,
  postgresConnectionOptions,
  PostgresSandbox,
  quoteMysql,
  quotePostgres,
} from "../../tests/support/databases.ts";
import { DestinationSandbox } from "../../tests/support/destination_databases.ts";
import { passwordRefusingServer } from "../../tests/support/password_refusing_postgres.ts";
import {
  ignoreMysql,
  ignorePostgres,
  LOCAL_POSTGRES_TLS,
  randomName,
} from "../../tests/support/services.ts";
import { startFakeTdsServer } from "../../tests/support/fake_tds_server.ts";
import { mssqlTablesSchema } from "../../tests/support/fake_tds_w_process.ts";
import {
  createEdgePostgres,
  EDGE_CASES,
  EDGE_TABLE,
  edgeColumnsFor,
  edgeExpectedRows,
  edgeMysqlDdl,
  fillEdgeMysql,
  fillWMysql,
  W_TABLE,
  wCatalogTable,
  wExpectedRow,
  wExpectedRows,
  wMysqlDdl,
  wPostgresSql,
} from "../../tests/support/w_table.ts";
import {
  connectPostgresDestination,
  PostgresDestinationDatabase,
  REGISTRY_SCHEMA,
  REGISTRY_TABLE,
  TEMPORARY_SCHEMA_PREFIX,
  temporarySchemaName,
} from "./postgres_destination.ts";
import { connectPostgres } from "./postgres_source_database.ts";

// ---------------------------------------------------------------------------------------------------
// Helpers

const START = "20250611_093000";
/** `proj_a` is already an identifier, so the destination schema starts with it unchanged. */
const DATASET: DestinationDataset = { project: "proj_a", startTime: START, schemaName: "Oncology" };
const DEST = "proj_a_20250611_093000_oncology";
const OPTIONS = { concurrency: 2, batchRows: 1_000 } as const;

/** Runs `fn` with a fresh destination database and an adapter for it; cleans up whatever happens. */
async function withDestination(
  fn: (destination: PostgresDestinationDatabase, sandbox: DestinationSandbox) => Promise<void>,
): Promise<void> {
  const sandbox = new DestinationSandbox();
  try {
    await sandbox.create();
    const destination = new PostgresDestinationDatabase(sandbox.options());
    try {
      await fn(destination, sandbox);
    } finally {
      await destination.close();
    }
  } finally {
    await sandbox.cleanup();
  }
}

/** Reads the destination back through the PostgreSQL source adapter, i.e. as canonical text. */
function readBack(sandbox: DestinationSandbox): Promise<SourceDatabase> {
  return connectPostgres(postgresConnectionOptions({
    database: sandbox.database,
    username: sandbox.loader,
    password: sandbox.loaderPassword,
  }));
}

/** The destination's table as an extract of all its columns. */
async function destinationExtract(
  db: SourceDatabase,
  schema: string,
  table: string,
): Promise<TableExtract> {
  const catalog = await db.describeSchema(schema, { tables: [table] });
  const found = tableExtracts(catalog).find((e) => e.table.name === table);
  assert.ok(found !== undefined, `table "${schema}.${table}" is missing`);
  return found;
}

function byId(rows: readonly CanonicalRow[]): CanonicalRow[] {
  return [...rows].sort((a, b) => Number(a[0]) - Number(b[0]));
}

async function destinationRows(
  db: SourceDatabase,
  schema: string,
  table: string,
): Promise<CanonicalRow[]> {
  return byId(await readAll(db, await destinationExtract(db, schema, table)));
}

/** Column name, `format_type` and NOT NULL of a destination table, in order. */
async function columnTypes(
  admin: Sql,
  schema: string,
  table: string,
): Promise<[string, string, boolean][]> {
  const rows = await admin<{ name: string; type: string; not_null: boolean }[]>`
    select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null
      from pg_attribute a
     where a.attrelid = to_regclass(format('%I.%I', ${schema}::text, ${table}::text))
       and a.attnum > 0 and not a.attisdropped
     order by a.attnum`;
  return rows.map((r) => [r.name, r.type, r.not_null]);
}

async function primaryKey(admin: Sql, schema: string, table: string): Promise<string[]> {
  const rows = await admin<{ name: string }[]>`
    select a.attname as name
      from pg_constraint c
     cross join lateral unnest(c.conkey) with ordinality as k(attnum, position)
      join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
     where c.conrelid = to_regclass(format('%I.%I', ${schema}::text, ${table}::text))
       and c.contype = 'p'
     order by k.position`;
  return rows.map((r) => r.name);
}

async function temporarySchemas(admin: Sql): Promise<string[]> {
  const rows = await admin<{ name: string }[]>`
    select nspname as name from pg_namespace
     where left(nspname, ${TEMPORARY_SCHEMA_PREFIX.length}::int) = ${TEMPORARY_SCHEMA_PREFIX}
     order by 1`;
  return rows.map((r) => r.name);
}

async function tablesIn(admin: Sql, schema: string): Promise<string[]> {
  const rows = await admin<{ name: string }[]>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = ${schema} and c.relkind = 'r' order by 1`;
  return rows.map((r) => r.name);
}

interface RegistryRow {
  destination_schema: string;
  project_name: string;
  project_start_time: string;
  schema_name: string;
  tables: string[];
  packaged_at: string;
}

async function registryRows(admin: Sql): Promise<RegistryRow[]> {
  return [
    ...await admin<RegistryRow[]>`
    select destination_schema, project_name, project_start_time, schema_name, tables,
           packaged_at::text as packaged_at
      from ${admin(REGISTRY_SCHEMA)}.${admin(REGISTRY_TABLE)} order by destination_schema`,
  ];
}

/** Every row of every table in a schema, as JSON text: a snapshot to compare after a failed load. */
async function snapshot(admin: Sql, schema: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of await tablesIn(admin, schema)) {
    const [row] = await admin.unsafe<{ rows: string | null }[]>(
      `select json_agg(t order by t)::text as rows from ${quotePostgres(schema)}.${
        quotePostgres(table)
      } t`,
    );
    out[table] = row?.rows ?? "[]";
  }
  return out;
}

type ColumnSpec = [name: string, type: LogicalType, nullable?: boolean];

/** A catalogue table; the first column is the primary key. */
function table(name: string, columns: readonly ColumnSpec[]): CatalogTable {
  return {
    name,
    kind: "table",
    description: null,
    primaryKey: [columns[0]![0]],
    columns: columns.map(([column, logicalType, nullable], i) => ({
      name: column,
      dataType: logicalType.kind,
      logicalType,
      nullable: nullable ?? i !== 0,
      description: null,
    })),
  };
}

/** A memory source with one schema; returns it with its extracts. */
function memorySource(
  tables: readonly { table: CatalogTable; rows: readonly CanonicalRow[] }[],
  schema = "src",
): { source: MemorySourceDatabase; extracts: TableExtract[] } {
  const catalog = { name: schema, description: null, tables: tables.map((t) => t.table) };
  const source = new MemorySourceDatabase(
    [catalog],
    new Map(tables.map((t) => [`${schema}.${t.table.name}`, t.rows])),
  );
  return { source, extracts: tableExtracts(catalog) };
}

const INTEGER: LogicalType = { kind: "integer" };
const TEXT: LogicalType = { kind: "text" };

function labels(count: number, prefix: string): CanonicalRow[] {
  return Array.from({ length: count }, (_, i) => [String(i + 1), `${prefix}${i + 1}`]);
}

/** Only the row path of a reader: hides a CSV fast path. */
function rowsOnly(reader: TableReader): TableReader {
  return { readRows: (extract, options) => reader.readRows(extract, options) };
}

function loaded(schema: string, ...names: string[]): LoadedTable[] {
  return names.map((table) => ({ schema, table }));
}

/** The PostgreSQL error code of a rejected promise. */
async function sqlState(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

// ---------------------------------------------------------------------------------------------------
// The port's contract

/** A fresh sandbox and an adapter for it, seen from outside through the superuser connection. */
async function underTest(): Promise<DestinationDatabaseUnderTest> {
  const sandbox = new DestinationSandbox();
  await sandbox.create();
  const admin = sandbox.admin();
  return {
    database: new PostgresDestinationDatabase(sandbox.options()),
    async schemas() {
      const rows = await admin<{ name: string }[]>`
        select n.nspname as name from pg_namespace n join pg_roles r on r.oid = n.nspowner
         where r.rolname = ${sandbox.loader} and n.nspname <> ${REGISTRY_SCHEMA}
         order by n.nspname collate "C"`;
      return rows.map((r) => r.name);
    },
    async rows({ schema, table }) {
      const [found] = await admin<{ exists: boolean }[]>`
        select to_regclass(format('%I.%I', ${schema}::text, ${table}::text)) is not null as exists`;
      if (found?.exists !== true) return undefined;
      const rows = await admin.unsafe(
        `select * from ${quotePostgres(schema)}.${quotePostgres(table)}`,
      ).values();
      return rows.map((row) => row.map((v: unknown) => v === null ? null : String(v)));
    },
    async readableTables() {
      const rows = await admin<{ schema: string; table: string }[]>`
        select table_schema as "schema", table_name as "table"
          from information_schema.role_table_grants
         where grantee = ${sandbox.reader} and privilege_type = 'SELECT'
         order by table_schema collate "C", table_name collate "C"`;
      return rows.map((r) => ({ schema: r.schema, table: r.table }));
    },
    async addForeignSchema(name) {
      await sandbox.asLoader().unsafe(
        `create schema ${quotePostgres(name)}; create table ${quotePostgres(name)}.keep (x int)`,
      );
    },
    cleanup: () => sandbox.cleanup(),
  };
}

Deno.test({
  name: "PostgresDestinationDatabase passes the DestinationDatabase contract",
  ignore: ignorePostgres,
  fn: (t) => destinationDatabaseContract(t, underTest),
});

// ---------------------------------------------------------------------------------------------------
// checkReady

Deno.test({
  name: "PostgresDestinationDatabase checkReady() passes and creates the registry",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      await destination.checkReady();
      await destination.checkReady();
      const [row] = await sandbox.admin()<{ registry: string | null }[]>`
        select to_regclass('cr8tor_publisher.datasets')::text as registry`;
      assert.equal(row?.registry, "cr8tor_publisher.datasets");
    }),
});

Deno.test({
  name:
    "PostgresDestinationDatabase checkReady() fails without CREATE or without the read-only role",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (_destination, sandbox) => {
      const admin = sandbox.admin();
      await admin.unsafe(
        `revoke create on database ${quotePostgres(sandbox.database)} from ${
          quotePostgres(sandbox.loader)
        }`,
      );
      await using noCreate = new PostgresDestinationDatabase(sandbox.options());
      await assert.rejects(
        noCreate.checkReady(),
        (e: unknown) =>
          e instanceof DestinationUnavailableError &&
          e.message.includes(`login "${sandbox.loader}" lacks the CREATE privilege`),
      );
      await admin.unsafe(
        `grant create on database ${quotePostgres(sandbox.database)} to ${
          quotePostgres(sandbox.loader)
        }`,
      );
      await using noReader = new PostgresDestinationDatabase(
        sandbox.options({ readOnlyRole: "cr8_no_such_role" }),
      );
      await assert.rejects(
        noReader.checkReady(),
        (e: unknown) =>
          e instanceof DestinationUnavailableError &&
          e.message.includes(`read-only role "cr8_no_such_role": it does not exist`),
      );
    }),
});

Deno.test("connectPostgresDestination() reports a refused password without revealing it", async () => {
  const password = `s3cret-${crypto.randomUUID()}`;
  await using server = passwordRefusingServer();
  const error = await connectPostgresDestination({
    host: "127.0.0.1",
    port: server.port,
    database: "dest",
    username: "loader",
    password,
    readOnlyRole: "reader",
    tls: LOCAL_POSTGRES_TLS, // the fake has no TLS
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 5_000,
  }).then(() => assert.fail("expected a DestinationUnavailableError"), (e: unknown) => e);
  assert.equal(await server.receivedPassword, password);
  assert.ok(error instanceof DestinationLoginRefusedError, String(error));
  assert.equal(error.message, "The destination database refused the login");
  assert.equal(error.code, "destination_login_refused");
  assert.match(
    String(error.logDetail),
    /^Cannot check the PostgreSQL destination: .*password authentication failed/,
  );
  for (const text of [error.message, String(error.logDetail), String(error.stack)]) {
    assert.ok(!text.includes(password), text);
  }
});

Deno.test({
  name: "PostgresDestinationDatabase fails fast on a closed port and refuses use after close()",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (_destination, sandbox) => {
      const started = performance.now();
      await assert.rejects(
        connectPostgresDestination(sandbox.options({ port: 1 })),
        (e: unknown) => {
          assert.ok(e instanceof DestinationConnectionError, String(e));
          assert.equal(e.message, "Cannot connect to the destination database");
          assert.equal(e.code, "destination_connection_failed");
          assert.match(
            String(e.logDetail),
            /^Cannot check the PostgreSQL destination: .*ECONNREFUSED/,
          );
          assert.ok(!String(e.logDetail).includes(sandbox.loaderPassword));
          return true;
        },
      );
      assert.ok(performance.now() - started < 5_000);
      const ready = await connectPostgresDestination(sandbox.options());
      await ready.close();
      await ready.close();
      await assert.rejects(ready.recover(), DestinationUnavailableError);
      await assert.rejects(
        ready.packagedTables({ project: "p", startTime: START }),
        DestinationUnavailableError,
      );
    }),
});

// ---------------------------------------------------------------------------------------------------
// Type fidelity

const W_TYPES_POSTGRES: [string, string, boolean][] = [
  ["id", "bigint", true],
  ["i", "integer", false],
  ["s", "smallint", false],
  ["amount", "numeric(18,2)", false],
  ["price", "numeric(38,10)", false],
  ["ratio", "double precision", false],
  ["flag", "boolean", false],
  ["created_at", "timestamp with time zone", false],
  ["d", "date", false],
  ["code", "text", false],
  ["txt", "text", false],
  ["maybe", "text", false],
  ["u", "uuid", false],
];

const EDGE_TYPES_POSTGRES: [string, string, boolean][] = [
  ["id", "integer", true],
  ["t", "text", false],
  ["n", "numeric(38,10)", false],
  ["f8", "double precision", false],
  ["f4", "real", false],
  ["i2", "smallint", false],
  ["i4", "integer", false],
  ["i8", "bigint", false],
  ["ts", "timestamp without time zone", false],
  ["tz", "timestamp with time zone", false],
  ["d", "date", false],
  ["tm", "time without time zone", false],
  ["u", "uuid", false],
  ["b", "boolean", false],
  ["bin", "bytea", false],
  ["j", "jsonb", false],
];

const W_ROWS = 2_000;

Deno.test({
  name:
    "PostgresDestinationDatabase load() keeps every W and EDGE value, type and key from PostgreSQL",
  ignore: ignorePostgres,
  fn: async (t) => {
    const source = new PostgresSandbox();
    const schema = randomName("cr8_src");
    try {
      await source.createRole();
      await source.createSchema(schema, wPostgresSql(W_ROWS));
      await createEdgePostgres(source.admin, schema);
      await source.grantSelect(schema);
      await withDestination(async (destination, sandbox) => {
        await using pg = await connectPostgres(source.connectOptions());
        await using back = await readBack(sandbox);
        const admin = sandbox.admin();
        const extracts = tableExtracts(await pg.describeSchema(schema));
        const readers: [string, TableReader][] = [
          ["CSV straight from COPY TO", pg],
          ["rows encoded batch by batch", rowsOnly(pg)],
        ];
        for (const [label, reader] of readers) {
          await t.step(label, async () => {
            const result = await destination.load(DATASET, reader, extracts, {
              concurrency: 2,
              batchRows: 300,
            });
            assert.deepEqual(result, loaded(DEST, EDGE_TABLE, W_TABLE));
            for (const extract of extracts) {
              const name = extract.table.name;
              // Byte for byte the canonical CSV the source itself produces.
              const expected = new TextDecoder().decode(await readCsvBytes(pg, extract));
              const actual = new TextDecoder().decode(
                await readCsvBytes(back, await destinationExtract(back, DEST, name)),
              );
              assert.equal(actual, expected, `CSV of ${name}`);
              assert.deepEqual(await primaryKey(admin, DEST, name), ["id"]);
            }
            assert.deepEqual(await destinationRows(back, DEST, W_TABLE), wExpectedRows(W_ROWS));
            assert.deepEqual(
              await destinationRows(back, DEST, EDGE_TABLE),
              edgeExpectedRows("postgres"),
            );
            assert.deepEqual(await columnTypes(admin, DEST, W_TABLE), W_TYPES_POSTGRES);
            assert.deepEqual(await columnTypes(admin, DEST, EDGE_TABLE), EDGE_TYPES_POSTGRES);
            assert.deepEqual(await temporarySchemas(admin), []);
          });
        }
      });
    } finally {
      await source.cleanup();
    }
  },
});

/** EDGE cases PostgreSQL's `time` cannot hold: MySQL TIME beyond a day. */
const MYSQL_ONLY_TIMES = EDGE_CASES.filter((c) => c.only === "mysql" && c.column === "tm");

Deno.test({
  name:
    "PostgresDestinationDatabase load() keeps every W and EDGE value, type and key from MariaDB",
  ignore: ignorePostgres || ignoreMysql,
  fn: async () => {
    const source = new MysqlSandbox();
    const database = randomName("cr8_src");
    try {
      await source.createUser();
      await source.createDatabase(database, `${wMysqlDdl()}; ${edgeMysqlDdl()};`);
      const mysqlAdmin = await source.admin();
      await fillWMysql(mysqlAdmin, database, W_ROWS);
      await fillEdgeMysql(mysqlAdmin, database);
      assert.equal(MYSQL_ONLY_TIMES.length, 2);
      await mysqlAdmin.query(
        `DELETE FROM ${quoteMysql(database)}.${quoteMysql(EDGE_TABLE)} WHERE id IN (?)`,
        [MYSQL_ONLY_TIMES.map((c) => c.id)],
      );
      await withDestination(async (destination, sandbox) => {
        await using my = await connectMysql(source.connectOptions());
        await using back = await readBack(sandbox);
        const admin = sandbox.admin();
        const extracts = tableExtracts(await my.describeSchema(database));
        assert.equal(typeof my.readCsv, "function", "MariaDB streams its CSV into COPY");
        const result = await destination.load(DATASET, my, extracts, OPTIONS);
        assert.deepEqual(result, loaded(DEST, EDGE_TABLE, W_TABLE));

        const skipped = new Set(MYSQL_ONLY_TIMES.map((c) => String(c.id)));
        const edgeExpected = edgeExpectedRows("mysql").filter((r) => !skipped.has(r[0]!));
        assert.deepEqual(await destinationRows(back, DEST, W_TABLE), wExpectedRows(W_ROWS));
        assert.deepEqual(await destinationRows(back, DEST, EDGE_TABLE), edgeExpected);
        for (const extract of extracts) {
          assert.deepEqual(
            await destinationRows(back, DEST, extract.table.name),
            byId(await readAll(my, extract)),
          );
          assert.deepEqual(await primaryKey(admin, DEST, extract.table.name), ["id"]);
        }
        // MariaDB's W has u as CHAR(36) (text); its JSON keeps MariaDB's own text in json.
        const wTypes = W_TYPES_POSTGRES.map(([n, type, nn]): [string, string, boolean] => [
          n,
          n === "u" ? "text" : type,
          nn,
        ]);
        const edgeTypes = EDGE_TYPES_POSTGRES.map(([n, type, nn]): [string, string, boolean] => [
          n,
          n === "j" ? "json" : type,
          nn,
        ]);
        assert.deepEqual(await columnTypes(admin, DEST, W_TABLE), wTypes);
        assert.deepEqual(await columnTypes(admin, DEST, EDGE_TABLE), edgeTypes);
      });
    } finally {
      await source.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresDestinationDatabase load() keeps SQL Server's W and EDGE values, 100 ns cut to µs",
  ignore: ignorePostgres,
  fn: async () => {
    const password = `Fake-${crypto.randomUUID()}`;
    await using tds = await startFakeTdsServer({
      userName: "reader",
      password,
      schemas: [mssqlTablesSchema("dbo", W_ROWS)],
    });
    await withDestination(async (destination, sandbox) => {
      await using ms = await connectMssqlWith({
        host: "127.0.0.1",
        port: tds.port,
        database: "clinic",
        username: "reader",
        password,
        connectTimeoutMs: 5_000,
        statementTimeoutMs: 30_000,
      }, { encrypt: false });
      await using back = await readBack(sandbox);
      const extracts = tableExtracts(await ms.describeSchema("dbo"));
      assert.deepEqual(
        await destination.load(DATASET, ms, extracts, OPTIONS),
        loaded(DEST, EDGE_TABLE, W_TABLE),
      );
      assert.deepEqual(await destinationRows(back, DEST, W_TABLE), wExpectedRows(W_ROWS));
      // Every edge value comes back as SQL Server's canonical text, except that times and timestamps
      // hold microseconds: a seventh digit is dropped, never rounded.
      const columns = edgeColumnsFor("mssql");
      const temporal = new Set(["time", "timestamp", "timestamptz"]);
      const expected = edgeExpectedRows("mssql").map((row) =>
        row.map((v, i) =>
          v !== null && temporal.has(columns[i]!.logicalType.kind) ? truncateToMicroseconds(v) : v
        )
      );
      const actual = await destinationRows(back, DEST, EDGE_TABLE);
      assert.deepEqual(actual, expected);
      const value = (column: string, label: string) => {
        const c = EDGE_CASES.find((x) => x.column === column && x.label === label);
        assert.ok(c, `${column}: ${label}`);
        return actual.find((r) => r[0] === String(c.id))?.[
          columns.findIndex((x) => x.name === column)
        ];
      };
      // Rounding (what PostgreSQL's COPY would do with seven digits) would have moved these on.
      assert.equal(value("ts", "the last tick of a year"), "2020-12-31 23:59:59.999999");
      assert.equal(
        value("tz", "the last tick of year 9999 in UTC"),
        "9999-12-31 23:59:59.999999+00",
      );
      assert.equal(value("tm", "the last tick of a day"), "23:59:59.999999");
      assert.equal(value("m", "money max"), "922337203685477.5807");
    });
  },
});

Deno.test({
  name: "PostgresDestinationDatabase load() quotes every identifier on both paths",
  ignore: ignorePostgres,
  fn: async () => {
    const source = new PostgresSandbox();
    const schema = `${randomName("cr8_src")}_Odd'"S`;
    const odd = 'Odd "T", x';
    try {
      await source.createRole();
      await source.createSchema(
        schema,
        `create table $s."Odd ""T"", x" ("a,b" int primary key, """q""" text, "Ünï" text not null);
         insert into $s."Odd ""T"", x" values (1, 'one', ''), (2, null, 'x,"y"'), (3, '\\.', 'é')`,
      );
      const dataset = { project: "q", startTime: START, schemaName: `S'"` };
      const dest = `q_${START}_s'"`;
      await withDestination(async (destination, sandbox) => {
        await using pg = await connectPostgres(source.connectOptions());
        await using back = await readBack(sandbox);
        const extracts = tableExtracts(await pg.describeSchema(schema));
        const expected = [["1", "one", ""], ["2", null, 'x,"y"'], ["3", "\\.", "é"]];
        for (const reader of [pg, rowsOnly(pg)]) {
          assert.deepEqual(
            await destination.load(dataset, reader, extracts, OPTIONS),
            loaded(dest, odd),
          );
          assert.deepEqual(await destinationRows(back, dest, odd), expected);
          assert.deepEqual(
            (await columnTypes(sandbox.admin(), dest, odd)).map((c) => c[0]),
            ["a,b", '"q"', "Ünï"],
          );
        }
      });
    } finally {
      await source.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresDestinationDatabase load() takes the canonical text of the types W and EDGE lack",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const rows: CanonicalRow[] = [
        [
          "1",
          "1 year 2 mons -3 days +04:05:06.5",
          "NaN",
          "0.000000000000000000000000000001",
          "[1, 2]",
        ],
        [
          "2",
          "-00:00:01",
          "Infinity",
          "-12345678901234567890123456789012345.123456789012345678901234567890",
          '{"b":1,"a":2}',
        ],
        ["3", "00:00:00", "-Infinity", "0.000000000000000000000000000000", ' {"kept": "as is"} '],
        [
          "4",
          "178000000 years",
          "123456789012345678901234567890.1234567890123456789",
          "1.500000000000000000000000000000",
          null,
        ],
      ];
      const source = memorySource([{
        table: table("more", [
          ["id", INTEGER],
          ["span", { kind: "interval" }],
          ["num", { kind: "numeric" }],
          ["wide", { kind: "decimal", precision: 65, scale: 30 }],
          ["doc", { kind: "json" }],
        ]),
        rows,
      }]);
      await destination.load(DATASET, source.source, source.extracts, OPTIONS);
      await using back = await readBack(sandbox);
      assert.deepEqual(await destinationRows(back, DEST, "more"), rows);
      assert.deepEqual(
        (await columnTypes(sandbox.admin(), DEST, "more")).map((c) => c[1]),
        ["integer", "interval", "numeric", "numeric(65,30)", "json"],
      );
    }),
});

// ---------------------------------------------------------------------------------------------------
// Atomic replace

const V1 = [
  { table: table("small", [["id", INTEGER], ["label", TEXT]]), rows: labels(3, "v1-") },
  { table: table("big", [["id", INTEGER], ["v", TEXT]]), rows: labels(100, "big-v1-") },
];

Deno.test({
  name:
    "PostgresDestinationDatabase load() that fails leaves the previous dataset and nothing else",
  ignore: ignorePostgres,
  fn: (t) =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const v1 = memorySource(V1);
      assert.deepEqual(
        await destination.load(DATASET, v1.source, v1.extracts, OPTIONS),
        loaded(DEST, "big", "small"),
      );
      const before = await snapshot(admin, DEST);
      const registryBefore = await registryRows(admin);
      assert.deepEqual(
        [...await admin.unsafe(`select id, label from ${quotePostgres(DEST)}.small order by id`)],
        [1, 2, 3].map((id) => ({ id, label: `v1-${id}` })),
      );

      async function assertUnchanged(): Promise<void> {
        assert.deepEqual(await snapshot(admin, DEST), before);
        assert.deepEqual(await registryRows(admin), registryBefore);
        assert.deepEqual(await temporarySchemas(admin), []);
        assert.deepEqual(await destination.recover(), []);
      }

      await t.step("the source fails midway while another table loads", async () => {
        const v2 = memorySource([
          { table: V1[0]!.table, rows: labels(5, "v2-") },
          { table: V1[1]!.table, rows: labels(20_000, "big-v2-") },
        ]);
        v2.source.failAfterRows(10_000);
        await assert.rejects(
          destination.load(DATASET, v2.source, v2.extracts, OPTIONS),
          SourceUnavailableError,
        );
        await assertUnchanged();
      });

      const refusals: [label: string, ColumnSpec, CanonicalRow[], RegExp][] = [
        [
          "a MySQL TIME past a day in the last row",
          ["tm", { kind: "time" }],
          [["1", "00:00:00"], ["2", "838:59:59"]],
          /^Cannot load table "proj_a_20250611_093000_oncology\.refused" into the destination \(row 2, column "tm"\): a date or time is outside the range of the column's type \(SQLSTATE 22008\)$/,
        ],
        [
          "a NUL character in text",
          ["t", TEXT],
          [["1", "ok"], ["2", "nul\u0000here"], ["3", "ok"]],
          /\(row 2, column "t"\): the text holds a NUL character, which PostgreSQL cannot store$/,
        ],
        [
          "an unpaired surrogate",
          ["t", TEXT],
          [["1", "ok"], ["2", "half \uD800 pair"]],
          /\(row 2, column "t"\): the text holds an unpaired UTF-16 surrogate/,
        ],
        [
          "a duplicate primary key in the middle",
          ["t", TEXT],
          [
            ...labels(2_499, "k"),
            ["1", "again"],
            ...labels(3_000, "z").map((r) => [
              String(Number(r[0]) + 10_000),
              r[1]!,
            ]),
          ],
          /\(row 2500\): a duplicate primary key \(SQLSTATE 23505\)$/,
        ],
        [
          "an invalid number",
          ["n", { kind: "decimal", precision: 4, scale: 2 }],
          [["1", "12.34"], ["2", "123.45"]],
          /\(row 2, column "n"\): a number is outside the range of the column's type \(SQLSTATE 22003\)$/,
        ],
      ];
      await t.step(
        "the destination refuses a value in a CSV stream, counting rows after the header",
        async () => {
          const extract = {
            schema: "src",
            table: table("refused", [["id", INTEGER], ["tm", { kind: "time" }]]),
          };
          const csv: TableReader = {
            readRows: () => assert.fail("the CSV path must be used"),
            async *readCsv() {
              yield new TextEncoder().encode("id,tm\n1,00:00:00\n2,25:00:00\n3,01:00:00\n");
            },
          };
          await assert.rejects(
            withinMs(destination.load(DATASET, csv, [extract], OPTIONS), 20_000, "load()"),
            (e: unknown) =>
              e instanceof DestinationValueError && e.where.row === 2 && e.where.column === "tm" &&
              !e.message.includes("25:00"),
          );
          await assertUnchanged();
        },
      );

      for (const [label, column, rows, message] of refusals) {
        await t.step(`the destination refuses ${label}`, async () => {
          const bad = memorySource([
            { table: table("refused", [["id", INTEGER], column]), rows },
          ]);
          // A refusal the server sends after the last row must not leave the load waiting forever.
          const loading = destination.load(DATASET, bad.source, bad.extracts, OPTIONS);
          await assert.rejects(
            withinMs(loading, 20_000, `load() with ${label}`),
            (e: unknown) => {
              assert.ok(e instanceof DestinationValueError, String(e));
              assert.match(e.message, message);
              for (const row of rows) {
                const value = row[1]!;
                if (!/^(ok|\d+|[a-z]\d+)$/.test(value)) {
                  assert.ok(!e.message.includes(value), `the message shows "${value}"`);
                }
              }
              assert.equal(e.cause, undefined, "the server's message quotes the value");
              return true;
            },
          );
          await assertUnchanged();
        });
      }
    }),
});

Deno.test({
  name: "PostgresDestinationDatabase load() again replaces the dataset's tables and registry row",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const v1 = memorySource(V1);
      await destination.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const [first] = await registryRows(admin);

      const v2 = memorySource([
        { table: table("small", [["id", INTEGER], ["label", TEXT]]), rows: labels(2, "v2-") },
        { table: table("added", [["k", { kind: "bigint" }]]), rows: [["7"]] },
      ]);
      assert.deepEqual(
        await destination.load(DATASET, v2.source, v2.extracts, OPTIONS),
        loaded(DEST, "added", "small"),
      );
      assert.deepEqual(await tablesIn(admin, DEST), ["added", "small"]);
      const rows = await admin.unsafe(
        `select id, label from ${quotePostgres(DEST)}.small order by id`,
      );
      assert.deepEqual([...rows], [{ id: 1, label: "v2-1" }, { id: 2, label: "v2-2" }]);
      const [second] = await registryRows(admin);
      assert.deepEqual(
        { ...second, packaged_at: undefined },
        {
          destination_schema: DEST,
          project_name: "proj_a",
          project_start_time: START,
          schema_name: "Oncology",
          tables: ["added", "small"],
          packaged_at: undefined,
        },
      );
      assert.ok(second!.packaged_at > first!.packaged_at);
      assert.deepEqual(
        await destination.packagedTables({ project: "proj_a", startTime: START }),
        loaded(DEST, "added", "small"),
      );
    }),
});

Deno.test({
  name:
    "PostgresDestinationDatabase adds the registry's released column to an older registry; its rows read as unknown",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const run = { project: "proj_a", startTime: START };
      const v1 = memorySource(V1);
      await destination.load(DATASET, v1.source, v1.extracts, OPTIONS);
      assert.equal((await destination.releasedDatasets(run))[0]?.tables?.length, V1.length);
      // A registry written by a version without the column: a row loaded then, and no column.
      await sandbox.admin().unsafe(
        `alter table ${quotePostgres(REGISTRY_SCHEMA)}.${quotePostgres(REGISTRY_TABLE)}
           drop column released`,
      );
      await using upgraded = new PostgresDestinationDatabase(sandbox.options());
      assert.deepEqual(await upgraded.releasedDatasets(run), [
        { schemaName: "Oncology", schema: DEST, tables: null },
      ]);
      const again = memorySource(V1);
      await upgraded.load(DATASET, again.source, again.extracts, OPTIONS);
      assert.deepEqual(
        (await upgraded.releasedDatasets(run))[0]?.tables?.map((t) => t.name),
        V1.map((t) => t.table.name),
      );
    }),
});

Deno.test({
  name: "PostgresDestinationDatabase load() refuses a schema of another dataset or not its own",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const v1 = memorySource(V1);
      await destination.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const before = await snapshot(admin, DEST);
      // Same schema once lower-cased: "Oncology" and "oncology".
      await assert.rejects(
        destination.load({ ...DATASET, schemaName: "oncology" }, v1.source, v1.extracts, OPTIONS),
        (e: unknown) =>
          e instanceof DestinationSchemaConflictError && e.code === "destination_schema_conflict" &&
          e.message ===
            `Cannot load into destination schema "${DEST}": it holds dataset "Oncology" of project ` +
              `"proj_a" started ${START}`,
      );
      assert.deepEqual(await snapshot(admin, DEST), before);

      const foreign = `other_${START}_oncology`;
      await sandbox.asLoader().unsafe(
        `create schema ${quotePostgres(foreign)}; create table ${
          quotePostgres(foreign)
        }.keep (x int)`,
      );
      await assert.rejects(
        destination.load({ ...DATASET, project: "other" }, v1.source, v1.extracts, OPTIONS),
        (e: unknown) =>
          e instanceof DestinationSchemaConflictError && e.owner === undefined &&
          /was not created by the publish service/.test(e.message),
      );
      assert.deepEqual(await tablesIn(admin, foreign), ["keep"]);
      assert.deepEqual(await temporarySchemas(admin), []);
      assert.equal((await registryRows(admin)).length, 1);
    }),
});

/**
 * Two project names with the same identifier: both map to `study_alpha`, and the first 8 hex digits of
 * their SHA-256 are both `b8db74d2` (found by a birthday search over separator and case variants).
 */
const COLLIDING = ["study#&)ALPHA", "Study +~#alpha"] as const;

Deno.test({
  name: "PostgresDestinationDatabase load() keeps projects whose names differ only in case apart",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const v1 = memorySource(V1);
      const schemas = [];
      for (const project of ["Demo Project", "DEMO PROJECT", "demo_project"]) {
        const [loadedTable] = await destination.load(
          { ...DATASET, project },
          v1.source,
          v1.extracts,
          OPTIONS,
        );
        schemas.push(loadedTable!.schema);
      }
      assert.equal(new Set(schemas).size, 3, JSON.stringify(schemas));
      assert.equal(schemas[2], `demo_project_${START}_oncology`);
      for (const [i, project] of ["Demo Project", "DEMO PROJECT", "demo_project"].entries()) {
        assert.deepEqual(
          (await destination.packagedTables({ project, startTime: START })).map((t) => t.schema),
          [schemas[i], schemas[i]],
        );
      }
      assert.equal((await registryRows(sandbox.admin())).length, 3);
    }),
});

Deno.test({
  name:
    "PostgresDestinationDatabase load() refuses a project whose identifier another project holds",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const [first, second] = COLLIDING;
      const sha8 = (text: string) =>
        createHash("sha256").update(text, "utf8").digest("hex").slice(0, 8);
      assert.equal(sha8(first), sha8(second), "the two names must collide");
      const identifier = `study_alpha_${sha8(first)}`;
      const admin = sandbox.admin();
      const v1 = memorySource(V1);
      await destination.load({ ...DATASET, project: first }, v1.source, v1.extracts, OPTIONS);
      const schema = `${identifier}_${START}_oncology`;
      const before = await snapshot(admin, schema);
      const registryBefore = await registryRows(admin);
      // Another start time and schema: a schema of its own, but the same OPAL project.
      for (
        const dataset of [
          { project: second, startTime: "20250612_000000", schemaName: "other" },
          { project: second, startTime: START, schemaName: "Oncology" },
        ]
      ) {
        await assert.rejects(
          destination.load(dataset, v1.source, v1.extracts, OPTIONS),
          (e: unknown) =>
            e instanceof DestinationProjectConflictError &&
            e.code === "destination_project_conflict" &&
            e.message ===
              `Cannot load project "${second}": its PostgreSQL and OPAL identifier "${identifier}" ` +
                `belongs to project "${first}"; choose another project name`,
        );
      }
      assert.deepEqual(await snapshot(admin, schema), before);
      assert.deepEqual(await registryRows(admin), registryBefore);
      assert.deepEqual(await temporarySchemas(admin), []);
      assert.deepEqual(await destination.packagedTables({ project: second, startTime: START }), []);
    }),
});

Deno.test({
  name:
    "PostgresDestinationDatabase load() refuses names PostgreSQL would cut before creating anything",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const v1 = memorySource(V1);
      await assert.rejects(
        destination.load(
          { ...DATASET, project: "p".repeat(40), schemaName: "s".repeat(10) },
          v1.source,
          v1.extracts,
          OPTIONS,
        ),
        (e: unknown) => e instanceof DestinationNameTooLongError && e.kind === "schema",
      );
      const long = memorySource([{ table: table("t".repeat(64), [["id", INTEGER]]), rows: [] }]);
      await assert.rejects(
        destination.load(DATASET, long.source, long.extracts, OPTIONS),
        (e: unknown) => e instanceof DestinationNameTooLongError && e.kind === "table",
      );
      const [row] = await sandbox.admin()<{ schemas: number }[]>`
        select count(*)::int as schemas from pg_namespace n join pg_roles r on r.oid = n.nspowner
         where r.rolname = ${sandbox.loader}`;
      assert.equal(row?.schemas, 0);
    }),
});

// ---------------------------------------------------------------------------------------------------
// Read access

Deno.test({
  name:
    "PostgresDestinationDatabase grantReadAccess() lets the read-only role SELECT exactly those tables",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      // Default privileges a DBA might have set must not expose a load before publish.
      await admin.unsafe(
        `alter default privileges for role ${quotePostgres(sandbox.loader)}
           grant select on tables to ${quotePostgres(sandbox.reader)};
         alter default privileges for role ${quotePostgres(sandbox.loader)}
           grant usage on schemas to ${quotePostgres(sandbox.reader)}`,
      );
      const v1 = memorySource(V1);
      await destination.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const reader = sandbox.asReader();
      const small = `${quotePostgres(DEST)}.small`;
      const big = `${quotePostgres(DEST)}.big`;
      assert.equal(await sqlState(reader.unsafe(`select * from ${small}`)), "42501");

      const grant = loaded(DEST, "small");
      await destination.grantReadAccess(grant);
      await destination.grantReadAccess(grant);
      assert.equal((await reader.unsafe(`select * from ${small}`)).length, 3);
      assert.equal(await sqlState(reader.unsafe(`select * from ${big}`)), "42501");
      assert.equal(await sqlState(reader.unsafe(`insert into ${small} values (9, 'x')`)), "42501");
      assert.equal(await sqlState(reader.unsafe(`update ${small} set label = 'x'`)), "42501");
      assert.equal(
        await sqlState(reader.unsafe(`create table ${quotePostgres(DEST)}.x (i int)`)),
        "42501",
      );
      assert.equal(
        await sqlState(reader.unsafe(`select * from cr8tor_publisher.datasets`)),
        "42501",
      );
      const grants = await admin<{ schema: string; table: string; privilege: string }[]>`
        select table_schema as "schema", table_name as "table", privilege_type as privilege
          from information_schema.role_table_grants where grantee = ${sandbox.reader}`;
      assert.deepEqual([...grants], [{ schema: DEST, table: "small", privilege: "SELECT" }]);

      await assert.rejects(
        destination.grantReadAccess([...grant, { schema: DEST, table: "nope" }]),
        (e: unknown) =>
          e instanceof DestinationTablesNotPackagedError &&
          e.message === `Cannot grant read access to "${DEST}.nope": not packaged`,
      );
      await assert.rejects(
        destination.grantReadAccess(loaded("cr8tor_publisher", "datasets")),
        DestinationTablesNotPackagedError,
      );

      // A new load hides the data again until the next publish.
      await destination.load(DATASET, v1.source, v1.extracts, OPTIONS);
      assert.equal(await sqlState(reader.unsafe(`select * from ${small}`)), "42501");
    }),
});

// ---------------------------------------------------------------------------------------------------
// packagedTables

Deno.test({
  name:
    "PostgresDestinationDatabase packagedTables() finds a run's tables by registry, not by prefix",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const one = (name: string) =>
        memorySource([{ table: table(name, [["id", INTEGER]]), rows: [["1"]] }]);
      const loads: [DestinationDataset, string[]][] = [
        [{ project: "a", startTime: "20250101_000000", schemaName: "s" }, ["t2", "t1"]],
        // Its schema starts with run a/20250101_000000's prefix, which fooled the reference.
        [{ project: "a_20250101_000000_x", startTime: "20250101_000000", schemaName: "s" }, ["t3"]],
        [{ project: "a", startTime: "20250202_000000", schemaName: "s" }, ["t4"]],
        [{ project: "a", startTime: "20250101_000000", schemaName: "R" }, ["t5"]],
        [{ project: "b", startTime: "20250101_000000", schemaName: "s" }, ["t6"]],
      ];
      for (const [dataset, names] of loads) {
        const tables = names.map((n) => one(n));
        const source = new MemorySourceDatabase(
          [{ name: "src", description: null, tables: tables.map((x) => x.extracts[0]!.table) }],
          new Map(names.map((n) => [`src.${n}`, [["1"]]])),
        );
        await destination.load(dataset, source, tables.map((x) => x.extracts[0]!), OPTIONS);
      }
      assert.ok("a_20250101_000000_x_20250101_000000_s".startsWith("a_20250101_000000"));

      assert.deepEqual(
        await destination.packagedTables({ project: "a", startTime: "20250101_000000" }),
        [
          ...loaded("a_20250101_000000_r", "t5"),
          ...loaded("a_20250101_000000_s", "t1", "t2"),
        ],
      );
      assert.deepEqual(
        await destination.packagedTables({ project: "A", startTime: "20250101_000000" }),
        [],
      );
      assert.deepEqual(
        await destination.packagedTables({ project: "a", startTime: "20250303_000000" }),
        [],
      );
      // A table dropped by hand is no longer offered to OPAL.
      await sandbox.asLoader().unsafe(`drop table "a_20250101_000000_s".t1`);
      assert.deepEqual(
        await destination.packagedTables({ project: "a", startTime: "20250101_000000" }),
        [...loaded("a_20250101_000000_r", "t5"), ...loaded("a_20250101_000000_s", "t2")],
      );
    }),
});

// ---------------------------------------------------------------------------------------------------
// recover

/** A reader that yields one row, then waits at a gate before the last one. */
class GatedReader implements TableReader {
  readonly waiting = Promise.withResolvers<void>();
  readonly gate = Promise.withResolvers<void>();

  async *readRows(): AsyncIterable<CanonicalRow[]> {
    yield [["1", "first"]];
    this.waiting.resolve();
    await this.gate.promise;
    yield [["2", "second"]];
  }
}

Deno.test({
  name: "PostgresDestinationDatabase recover() drops a crashed load's schema but not a running one",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const loader = sandbox.asLoader();
      await destination.checkReady();
      // What a crashed process leaves: a temporary schema whose lock nobody holds.
      const crashed = temporarySchemaName();
      await loader.unsafe(
        `create schema ${quotePostgres(crashed)}; create table ${quotePostgres(crashed)}.t (i int);
         insert into ${quotePostgres(crashed)}.t values (1)`,
      );
      // Not ours despite the prefix: never dropped.
      await loader.unsafe(`create schema "${TEMPORARY_SCHEMA_PREFIX}notes"`);

      const gated = new GatedReader();
      const running = destination.load(
        DATASET,
        gated,
        [{ schema: "src", table: table("g", [["id", INTEGER], ["v", TEXT]]) }],
        OPTIONS,
      );
      await gated.waiting.promise;
      const live = (await temporarySchemas(admin)).filter(
        (s) => s !== crashed && s !== `${TEMPORARY_SCHEMA_PREFIX}notes`,
      );
      assert.equal(live.length, 1);

      // Another process recovering meanwhile.
      await using other = new PostgresDestinationDatabase(sandbox.options());
      assert.deepEqual(await other.recover(), [crashed]);
      assert.deepEqual(
        await temporarySchemas(admin),
        [...live, `${TEMPORARY_SCHEMA_PREFIX}notes`].sort(),
      );
      assert.deepEqual(await other.recover(), []);

      gated.gate.resolve();
      assert.deepEqual(await running, loaded(DEST, "g"));
      assert.deepEqual(await temporarySchemas(admin), [`${TEMPORARY_SCHEMA_PREFIX}notes`]);
      const rows = await admin.unsafe(`select id, v from ${quotePostgres(DEST)}.g order by id`);
      assert.deepEqual([...rows], [{ id: 1, v: "first" }, { id: 2, v: "second" }]);
    }),
});

// ---------------------------------------------------------------------------------------------------
// Streaming

const STREAM_ROWS = 200_000;
const STREAM_BATCH = 2_000;

/**
 * Generates W rows lazily and, before each batch, asks PostgreSQL how many rows its COPY has processed:
 * the difference is what sits between the generator and the server (our buffers, the socket's).
 */
class ProgressReader implements TableReader {
  readonly #admin: Sql;
  readonly #database: string;
  maxLagRows = 0;
  produced = 0;

  constructor(admin: Sql, database: string) {
    this.#admin = admin;
    this.#database = database;
  }

  async *batches(batchRows: number): AsyncGenerator<CanonicalRow[], void, undefined> {
    for (let start = 1; start <= STREAM_ROWS; start += batchRows) {
      if (this.produced > 0) {
        const [row] = await this.#admin<{ processed: string }[]>`
          select coalesce(max(tuples_processed), 0)::text as processed
            from pg_stat_progress_copy where datname = ${this.#database} and command = 'COPY FROM'`;
        this.maxLagRows = Math.max(this.maxLagRows, this.produced - Number(row?.processed));
      }
      const end = Math.min(STREAM_ROWS, start + batchRows - 1);
      const batch: CanonicalRow[] = [];
      for (let id = start; id <= end; id++) batch.push(wExpectedRow(id));
      this.produced += batch.length;
      yield batch;
    }
  }

  readRows(_extract: TableExtract, options?: { batchRows?: number }) {
    return this.batches(options?.batchRows ?? STREAM_BATCH);
  }
}

/** The same, offering canonical CSV like a PostgreSQL source does. */
class ProgressCsvReader extends ProgressReader {
  async *readCsv(extract: TableExtract): AsyncIterable<Uint8Array> {
    const encoder = new TextEncoder();
    yield encoder.encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
    for await (const batch of this.batches(STREAM_BATCH)) {
      yield encoder.encode(encodeCsvRows(batch));
    }
  }
}

Deno.test({
  name: "PostgresDestinationDatabase load() streams a long table without piling up batches",
  ignore: ignorePostgres,
  fn: (t) =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const extract = { schema: "src", table: wCatalogTable() };
      for (
        const reader of [
          new ProgressReader(admin, sandbox.database),
          new ProgressCsvReader(admin, sandbox.database),
        ]
      ) {
        await t.step(reader.constructor.name, async () => {
          await destination.load(DATASET, reader, [extract], {
            concurrency: 1,
            batchRows: STREAM_BATCH,
          });
          const [row] = await admin.unsafe(
            `select count(*)::int as n from ${quotePostgres(DEST)}.wide`,
          );
          assert.equal(row?.n, STREAM_ROWS);
          assert.equal(reader.produced, STREAM_ROWS);
          // About 185 bytes a row. Seen here: under two batches, what the socket buffers hold, and
          // up to 11 batches when other tests share the two cores (the server reports its progress
          // late). Piling up batches would let the lag grow towards the whole table (100 batches).
          assert.ok(
            reader.maxLagRows <= STREAM_BATCH * 20,
            `${reader.maxLagRows} rows were produced but not yet processed by the server`,
          );
        });
      }
    }),
});

Deno.test({
  name:
    "PostgresDestinationDatabase load() aborted while rows stream ends the server's COPY and drops the temporary schema",
  ignore: ignorePostgres,
  fn: (t) =>
    withDestination(async (destination, sandbox) => {
      const admin = sandbox.admin();
      const extract = { schema: "src", table: wCatalogTable() };
      for (
        const reader of [
          new ProgressReader(admin, sandbox.database),
          new ProgressCsvReader(admin, sandbox.database),
        ]
      ) {
        await t.step(reader.constructor.name, async () => {
          const controller = new AbortController();
          const reason = new Error("cancelled by the test");
          let reports = 0;
          await assert.rejects(
            withinMs(
              destination.load(DATASET, reader, [extract], {
                concurrency: 1,
                batchRows: STREAM_BATCH,
                signal: controller.signal,
                onProgress: () => {
                  if (++reports === 5) controller.abort(reason);
                },
              }),
              20_000,
              "the aborted load()",
            ),
            (e: unknown) => e === reason,
          );
          assert.ok(reader.produced < STREAM_ROWS, `${reader.produced} rows were produced`);
          const copies = await admin<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity
             where datname = ${sandbox.database} and state <> 'idle' and query ilike 'copy %'`;
          assert.equal(copies[0]?.n, 0, "a COPY is still running");
          assert.deepEqual(await temporarySchemas(admin), []);
          assert.deepEqual(await tablesIn(admin, DEST), []);
        });
      }
    }),
});
