import assert from "node:assert/strict";
import postgres from "postgres";
import type { TableExtract } from "../../domain/catalog.ts";
import {
  SchemaNotFoundError,
  SourceConnectionError,
  type SourceDatabase,
  SourceLoginRefusedError,
  SourceUnavailableError,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  encodedCsv,
  FIXTURE_SCHEMA_COMMENT,
  measureStreaming,
  readAll,
  readCsvBytes,
  sourceDatabaseContract,
  type SourceDatabaseFixture,
  withinMs,
} from "../../tests/contracts/source_database_contract.ts";
import { ignorePostgres, POSTGRES, randomName } from "../../tests/support/services.ts";
import {
  postgresAdmin,
  postgresConnectionOptions,
  PostgresSandbox,
  quotePostgres,
} from "../../tests/support/databases.ts";
import {
  createEdgePostgres,
  EDGE_TABLE,
  edgeExpectedRows,
  W_TABLE,
  wPostgresSql,
} from "../../tests/support/w_table.ts";
import { assertConnectFailure } from "../../tests/support/connect_failures.ts";
import { passwordRefusingServer } from "../../tests/support/password_refusing_postgres.ts";
import {
  connectPostgres,
  POSTGRES_APPLICATION_NAME,
  postgresClientOptions,
  PostgresSourceDatabase,
} from "./postgres_source_database.ts";

/**
 * The contract's standard fixture in PostgreSQL. `patients` also had a column dropped after creation, so
 * its attribute numbers have a gap that must not show.
 */
const STANDARD_FIXTURE = `
  comment on schema $s is '${FIXTURE_SCHEMA_COMMENT}';
  create table $s.patients (
    id integer primary key,
    nhs_number varchar(10) not null,
    birth_date date,
    legacy_code text,
    weight numeric(6,2)
  );
  alter table $s.patients drop column legacy_code;
  comment on table $s.patients is 'One row per patient';
  comment on column $s.patients.nhs_number is 'NHS number';
  create table $s.visits (
    visit_no integer not null,
    patient_id integer not null,
    visited_on date not null,
    notes text,
    primary key (patient_id, visit_no)
  );
  comment on column $s.visits.notes is 'Free text';
  create table $s.audit_log (event varchar(100) not null, logged_at timestamp);
  create view $s.patient_names as select id, nhs_number from $s.patients;
  insert into $s.patients (id, nhs_number, birth_date, weight) values
    (1, '9434765919', '1980-02-29', 72.50), (2, '', null, null), (3, 'x,"y"', '2000-12-31', -0.05);
  insert into $s.visits (visit_no, patient_id, visited_on, notes) values
    (1, 1, '2020-01-01', 'first'), (2, 1, '2020-02-01', null),
    (1, 3, '2021-06-15', 'é ✓ 😀\nline two');
  insert into $s.audit_log (event, logged_at) values
    ('created', '2020-01-01 12:34:56'), ('note, with "quotes"', null);
`;

/** Rows in the W table of the contract fixture. */
const WIDE_ROWS = 5_000;

Deno.test({
  name: "PostgresSourceDatabase passes the SourceDatabase contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await sourceDatabaseContract(t, {
      name: "PostgresSourceDatabase",
      setUp: async (): Promise<SourceDatabaseFixture> => {
        const sandbox = new PostgresSandbox();
        const schema = randomName("cr8_contract");
        const tables = `${schema}_tables`;
        try {
          await sandbox.createRole();
          await sandbox.createSchema(schema, STANDARD_FIXTURE);
          await sandbox.createSchema(tables, wPostgresSql(WIDE_ROWS));
          await createEdgePostgres(sandbox.admin, tables);
          await sandbox.grantSelect(tables);
        } catch (e) {
          await sandbox.cleanup();
          throw e;
        }
        return {
          schema,
          connect: () => connectPostgres(sandbox.connectOptions()),
          cleanup: () => sandbox.cleanup(),
          analyze: async () => {
            await sandbox.admin.unsafe(
              `analyze ${quotePostgres(schema)}.patients, ` +
                `${quotePostgres(schema)}.visits, ${quotePostgres(schema)}.audit_log`,
            );
          },
          wide: { schema: tables, table: W_TABLE, rows: WIDE_ROWS },
          edge: { schema: tables, table: EDGE_TABLE, engine: "postgres" },
        };
      },
    });
  },
});

