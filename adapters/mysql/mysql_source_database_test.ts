import assert from "node:assert/strict";
import type { RowDataPacket } from "mysql2/promise";
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import { encodeCsvRow, encodeCsvRows } from "../../domain/csv.ts";
import {
  SchemaNotFoundError,
  SourceConnectionError,
  type SourceDatabase,
  SourceLoginRefusedError,
  SourceUnavailableError,
} from "../../ports/source_database.ts";
import {
  encodedCsv,
  measureStreaming,
  readAll,
  readCsvBytes,
  sourceDatabaseContract,
  type SourceDatabaseFixture,
  withinMs,
} from "../../tests/contracts/source_database_contract.ts";
import { assertConnectFailure } from "../../tests/support/connect_failures.ts";
import { ignoreMysql, ignorePostgres, randomName } from "../../tests/support/services.ts";
import {
  MYSQL_USER_HOSTS,
  mysqlAdmin,
  mysqlConnectionOptions,
  MysqlSandbox,
  PostgresSandbox,
  quoteMysql,
} from "../../tests/support/databases.ts";
import {
  createEdgePostgres,
  EDGE_CASES,
  EDGE_TABLE,
  edgeMysqlDdl,
  fillEdgeMysql,
  fillWMysql,
  W_TABLE,
  wExpectedRows,
  wMysqlDdl,
  wPostgresSql,
} from "../../tests/support/w_table.ts";
import { connectPostgres } from "../postgres/postgres_source_database.ts";
import { connectMysql, openMysqlConnection } from "./mysql_source_database.ts";

async function serverFacts(): Promise<{ mariadb: boolean; caseSensitiveNames: boolean }> {
  const admin = await mysqlAdmin();
  try {
    const [rows] = await admin.query<RowDataPacket[]>(
      "SELECT VERSION() AS version, @@lower_case_table_names AS lower",
    );
    const row = rows[0];
    return {
      mariadb: String(row?.version).includes("MariaDB"),
      caseSensitiveNames: Number(row?.lower) === 0,
    };
  } finally {
    await admin.end();
  }
}

/** What the server is, when there is one (under CI a missing server fails here, as it should). */
const FACTS = ignoreMysql ? undefined : await serverFacts();

/** The contract's standard fixture in MySQL. MySQL has no database comments. */
const STANDARD_FIXTURE = `
  CREATE TABLE $s.patients (
    id INT NOT NULL PRIMARY KEY,
    nhs_number VARCHAR(10) NOT NULL COMMENT 'NHS number',
    birth_date DATE NULL,
    weight DECIMAL(6,2) NULL
  ) COMMENT = 'One row per patient';
  CREATE TABLE $s.visits (
    visit_no INT NOT NULL,
    patient_id INT NOT NULL,
    visited_on DATE NOT NULL,
    notes TEXT NULL COMMENT 'Free text',
    PRIMARY KEY (patient_id, visit_no)
  );
  CREATE TABLE $s.audit_log (event VARCHAR(100) NOT NULL, logged_at DATETIME NULL);
  CREATE VIEW $s.patient_names AS SELECT id, nhs_number FROM $s.patients;
  INSERT INTO $s.patients (id, nhs_number, birth_date, weight) VALUES
    (1, '9434765919', '1980-02-29', 72.50), (2, '', NULL, NULL), (3, 'x,"y"', '2000-12-31', -0.05);
  INSERT INTO $s.visits (visit_no, patient_id, visited_on, notes) VALUES
    (1, 1, '2020-01-01', 'first'), (2, 1, '2020-02-01', NULL),
    (1, 3, '2021-06-15', 'é ✓ 😀\nline two');
  INSERT INTO $s.audit_log (event, logged_at) VALUES
    ('created', '2020-01-01 12:34:56'), ('note, with "quotes"', NULL);
`;

/** Rows in the W table of the contract fixture. */
const WIDE_ROWS = 5_000;

