import assert from "node:assert/strict";
import type { RowDataPacket } from "mysql2/promise";
import { SchemaNotFoundError, SourceUnavailableError } from "../../ports/source_database.ts";
import {
  sourceDatabaseContract,
  type SourceDatabaseFixture,
} from "../../tests/contracts/source_database_contract.ts";
import { ignoreMysql, randomName } from "../../tests/support/services.ts";
import { mysqlAdmin, mysqlConnectionOptions, MysqlSandbox } from "../../tests/support/databases.ts";
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
`;

Deno.test({
  name: "MysqlSourceDatabase passes the SourceDatabase contract",
  ignore: ignoreMysql,
  fn: async (t) => {
    await sourceDatabaseContract(t, {
      name: "MysqlSourceDatabase",
      schemaComments: false,
      setUp: async (): Promise<SourceDatabaseFixture> => {
        const sandbox = new MysqlSandbox();
        const schema = randomName("cr8_contract");
        try {
          await sandbox.createUser();
          await sandbox.createDatabase(schema, STANDARD_FIXTURE);
        } catch (e) {
          await sandbox.cleanup();
          throw e;
        }
        return {
          schema,
          connect: () => connectMysql(sandbox.connectOptions({ database: schema })),
          cleanup: () => sandbox.cleanup(),
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
      assert.ok(error instanceof SourceUnavailableError, String(error));
      assert.match(error.message, /^Cannot connect to MySQL at [^:]+:\d+: Access denied/);
      assert.ok(!error.message.includes(password));
      assert.ok(!error.message.includes(sandbox.password));
      assert.ok(error.cause instanceof Error);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "connectMysql() reports an unknown database as SourceUnavailableError",
  ignore: ignoreMysql,
  fn: async () => {
    const error = await connectMysql(mysqlConnectionOptions({ database: randomName("cr8_nodb") }))
      .then(
        () => assert.fail("expected a SourceUnavailableError"),
        (e: unknown) => e,
      );
    assert.ok(error instanceof SourceUnavailableError, String(error));
    assert.match(error.message, /Unknown database/);
  },
});

Deno.test("connectMysql() fails fast when nothing listens on the port", async () => {
  const started = performance.now();
  const error = await connectMysql(
    mysqlConnectionOptions({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.match(error.message, /^Cannot connect to MySQL at 127\.0\.0\.1:1: \S/);
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
    assert.ok(error instanceof SourceUnavailableError, String(error));
    assert.match(error.message, /ETIMEDOUT|timed? ?out/i);
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