Deno.test({
  name: "PostgresSourceDatabase describeSchema() describes identifiers that need quoting",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = `${randomName("cr8_odd")}_Odd'"Schema`;
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `comment on schema $s is 'It''s odd';
         create type $s.mood as enum ('ok', 'meh');
         create table $s."Mixed-Case$1" (
           "Id" bigint generated always as identity,
           "select" varchar(50) not null,
           "two words" numeric(10,2),
           "it's" timestamp with time zone,
           mood $s.mood,
           tags text[],
           primary key ("select", "Id")
         );
         comment on table $s."Mixed-Case$1" is 'Quoted ''name''';
         comment on column $s."Mixed-Case$1"."two words" is 'Two "words"';
         create table $s.lower (id integer);
         create materialized view $s.summary as select count(*) as n from $s."Mixed-Case$1";
         create table $s.events (id integer, at date not null) partition by range (at);`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());

      const catalog = await db.describeSchema(schema);
      assert.equal(catalog.name, schema);
      assert.equal(catalog.description, "It's odd");
      // Code-unit order: upper case sorts before lower case.
      assert.deepEqual(
        catalog.tables.map((t) => [t.name, t.kind]),
        [["Mixed-Case$1", "table"], ["events", "table"], ["lower", "table"], ["summary", "view"]],
      );
      const mixed = catalog.tables[0];
      assert.ok(mixed);
      assert.equal(mixed.description, "Quoted 'name'");
      assert.deepEqual(mixed.primaryKey, ["select", "Id"]);
      assert.deepEqual(
        mixed.columns.map((c) => [c.name, c.dataType, c.nullable, c.description]),
        [
          ["Id", "bigint", false, null],
          ["select", "character varying(50)", false, null],
          ["two words", "numeric(10,2)", true, 'Two "words"'],
          ["it's", "timestamp with time zone", true, null],
          ["mood", `${quotePostgres(schema)}.mood`, true, null],
          ["tags", "text[]", true, null],
        ],
      );

      const only = await db.describeSchema(schema, { tables: ["Mixed-Case$1"] });
      assert.deepEqual(only.tables, [mixed]);
      assert.deepEqual((await db.describeSchema(schema, { tables: [] })).tables, []);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase estimateRows() reads reltuples, leaving out tables never analysed",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_estimates");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `create table $s.big (id integer);
         insert into $s.big select g from generate_series(1, 1000) g;
         create table $s.empty (id integer);
         create table $s."Odd ""name""" (id integer);
         insert into $s."Odd ""name""" values (1), (2);
         create view $s.big_view as select * from $s.big;
         create materialized view $s.big_summary as select count(*) as n from $s.big;`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const names = ["big", "empty", 'Odd "name"', "big_view", "big_summary"];
      // Never vacuumed, analysed or indexed: reltuples is -1, so nothing is known yet.
      assert.deepEqual(await db.estimateRows!(schema, names), new Map());

      await sandbox.admin.unsafe(
        `analyze ${quotePostgres(schema)}.big, ` +
          `${quotePostgres(schema)}.empty, ${quotePostgres(schema)}."Odd ""name""", ` +
          `${quotePostgres(schema)}.big_summary`,
      );
      assert.deepEqual(
        await db.estimateRows!(schema, names),
        new Map([["big", 1000], ["big_summary", 1], ["empty", 0], ['Odd "name"', 2]]),
      );

      // Asked while a read holds the connection, it waits its turn instead of failing.
      const [big] = (await db.describeSchema(schema, { tables: ["big"] })).tables;
      const csv = db.readCsv!({ schema, table: big! })[Symbol.asyncIterator]();
      await csv.next();
      const estimating = db.estimateRows!(schema, ["big"]);
      while (!(await csv.next()).done) { /* read to the end */ }
      assert.deepEqual(await estimating, new Map([["big", 1000]]));
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name:
    "PostgresSourceDatabase readCsv() ends when the server finished while the caller held a chunk",
  ignore: ignorePostgres,
  sanitizeOps: false,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_slow_end");
    try {
      await sandbox.createRole();
      // Two rows at once (over 64 KiB: passed on as a partial chunk while the server is slow), then
      // the last row and the end after 300 ms, while the caller still holds the first chunk.
      await sandbox.createSchema(
        schema,
        `create view $s.slow as
           select g as id, repeat('x', 40000) as pad
           from generate_series(1, 3) g
           where g < 3 or pg_sleep(0.3) is not null;`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const [slow] = (await db.describeSchema(schema, { tables: ["slow"] })).tables;
      const read = (async () => {
        const chunks: Uint8Array[] = [];
        for await (const chunk of db.readCsv!({ schema, table: slow! })) {
          chunks.push(chunk);
          if (chunks.length === 1) await new Promise((resolve) => setTimeout(resolve, 800));
        }
        return new TextDecoder().decode(concat(chunks));
      })();
      const csv = await withinMs(read, 10_000, "readCsv to end");
      assert.equal(csv.split("\n").filter((line) => line !== "").length, 4, "header and 3 rows");
    } finally {
      await sandbox.cleanup();
    }
  },
});

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** A table of PostgreSQL-only types, with each value's canonical text. */
const PG_TYPES = `
  create type $s.mood as enum ('ok', 'meh');
  create domain $s.money2 as numeric(12,2);
  create domain $s.money3 as $s.money2 check (value > 0);
  create domain $s.label as varchar(10);
  create table $s.kinds (
    id integer primary key, iv interval, tt timetz, arr text[], ints integer[], mood $s.mood,
    num numeric, bits bit(5), vbits varbit(8), addr inet, d1 $s.money2, d2 $s.money3, lbl $s.label,
    ch char(5), js json, tsr tstzrange, pt point, t3 time(3), nm name
  );
  insert into $s.kinds values (
    1, '1 day 02:00:00.5', '12:00:00+02', '{a,"b c",NULL,""}', '{1,2}', 'meh', 'NaN', B'00101',
    B'101', '192.168.0.1/24', 12.5, 7, 'lbl', 'ab', '{"b":1,  "a":2}',
    '[2020-01-01 00:00:00+00,2021-01-01 00:00:00+00)', '(1,2)', '12:00:00.12', 'nm'
  ), (2, '-1 mons +3 days -00:00:01', '00:00:00-05:30', '{}', null, 'ok', '12.300', null,
    B'', null, null, null, '', 'a b  ', '[]', 'empty', null, '23:59:59.999', '');
`;