Deno.test({
  name: "MysqlSourceDatabase passes the SourceDatabase contract",
  ignore: ignoreMysql,
  fn: async (t) => {
    await sourceDatabaseContract(t, {
      name: "MysqlSourceDatabase",
      schemaComments: false,
      engine: "mysql",
      setUp: async (): Promise<SourceDatabaseFixture> => {
        const sandbox = new MysqlSandbox();
        const schema = randomName("cr8_contract");
        const tables = `${schema}_tables`;
        try {
          await sandbox.createUser();
          await sandbox.createDatabase(schema, STANDARD_FIXTURE);
          await sandbox.createDatabase(tables, `${wMysqlDdl()}; ${edgeMysqlDdl()};`);
          await fillWMysql(await sandbox.admin(), tables, WIDE_ROWS);
          await fillEdgeMysql(await sandbox.admin(), tables);
        } catch (e) {
          await sandbox.cleanup();
          throw e;
        }
        return {
          schema,
          connect: () => connectMysql(sandbox.connectOptions({ database: schema })),
          cleanup: () => sandbox.cleanup(),
          analyze: async () => {
            const s = quoteMysql(schema);
            await (await sandbox.admin()).query(
              `ANALYZE TABLE ${s}.patients, ${s}.visits, ${s}.audit_log`,
            );
          },
          wide: { schema: tables, table: W_TABLE, rows: WIDE_ROWS },
          edge: { schema: tables, table: EDGE_TABLE, engine: "mysql" },
        };
      },
    });
  },
});