Deno.test({
  name: "PostgresSourceDatabase reads PostgreSQL-only types as their text",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_kinds");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, PG_TYPES);
      await using db = await connectPostgres(sandbox.connectOptions());
      const [kinds] = (await db.describeSchema(schema)).tables;
      assert.ok(kinds);
      assert.deepEqual(
        kinds.columns.map((c) => [c.name, c.logicalType.kind]),
        [
          ["id", "integer"],
          ["iv", "interval"],
          ["tt", "text"],
          ["arr", "text"],
          ["ints", "text"],
          ["mood", "text"],
          ["num", "numeric"],
          ["bits", "text"],
          ["vbits", "text"],
          ["addr", "text"],
          ["d1", "decimal"],
          ["d2", "decimal"],
          ["lbl", "text"],
          ["ch", "text"],
          ["js", "json"],
          ["tsr", "text"],
          ["pt", "text"],
          ["t3", "time"],
          ["nm", "text"],
        ],
      );
      assert.deepEqual(kinds.columns[10]?.logicalType, {
        kind: "decimal",
        precision: 12,
        scale: 2,
      });
      assert.deepEqual(kinds.columns[11]?.logicalType, {
        kind: "decimal",
        precision: 12,
        scale: 2,
      });
      const rows = await readAll(db, { schema, table: kinds });
      assert.deepEqual(rows, [
        [
          "1",
          "1 day 02:00:00.5",
          "12:00:00+02",
          '{a,"b c",NULL,""}',
          "{1,2}",
          "meh",
          "NaN",
          "00101",
          "101",
          "192.168.0.1/24",
          "12.50",
          "7.00",
          "lbl",
          "ab", // char(n) loses its padding in text, as in every PostgreSQL cast to text
          '{"b":1,  "a":2}', // json keeps the text as written
          '["2020-01-01 00:00:00+00","2021-01-01 00:00:00+00")',
          "(1,2)",
          "12:00:00.12",
          "nm",
        ],
        [
          "2",
          "-1 mons +3 days -00:00:01",
          "00:00:00-05:30",
          "{}",
          null,
          "ok",
          "12.300",
          null,
          "",
          null,
          null,
          null,
          "",
          "a b",
          "[]",
          "empty",
          null,
          "23:59:59.999",
          "",
        ],
      ]);
      assert.deepEqual(
        await readCsvBytes(db, { schema, table: kinds }),
        await encodedCsv(db, { schema, table: kinds }),
      );
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase reads canonical text whatever the client's session settings",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_session");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, "");
      await createEdgePostgres(sandbox.admin, schema);
      await sandbox.grantSelect(schema);
      // A client built without postgresClientOptions, in a session where every default differs.
      const options = sandbox.connectOptions();
      const sql = postgres({
        host: options.host,
        port: options.port,
        database: options.database,
        username: options.username,
        password: options.password,
        max: 1,
        onnotice: () => {},
        connection: {
          DateStyle: "SQL, DMY",
          TimeZone: "Asia/Kolkata",
          extra_float_digits: "-3",
          bytea_output: "escape",
          IntervalStyle: "sql_standard",
        },
      });
      await using db = new PostgresSourceDatabase(sql);
      const [edge] = (await db.describeSchema(schema)).tables;
      assert.ok(edge);
      const rows = (await readAll(db, { schema, table: edge }))
        .sort((a, b) => Number(a[0]) - Number(b[0]));
      assert.deepEqual(rows, edgeExpectedRows("postgres"));
      assert.deepEqual(
        await readCsvBytes(db, { schema, table: edge }),
        await encodedCsv(db, { schema, table: edge }),
      );
    } finally {
      await sandbox.cleanup();
    }
  },
});

/** The table for streaming tests: `rows` rows of a bigint and a 1 KiB text (about 1 KiB a row). */
function bulkTable(rows: number): string {
  return `create table $s.bulk (id bigint primary key, payload text);
    insert into $s.bulk select g, repeat(md5(g::text), 32) from generate_series(1, ${rows}) g;`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Reads `readCsv()` to the end without keeping it; peak memory growth sampled every 16 MiB. */
async function measureCsvStreaming(
  db: SourceDatabase,
  extract: TableExtract,
): Promise<{ bytes: number; rssGrowth: number; heapGrowth: number }> {
  const before = Deno.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  let bytes = 0;
  let sampledAt = 0;
  for await (const chunk of db.readCsv!(extract)) {
    bytes += chunk.length;
    if (bytes - sampledAt >= 16 * 2 ** 20) {
      sampledAt = bytes;
      const now = Deno.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    }
  }
  return { bytes, rssGrowth: peakRss - before.rss, heapGrowth: peakHeap - before.heapUsed };
}

async function extractOf(db: SourceDatabase, schema: string, table: string): Promise<TableExtract> {
  const found = (await db.describeSchema(schema, { tables: [table] })).tables[0];
  assert.ok(found, `table "${table}" is missing`);
  return { schema, table: found };
}

Deno.test({
  name: "PostgresSourceDatabase readRows() streams 200,000 rows in bounded memory",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_bulk");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, bulkTable(200_000));
      await using db = await connectPostgres(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      for (const batchRows of [1_000, 10_000]) {
        const seen = await measureStreaming(db, bulk, batchRows);
        assert.equal(seen.rows, 200_000);
        assert.equal(seen.largestBatch, batchRows);
        assert.equal(seen.batches, 200_000 / batchRows);
        assert.ok(seen.valueChars > 190 * 2 ** 20, "the table holds over 190 MiB of values");
        assert.ok(seen.rssGrowth < 150 * 2 ** 20, `RSS grew by ${mib(seen.rssGrowth)}`);
        assert.ok(seen.heapGrowth < 100 * 2 ** 20, `the heap grew by ${mib(seen.heapGrowth)}`);
      }

      // readCsv() too: the COPY stream is consumed chunk by chunk without keeping anything.
      const copy = await measureCsvStreaming(db, bulk);
      assert.ok(copy.bytes > 195 * 2 ** 20, `${copy.bytes} bytes`);
      assert.ok(copy.rssGrowth < 150 * 2 ** 20, `RSS grew by ${mib(copy.rssGrowth)}`);
      assert.ok(copy.heapGrowth < 100 * 2 ** 20, `the heap grew by ${mib(copy.heapGrowth)}`);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name:
    "PostgresSourceDatabase readRows() and readCsv() reject, never hang, when the connection drops",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_drop");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, bulkTable(100_000));

      await using db = await connectPostgres(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      let rows = 0;
      const reading = withinMs(
        (async () => {
          for await (const batch of db.readRows(bulk, { batchRows: 1_000 })) {
            rows += batch.length;
            if (rows === 1_000) assert.equal(await sandbox.terminateSessions(), 1);
          }
        })(),
        10_000,
        "readRows()",
      );
      const error = await reading.then(() => assert.fail("expected a rejection"), (e) => e);
      assert.ok(error instanceof SourceUnavailableError, String(error));
      assert.match(error.message, /^Cannot read table ".*"\."bulk" from PostgreSQL: /);
      assert.ok(rows < 100_000, `all ${rows} rows arrived`);

      await using db2 = await connectPostgres(sandbox.connectOptions());
      let bytes = 0;
      const copying = withinMs(
        (async () => {
          for await (const chunk of db2.readCsv!(bulk)) {
            if (bytes === 0) assert.equal(await sandbox.terminateSessions(), 1);
            bytes += chunk.length;
          }
        })(),
        10_000,
        "readCsv()",
      );
      const copyError = await copying.then(() => assert.fail("expected a rejection"), (e) => e);
      assert.ok(copyError instanceof SourceUnavailableError, String(copyError));
      assert.ok(bytes < 100 * 2 ** 20, `all ${bytes} bytes arrived`);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name:
    "PostgresSourceDatabase refuses a value over the limit on the server, in readRows() and COPY",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_big");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `create table $s.docs (id int, title varchar(20), body text, raw bytea, doc jsonb);
         insert into $s.docs values (1, 'small', 'short', '\\x00ff', '{"a": 1}'),
           (2, 'big', repeat('x', 2 * 1024 * 1024), null, null),
           (3, 'bin', null, decode(repeat('ab', 600), 'hex'), null),
           (4, 'json', null, null, ('["' || repeat('y', 3000) || '"]')::jsonb);`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const docs = await extractOf(db, schema, "docs");
      const only = (...names: string[]): TableExtract => ({
        schema,
        table: { ...docs.table, columns: docs.table.columns.filter((c) => names.includes(c.name)) },
      });
      const cases: [TableExtract, number, string][] = [
        [docs, 1024 * 1024, "body"],
        [only("id", "raw"), 1024, "raw"], // 600 bytes: `\x` and 1,200 hex digits
        [only("id", "doc"), 2048, "doc"],
      ];
      for (const [extract, maxValueBytes, column] of cases) {
        for (
          const read of [
            readAll(db, extract, 1, { maxValueBytes }),
            readCsvBytes(db, extract, { maxValueBytes }),
          ]
        ) {
          const error = await read.then(() => assert.fail("expected a rejection"), (e) => e);
          assert.ok(error instanceof ValueTooLargeError, String(error));
          assert.deepEqual(error.position, { schema, table: "docs", column });
          // The guard's failed cast: the server refused the value before sending it.
          assert.ok(error.cause instanceof postgres.PostgresError, String(error.cause));
          assert.equal(error.cause.code, "22P02");
          assert.ok(!error.cause.message.includes("xxxx"));
        }
        await db.ping();
      }
      // The same reads within the limits.
      const all = await readAll(db, docs, 2, { maxValueBytes: 3 * 1024 * 1024 });
      assert.equal(all.length, 4);
      assert.equal(all.find((r) => r[0] === "2")?.[2]?.length, 2 * 1024 * 1024);
      assert.equal(all.find((r) => r[0] === "3")?.[3], "\\x" + "ab".repeat(600));
      const exact = await readAll(db, only("id", "raw"), 2, { maxValueBytes: 1202 });
      assert.equal(exact.length, 4);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readRows() reports a statement timeout and stays usable",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_timeout");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, bulkTable(5_000));
      // The statement timeout covers the whole read: a caller slower than it loses the cursor.
      await using db = await connectPostgres(sandbox.connectOptions({ statementTimeoutMs: 300 }));
      const bulk = await extractOf(db, schema, "bulk");
      const slowly = withinMs(
        (async () => {
          for await (const _ of db.readRows(bulk, { batchRows: 1_000 })) {
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        })(),
        10_000,
        "readRows()",
      );
      await assert.rejects(slowly, (e: unknown) => {
        assert.ok(e instanceof SourceUnavailableError, String(e));
        assert.match(e.message, /statement timeout/);
        return true;
      });
      // The failed cursor is not resumed, so the connection answers the next reads correctly.
      await withinMs(db.ping(), 5_000, "ping()");
      assert.equal((await readAll(db, bulk)).length, 5_000);
      const csv = new TextDecoder().decode(
        await withinMs(readCsvBytes(db, bulk), 5_000, "readCsv()"),
      );
      assert.equal(csv.split("\n").length, 5_000 + 2);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readCsv() stops early and leaves the connection usable",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_stop");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, bulkTable(20_000));
      await using db = await connectPostgres(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      for (let i = 0; i < 3; i++) {
        for await (const chunk of db.readCsv!(bulk)) {
          assert.ok(chunk.length > 0);
          break;
        }
        await withinMs(db.ping(), 5_000, "ping() after an abandoned readCsv()");
      }
      // A full read after the abandoned ones still has every row.
      const csv = new TextDecoder().decode(await readCsvBytes(db, bulk));
      assert.equal(csv.split("\n").length, 20_000 + 2);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readCsv() aborted mid-COPY cancels the server's query at once",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_abort");
    try {
      await sandbox.createRole();
      // 20 s of rows whose output the server holds back (too small to fill its send buffer).
      await sandbox.createSchema(
        schema,
        `create view $s.slow as select i as id, pg_sleep(0.05)::text as pause
           from generate_series(1, 400) as i`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const slow = await extractOf(db, schema, "slow");
      const running = async () => {
        const [row] = await sandbox.admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
           where usename = ${sandbox.role} and state = 'active'`;
        return row!.n;
      };
      for (const when of ["before the first chunk", "already aborted"]) {
        const stop = new AbortController();
        if (when === "already aborted") stop.abort(new Error("stopped"));
        const read = (async () => {
          for await (const _ of db.readCsv!(slow, { signal: stop.signal })) {
            // nothing arrives before the abort
          }
        })();
        if (when !== "already aborted") {
          const deadline = performance.now() + 10_000;
          while (await running() === 0) {
            assert.ok(performance.now() < deadline, "the COPY started");
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          stop.abort(new Error("stopped"));
        }
        await assert.rejects(withinMs(read, 5_000, `readCsv() aborted ${when}`));
        assert.equal(await running(), 0, `no query left running (${when})`);
        await withinMs(db.ping(), 5_000, "ping() after an aborted readCsv()");
      }
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readRows() selects only the extract's columns",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_grant");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `create table $s.secret (id integer primary key, visible text, hidden text);
         insert into $s.secret values (1, 'shown', 'never'), (2, null, 'never');`,
        false,
      );
      // Column-level privileges: the role may read id and visible, not hidden.
      await sandbox.admin.unsafe(
        `grant usage on schema ${quotePostgres(schema)} to ${quotePostgres(sandbox.role)};
         grant select (id, visible) on ${quotePostgres(schema)}.secret
           to ${quotePostgres(sandbox.role)}`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const secret = await extractOf(db, schema, "secret");
      const allowed: TableExtract = {
        schema,
        table: { ...secret.table, columns: secret.table.columns.slice(0, 2) },
      };
      assert.deepEqual(await readAll(db, allowed), [["1", "shown"], ["2", null]]);
      assert.equal(
        new TextDecoder().decode(await readCsvBytes(db, allowed)),
        "id,visible\n1,shown\n2,\n",
      );
      // Asking for one more column fails, so nothing beyond the extract is ever selected.
      await assert.rejects(readAll(db, secret), (e: unknown) => {
        assert.ok(e instanceof SourceUnavailableError);
        assert.match(e.message, /permission denied/);
        return true;
      });
      await assert.rejects(readCsvBytes(db, secret), SourceUnavailableError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readRows() and readCsv() quote odd identifiers",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = `${randomName("cr8_odd")}_Odd'"$-Schema`;
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `create table $s."Mixed-Case$1" (
           "Id" integer primary key, "we""ird" text, "a$b" text, "x-y" text, "select" text,
           "two words" text, "it's" text
         );
         insert into $s."Mixed-Case$1" values (1, 'q', 'd', 'h', 's', 'w', 'a');`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());
      const mixed = await extractOf(db, schema, "Mixed-Case$1");
      assert.deepEqual(await readAll(db, mixed), [["1", "q", "d", "h", "s", "w", "a"]]);
      assert.equal(
        new TextDecoder().decode(await readCsvBytes(db, mixed)),
        `Id,"we""ird",a$b,x-y,select,two words,it's\n1,q,d,h,s,w,a\n`,
      );
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase readRows() rejects a batchRows that is not a positive integer",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_batch");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, bulkTable(3));
      await using db = await connectPostgres(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      for (const batchRows of [0, -1, 1.5, Number.NaN]) {
        await assert.rejects(readAll(db, bulk, batchRows), RangeError, String(batchRows));
      }
      assert.equal((await readAll(db, bulk)).length, 3);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase describeSchema() hides a schema the user has no USAGE on",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_private");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, "create table $s.secret (id integer);", false);
      await using db = await connectPostgres(sandbox.connectOptions());
      await assert.rejects(db.describeSchema(schema), SchemaNotFoundError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "connectPostgres() sets the statement timeout and application name on the session",
  ignore: ignorePostgres,
  fn: async () => {
    const options = postgresConnectionOptions({ statementTimeoutMs: 200 });
    const raw = postgres(postgresClientOptions(options));
    try {
      const [setting] = await raw<{ timeout: string; app: string }[]>`
        select current_setting('statement_timeout') as timeout,
               current_setting('application_name') as app`;
      assert.deepEqual(setting, { timeout: "200ms", app: POSTGRES_APPLICATION_NAME });
      const started = performance.now();
      await assert.rejects(raw`select pg_sleep(2)`, { code: "57014" });
      assert.ok(performance.now() - started < 1_500, "the statement ran past its timeout");
    } finally {
      await raw.end({ timeout: 5 });
    }

    // And connectPostgres() uses exactly these options: the session shows up under our name.
    const admin = postgresAdmin();
    try {
      await using _db = await connectPostgres(options);
      const [row] = await admin<{ n: string }[]>`
        select count(*)::text as n from pg_stat_activity
         where application_name = ${POSTGRES_APPLICATION_NAME} and usename = ${POSTGRES.user}`;
      assert.notEqual(row?.n, "0");
    } finally {
      await admin.end({ timeout: 5 });
    }
  },
});