Deno.test({
  name: "MysqlSourceDatabase describeSchema() describes identifiers that need quoting",
  ignore: ignoreMysql,
  fn: async () => {
    const facts = FACTS!;
    const sandbox = new MysqlSandbox();
    const schema = `${randomName("cr8_odd")}_Odd'"Db`;
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(
        schema,
        `CREATE TABLE $s.\`Mixed-Case$1\` (
           \`Id\` BIGINT NOT NULL AUTO_INCREMENT,
           \`select\` VARCHAR(50) NOT NULL,
           \`two words\` DECIMAL(10,2) COMMENT 'Two "words"',
           \`it's\` DATETIME(3) NULL,
           flag TINYINT(1) NULL,
           mood ENUM('ok', 'meh') NULL,
           PRIMARY KEY (\`select\`, \`Id\`),
           KEY (\`Id\`)
         ) COMMENT = 'Quoted ''name''';
         CREATE TABLE $s.lower (id INT);
         CREATE VIEW $s.summary AS SELECT COUNT(*) AS n FROM $s.\`Mixed-Case$1\`;
         ${facts.mariadb ? "CREATE SEQUENCE $s.ids;" : ""}
         ${facts.caseSensitiveNames ? "CREATE TABLE $s.`mixed-case$1` (other INT);" : ""}`,
      );
      await using db = await connectMysql(sandbox.connectOptions({ database: schema }));

      const catalog = await db.describeSchema(schema);
      assert.equal(catalog.name, schema);
      assert.equal(catalog.description, null);
      // Code-unit order (upper case first), not the server's collation; sequences are left out.
      assert.deepEqual(
        catalog.tables.map((t) => [t.name, t.kind]),
        [
          ["Mixed-Case$1", "table"],
          ["lower", "table"],
          ...(facts.caseSensitiveNames ? [["mixed-case$1", "table"]] : []),
          ["summary", "view"],
        ],
      );
      const mixed = catalog.tables[0];
      assert.ok(mixed);
      assert.equal(mixed.description, "Quoted 'name'");
      assert.deepEqual(mixed.primaryKey, ["select", "Id"]);
      assert.deepEqual(
        mixed.columns.map((
          c,
        ) => [c.name, c.dataType.replace(/^bigint\(20\)/, "bigint"), c.nullable, c.description]),
        [
          ["Id", "bigint", false, null],
          ["select", "varchar(50)", false, null],
          ["two words", "decimal(10,2)", true, 'Two "words"'],
          ["it's", "datetime(3)", true, null],
          ["flag", "tinyint(1)", true, null],
          ["mood", "enum('ok','meh')", true, null],
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
  name: "MysqlSourceDatabase describeSchema() keeps databases whose names differ in case apart",
  // Only where names are case-sensitive (lower_case_table_names = 0, the Linux default).
  ignore: !FACTS?.caseSensitiveNames,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const base = randomName("cr8_case");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(`${base}_Db`, "CREATE TABLE $s.upper_only (id INT);");
      await sandbox.createDatabase(`${base}_db`, "CREATE TABLE $s.lower_only (id INT);");
      await using db = await connectMysql(sandbox.connectOptions());
      assert.deepEqual(
        (await db.describeSchema(`${base}_Db`)).tables.map((t) => t.name),
        ["upper_only"],
      );
      assert.deepEqual(
        (await db.describeSchema(`${base}_db`)).tables.map((t) => t.name),
        ["lower_only"],
      );
      await assert.rejects(db.describeSchema(`${base}_DB`), SchemaNotFoundError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

/** A table of MySQL/MariaDB-only types, filled in a +02:00 session. */
const MYSQL_TYPES = `
  CREATE TABLE $s.kinds (
    id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, bo TINYINT(1), si SMALLINT UNSIGNED,
    mi MEDIUMINT, iu INT UNSIGNED, bu BIGINT UNSIGNED, z INT(5) UNSIGNED ZEROFILL,
    dz DECIMAL(6,2) UNSIGNED ZEROFILL, y YEAR, fl FLOAT, db DOUBLE, bt BIT(10),
    e ENUM('ok','meh'), st SET('a','b','c'), ch CHAR(5), bn BINARY(4), bl BLOB, js JSON,
    lt LONGTEXT, u UUID, pt POINT, i6 INET6, ts TIMESTAMP(3) NULL DEFAULT NULL, tm TIME(2),
    dt DATETIME
  ) DEFAULT CHARSET = utf8mb4;
  SET time_zone = '+02:00';
  INSERT INTO $s.kinds VALUES (
    1, -128, 255, 2, 65535, -8388608, 4294967295, 18446744073709551615, 42, 1.5, 2024, 0.1,
    0.1, b'1010101010', 'meh', 'c,a', 'ab  ', 'ab', x'00ff', '{"k": [1, 2]}', 'plain',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', POINT(1, 2), '::1', '2020-06-01 12:00:00.5',
    '-12:30:00.5', '2020-01-01 00:00:00'
  ), (
    2, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, b'0', NULL, '', '', NULL,
    '', NULL, '', NULL, NULL, NULL, NULL, '838:59:59', NULL
  );
`;

Deno.test({
  name: "MysqlSourceDatabase reads MySQL-only types as canonical text",
  ignore: ignoreMysql || !FACTS?.mariadb,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_kinds");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(schema, MYSQL_TYPES);
      await using db = await connectMysql(sandbox.connectOptions());
      const kinds = await extractOf(db, schema, "kinds");
      assert.deepEqual(
        kinds.table.columns.map((c) => [c.name, c.logicalType.kind]),
        [
          ["id", "integer"],
          ["ti", "smallint"],
          ["tiu", "smallint"],
          ["bo", "boolean"],
          ["si", "integer"],
          ["mi", "integer"],
          ["iu", "bigint"],
          ["bu", "numeric"],
          ["z", "bigint"],
          ["dz", "decimal"],
          ["y", "smallint"],
          ["fl", "real"],
          ["db", "double"],
          ["bt", "text"],
          ["e", "text"],
          ["st", "text"],
          ["ch", "text"],
          ["bn", "binary"],
          ["bl", "binary"],
          ["js", "json"],
          ["lt", "text"],
          ["u", "uuid"],
          ["pt", "binary"],
          ["i6", "text"],
          ["ts", "timestamptz"],
          ["tm", "time"],
          ["dt", "timestamp"],
        ],
      );
      const rows = (await readAll(db, kinds)).sort((a, b) => Number(a[0]) - Number(b[0]));
      assert.deepEqual(rows, [
        [
          "1",
          "-128",
          "255",
          "true", // tinyint(1) holding 2: any non-zero value is true
          "65535",
          "-8388608",
          "4294967295",
          "18446744073709551615",
          "42", // ZEROFILL's leading zeros removed
          "1.50",
          "2024",
          "0.1", // FLOAT: the shortest digits of the 32-bit value, not MySQL's 6 digits
          "0.1",
          "1010101010",
          "meh",
          "a,c", // SET members in definition order
          "ab", // CHAR loses its trailing spaces, as in PostgreSQL
          "\\x61620000", // BINARY(4) is padded with zero bytes
          "\\x00ff",
          '{"k": [1, 2]}',
          "plain",
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          "\\x000000000101000000000000000000f03f0000000000000040", // SRID, then WKB
          "::1",
          "2020-06-01 10:00:00.5+00", // written at +02:00, read in UTC
          "-12:30:00.5",
          "2020-01-01 00:00:00",
        ],
        [
          "2",
          null,
          null,
          "false",
          null,
          null,
          null,
          null,
          null,
          null,
          "0",
          null,
          null,
          "0000000000",
          null,
          "",
          "",
          null,
          "\\x",
          null,
          "",
          null,
          null,
          null,
          null,
          "838:59:59",
          null,
        ],
      ]);
    } finally {
      await sandbox.cleanup();
    }
  },
});

async function extractOf(db: SourceDatabase, schema: string, table: string): Promise<TableExtract> {
  const found = (await db.describeSchema(schema, { tables: [table] })).tables[0];
  assert.ok(found, `table "${table}" is missing`);
  return { schema, table: found };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The table for streaming tests (MariaDB's sequence engine): a bigint and a 1 KiB text a row. */
function bulkTable(rows: number): string {
  return `CREATE TABLE $s.bulk (id BIGINT PRIMARY KEY, payload TEXT);
    INSERT INTO $s.bulk SELECT seq, REPEAT(MD5(seq), 32) FROM $s.seq_1_to_${rows};`;
}

Deno.test({
  name: "MysqlSourceDatabase readRows() streams 200,000 rows in bounded memory",
  ignore: ignoreMysql || !FACTS?.mariadb,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_bulk");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(schema, bulkTable(200_000));
      await using db = await connectMysql(sandbox.connectOptions());
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
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase readRows() rejects, never hangs, when the connection is killed",
  ignore: ignoreMysql || !FACTS?.mariadb,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_kill");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(schema, bulkTable(100_000));
      await using db = await connectMysql(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      let rows = 0;
      const reading = withinMs(
        (async () => {
          for await (const batch of db.readRows(bulk, { batchRows: 1_000 })) {
            rows += batch.length;
            if (rows === 1_000) assert.equal(await sandbox.killSessions(), 1);
          }
        })(),
        10_000,
        "readRows()",
      );
      const error = await reading.then(() => assert.fail("expected a rejection"), (e) => e);
      assert.ok(error instanceof SourceUnavailableError, String(error));
      assert.match(error.message, /^Cannot read table ".*"\."bulk" from MySQL: .*(lost|closed)/i);
      assert.ok(rows < 100_000, `all ${rows} rows arrived`);
      await assert.rejects(withinMs(db.ping(), 5_000, "ping()"), SourceUnavailableError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase readRows() stops early and leaves the connection usable",
  ignore: ignoreMysql || !FACTS?.mariadb,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_stop");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(schema, bulkTable(50_000));
      await using db = await connectMysql(sandbox.connectOptions());
      const bulk = await extractOf(db, schema, "bulk");
      for (let i = 0; i < 3; i++) {
        for await (const batch of db.readRows(bulk, { batchRows: 100 })) {
          assert.equal(batch.length, 100);
          break;
        }
        await withinMs(db.ping(), 10_000, "ping() after an abandoned readRows()");
      }
      assert.equal((await readAll(db, bulk)).length, 50_000);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase readRows() selects only the extract's columns",
  ignore: ignoreMysql,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_grant");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(
        schema,
        `CREATE TABLE $s.secret (id INT PRIMARY KEY, visible TEXT, hidden TEXT);
         INSERT INTO $s.secret VALUES (1, 'shown', 'never'), (2, NULL, 'never');`,
        false,
      );
      // Column-level privileges: the user may read id and visible, not hidden.
      const admin = await sandbox.admin();
      for (const host of MYSQL_USER_HOSTS) {
        await admin.query(`GRANT SELECT (id, visible) ON ${quoteMysql(schema)}.secret TO ?@?`, [
          sandbox.user,
          host,
        ]);
      }
      await using db = await connectMysql(sandbox.connectOptions());
      const column = (name: string, kind: "integer" | "text"): CatalogColumn => ({
        name,
        dataType: kind === "integer" ? "int(11)" : "text",
        logicalType: { kind },
        nullable: name !== "id",
        description: null,
      });
      const secret: TableExtract = {
        schema,
        table: {
          name: "secret",
          kind: "table",
          description: null,
          columns: [column("id", "integer"), column("visible", "text"), column("hidden", "text")],
          primaryKey: ["id"],
        },
      };
      const allowed: TableExtract = {
        schema,
        table: { ...secret.table, columns: secret.table.columns.slice(0, 2) },
      };
      assert.deepEqual(
        (await readAll(db, allowed)).sort((a, b) => Number(a[0]) - Number(b[0])),
        [["1", "shown"], ["2", null]],
      );
      // Asking for one more column fails, so nothing beyond the extract is ever selected.
      await assert.rejects(readAll(db, secret), (e: unknown) => {
        assert.ok(e instanceof SourceUnavailableError);
        assert.match(e.message, /denied/);
        return true;
      });
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase readRows() quotes odd identifiers",
  ignore: ignoreMysql,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = `${randomName("cr8_odd")}_Odd'"$-Db`;
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(
        schema,
        `CREATE TABLE $s.\`Mixed-Case$1\` (
           \`Id\` INT PRIMARY KEY, \`we\`\`ird\` TEXT, \`a$b\` TEXT, \`x-y\` TEXT,
           \`select\` TEXT, \`two words\` TEXT, \`it's "q"\` TEXT
         );
         INSERT INTO $s.\`Mixed-Case$1\` VALUES (1, 'q', 'd', 'h', 's', 'w', 'a');`,
      );
      await using db = await connectMysql(sandbox.connectOptions());
      const mixed = await extractOf(db, schema, "Mixed-Case$1");
      assert.deepEqual(
        mixed.table.columns.map((c) => c.name),
        ["Id", "we`ird", "a$b", "x-y", "select", "two words", `it's "q"`],
      );
      assert.deepEqual(await readAll(db, mixed), [["1", "q", "d", "h", "s", "w", "a"]]);
      assert.equal(
        new TextDecoder().decode(await encodedCsv(db, mixed)),
        `Id,we\`ird,a$b,x-y,select,two words,"it's ""q"""\n1,q,d,h,s,w,a\n`,
      );
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase readRows() rejects a batchRows that is not a positive integer",
  ignore: ignoreMysql,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_batch");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(
        schema,
        "CREATE TABLE $s.t (id INT); INSERT INTO $s.t VALUES (1);",
      );
      await using db = await connectMysql(sandbox.connectOptions());
      const t = await extractOf(db, schema, "t");
      for (const batchRows of [0, -1, 1.5, Number.NaN]) {
        await assert.rejects(readAll(db, t, batchRows), RangeError, String(batchRows));
      }
      assert.deepEqual(await readAll(db, t), [["1"]]);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL and MariaDB give identical canonical rows and CSV bytes for the W and EDGE tables",
  ignore: ignoreMysql || ignorePostgres,
  fn: async () => {
    const rows = 5_000;
    const pgSandbox = new PostgresSandbox();
    const mySandbox = new MysqlSandbox();
    const schema = randomName("cr8_parity");
    try {
      await pgSandbox.createRole();
      await pgSandbox.createSchema(schema, wPostgresSql(rows));
      await createEdgePostgres(pgSandbox.admin, schema);
      await pgSandbox.grantSelect(schema);
      await mySandbox.createUser();
      await mySandbox.createDatabase(schema, `${wMysqlDdl()}; ${edgeMysqlDdl()};`);
      await fillWMysql(await mySandbox.admin(), schema, rows);
      await fillEdgeMysql(await mySandbox.admin(), schema);

      await using pg = await connectPostgres(pgSandbox.connectOptions());
      await using my = await connectMysql(mySandbox.connectOptions());
      const byId = (a: (string | null)[], b: (string | null)[]) => Number(a[0]) - Number(b[0]);

      // W: every row, every value.
      const pgWide = await extractOf(pg, schema, W_TABLE);
      const myWide = await extractOf(my, schema, W_TABLE);
      const fromPostgres = (await readAll(pg, pgWide, 1_000)).sort(byId);
      const fromMysql = (await readAll(my, myWide, 1_000)).sort(byId);
      assert.equal(fromPostgres.length, rows);
      assert.deepEqual(fromMysql, fromPostgres);
      assert.deepEqual(fromPostgres, wExpectedRows(rows));
      // The CSV files are byte for byte the same, whether encoded from either source's rows or
      // streamed by PostgreSQL's COPY.
      const header = encodeCsvRow(pgWide.table.columns.map((c) => c.name));
      const csvFromMysql = new TextEncoder().encode(header + encodeCsvRows(fromMysql));
      assert.deepEqual(await encodedCsv(pg, pgWide), csvFromMysql);
      assert.deepEqual(await readCsvBytes(pg, pgWide), csvFromMysql);
      assert.deepEqual(await encodedCsv(my, myWide), csvFromMysql);

      // EDGE: the values both engines hold.
      const shared = new Set(
        EDGE_CASES.filter((c) => c.only === undefined).map((c) => String(c.id)),
      );
      const pgEdge = (await readAll(pg, await extractOf(pg, schema, EDGE_TABLE)))
        .filter((r) => shared.has(r[0] ?? "")).sort(byId);
      const myEdge = (await readAll(my, await extractOf(my, schema, EDGE_TABLE)))
        .filter((r) => shared.has(r[0] ?? "")).sort(byId);
      assert.equal(pgEdge.length, shared.size);
      assert.deepEqual(myEdge, pgEdge);
      assert.equal(encodeCsvRows(myEdge), encodeCsvRows(pgEdge));
    } finally {
      await pgSandbox.cleanup();
      await mySandbox.cleanup();
    }
  },
});

Deno.test({
  name: "MysqlSourceDatabase describeSchema() hides a database the user has no privilege on",
  ignore: ignoreMysql,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    const schema = randomName("cr8_private");
    try {
      await sandbox.createUser();
      await sandbox.createDatabase(schema, "CREATE TABLE $s.secret (id INT);", false);
      await using db = await connectMysql(sandbox.connectOptions());
      await assert.rejects(db.describeSchema(schema), SchemaNotFoundError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "connectMysql() sets the statement timeout on the session",
  ignore: ignoreMysql,
  fn: async () => {
    const facts = FACTS!;
    const options = mysqlConnectionOptions({ statementTimeoutMs: 200 });
    const raw = await openMysqlConnection(options);
    try {
      const variable = facts.mariadb ? "max_statement_time" : "max_execution_time";
      const [rows] = await raw.query<RowDataPacket[]>(`SELECT @@SESSION.${variable} AS t`);
      assert.equal(Number(rows[0]?.t), facts.mariadb ? 0.2 : 200);
      const started = performance.now();
      if (facts.mariadb) {
        await assert.rejects(raw.query("SELECT SLEEP(2)"), { errno: 1969 });
      } else {
        // MySQL's max_execution_time interrupts SLEEP() and makes it return 1 instead of failing.
        await raw.query("SELECT SLEEP(2) FROM DUAL").catch(() => {});
      }
      assert.ok(performance.now() - started < 1_500, "the statement ran past its timeout");
    } finally {
      await raw.end();
    }

    await using db = await connectMysql(options);
    await db.ping();
  },
});

Deno.test({
  name: "connectMysql() reports a refused password without revealing it",
  ignore: ignoreMysql,
  fn: async () => {
    const sandbox = new MysqlSandbox();
    try {
      await sandbox.createUser();
      const password = `wrong-${crypto.randomUUID()}`;
      const error = await connectMysql(sandbox.connectOptions({ password })).then(
        () => assert.fail("expected a SourceUnavailableError"),
        (e: unknown) => e,
      );
      assertConnectFailure(
        error,
        SourceLoginRefusedError,
        /^Cannot connect to MySQL at [^:]+:\d+: Access denied for user '\*\*\*'/,
        [password, sandbox.password, sandbox.user],
      );
      assert.ok((error as Error).cause instanceof Error);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "connectMysql() reports an unknown database as SourceConnectionError",
  ignore: ignoreMysql,
  fn: async () => {
    const error = await connectMysql(mysqlConnectionOptions({ database: randomName("cr8_nodb") }))
      .then(
        () => assert.fail("expected a SourceUnavailableError"),
        (e: unknown) => e,
      );
    assertConnectFailure(error, SourceConnectionError, /Unknown database/);
  },
});

Deno.test("connectMysql() fails fast when nothing listens on the port", async () => {
  const started = performance.now();
  const error = await connectMysql(
    mysqlConnectionOptions({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assertConnectFailure(
    error,
    SourceConnectionError,
    /^Cannot connect to MySQL at 127\.0\.0\.1:1: \S/,
  );
  assert.ok(performance.now() - started < 2_000);
});

Deno.test("connectMysql() gives up after connectTimeoutMs on a silent server", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) connections.push(conn);
  })();
  try {
    const started = performance.now();
    const error = await connectMysql(
      mysqlConnectionOptions({
        host: "127.0.0.1",
        port: listener.addr.port,
        connectTimeoutMs: 300,
      }),
    ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
    const elapsed = performance.now() - started;
    assertConnectFailure(error, SourceConnectionError, /ETIMEDOUT|timed? ?out/i);
    assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${elapsed}ms`);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of connections) {
      try {
        conn.close();
      } catch {
        // already closed by the client
      }
    }
  }
});