Deno.test({
  name: "connectPostgres() reports an unknown database as SourceConnectionError",
  ignore: ignorePostgres,
  fn: async () => {
    const password = `pw-${crypto.randomUUID()}`;
    const error = await connectPostgres(
      postgresConnectionOptions({ database: randomName("cr8_nodb"), password }),
    ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
    assertConnectFailure(
      error,
      SourceConnectionError,
      /^Cannot connect to PostgreSQL at [^:]+:\d+: .*does not exist/,
      [password],
    );
    assert.ok((error as Error).cause instanceof Error);
  },
});

Deno.test({
  name: "connectPostgres() reports an unknown role as a refused login, without naming it",
  ignore: ignorePostgres,
  fn: async () => {
    // What a password sent as the user name gets: `role "<the password>" does not exist`.
    const password = `pw-${crypto.randomUUID()}`;
    const error = await connectPostgres(
      postgresConnectionOptions({ username: password, password }),
    ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
    assertConnectFailure(
      error,
      SourceLoginRefusedError,
      /^Cannot connect to PostgreSQL at [^:]+:\d+: role "\*\*\*" does not exist/,
      [password],
    );
  },
});

Deno.test("connectPostgres() fails fast when nothing listens on the port", async () => {
  const started = performance.now();
  const error = await connectPostgres(
    postgresConnectionOptions({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assertConnectFailure(
    error,
    SourceConnectionError,
    /^Cannot connect to PostgreSQL at 127\.0\.0\.1:1: /,
  );
  assert.ok(performance.now() - started < 2_000);
});

Deno.test("connectPostgres() gives up after connectTimeoutMs on a silent server", async () => {
  await using server = silentServer();
  const started = performance.now();
  const error = await connectPostgres(
    postgresConnectionOptions({ host: "127.0.0.1", port: server.port, connectTimeoutMs: 300 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  const elapsed = performance.now() - started;
  assertConnectFailure(error, SourceConnectionError, /CONNECT_TIMEOUT/);
  assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${elapsed}ms`);
});

Deno.test("connectPostgres() reports a refused password without revealing it", async () => {
  // The project's PostgreSQL trusts 127.0.0.1, so a wire-level fake refuses the password instead. It
  // even echoes the password in its error, to prove the adapter keeps it out of the message.
  const password = `s3cret-${crypto.randomUUID()}`;
  await using server = passwordRefusingServer();
  const error = await connectPostgres(
    postgresConnectionOptions({ port: server.port, username: "reader", password }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assert.equal(await server.receivedPassword, password);
  assertConnectFailure(
    error,
    SourceLoginRefusedError,
    /^Cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: .*password authentication failed/,
    [password, "reader"],
  );
});

interface FakeServer extends AsyncDisposable {
  readonly port: number;
}

/** Accepts connections and never answers. */
function silentServer(): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) connections.push(conn);
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // already closed by the client
        }
      }
    },
  };
}
