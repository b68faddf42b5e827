/**
 * The Databricks source against the fake workspace (token endpoint, Unity Catalog REST and a Thrift
 * TCLIService endpoint on one HTTPS host with a test CA), driven by the real `@databricks/sql` driver.
 * These tests are emulated: they prove our handling of the documented wire contracts and of the real
 * driver, not that a given workspace accepts our SQL (see the live test for that).
 */
import assert from "node:assert/strict";
import {
  FIXTURE_ROWS,
  FIXTURE_SCHEMA_COMMENT,
  measureStreaming,
  readAll,
  sourceDatabaseContract,
} from "../../tests/contracts/source_database_contract.ts";
import { startFakeDatabricks } from "../../tests/support/fake_databricks.ts";
import {
  createFakeThrift,
  type FakeThriftOptions,
} from "../../tests/support/fake_databricks_thrift.ts";
import type {
  FakeSparkValue,
  FakeUcTable,
  FakeWorkspace,
} from "../../tests/support/fake_databricks_workspace.ts";
import { databricksTablesSchema } from "../../tests/support/fake_databricks_w.ts";
import { EDGE_TABLE, edgeExpectedRows, W_TABLE } from "../../tests/support/w_table.ts";
import type { DatabricksConnectionOptions } from "../../ports/source_database.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import { connectDatabricks } from "./databricks_source_database.ts";
import { statisticsRowCount } from "./databricks_sql.ts";

const CLIENT_ID = "spn-0000-contract";
const CLIENT_SECRET = "dbx-secret-never-logged-0123456789";
const CATALOG = "research_gold";
const SCHEMA = "cr8_contract";

/** The contract's standard fixture in Unity Catalog terms (`varchar(n)` is a STRING with a length). */
function fixtureWorkspace(): FakeWorkspace {
  const int = (name: string, nullable = false) => ({
    name,
    type_name: "INT",
    type_text: "int",
    nullable,
  });
  const rows = (table: keyof typeof FIXTURE_ROWS, convert: ((v: string) => FakeSparkValue)[]) =>
    FIXTURE_ROWS[table].map((row) => row.map((v, i) => v === null ? null : convert[i]!(v)));
  const text = (v: string) => v;
  // As `ANALYZE TABLE ... COMPUTE STATISTICS` leaves it: the exact count.
  const analysed = (table: keyof typeof FIXTURE_ROWS) => ({
    sizeInBytes: 1_024,
    numRows: FIXTURE_ROWS[table].length,
  });
  const number = (v: string) => Number(v);
  const patients: FakeUcTable = {
    name: "patients",
    table_type: "MANAGED",
    comment: "One row per patient",
    columns: [
      int("id"),
      {
        name: "nhs_number",
        type_name: "STRING",
        type_text: "varchar(10)",
        nullable: false,
        comment: "NHS number",
      },
      { name: "birth_date", type_name: "DATE", type_text: "date" },
      { name: "weight", type_name: "DECIMAL", type_text: "decimal(6,2)" },
    ],
    primaryKey: ["id"],
    rows: rows("patients", [number, text, text, text]),
    statistics: analysed("patients"),
  };
  return {
    catalog: CATALOG,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    schemas: [{
      name: SCHEMA,
      comment: FIXTURE_SCHEMA_COMMENT,
      tables: [
        patients,
        {
          name: "visits",
          table_type: "MANAGED",
          columns: [
            int("visit_no"),
            int("patient_id"),
            { name: "visited_on", type_name: "DATE", type_text: "date", nullable: false },
            { name: "notes", type_name: "STRING", type_text: "string", comment: "Free text" },
          ],
          primaryKey: ["patient_id", "visit_no"],
          rows: rows("visits", [number, number, text, text]),
          statistics: analysed("visits"),
        },
        {
          name: "audit_log",
          table_type: "EXTERNAL",
          columns: [
            { name: "event", type_name: "STRING", type_text: "varchar(100)", nullable: false },
            { name: "logged_at", type_name: "TIMESTAMP_NTZ", type_text: "timestamp_ntz" },
          ],
          rows: rows("audit_log", [text, text]),
          statistics: analysed("audit_log"),
        },
        {
          name: "patient_names",
          table_type: "VIEW",
          columns: patients.columns.slice(0, 2),
          rows: rows("patient_names", [number, text]),
        },
      ],
    }],
  };
}

async function startWorkspace(workspace: FakeWorkspace, thriftOptions: FakeThriftOptions = {}) {
  const thrift = createFakeThrift(workspace, thriftOptions);
  const server = await startFakeDatabricks(workspace, { thrift: thrift.handle });
  const options = (overrides: Partial<DatabricksConnectionOptions> = {}) => ({
    host: "127.0.0.1",
    port: server.port,
    httpPath: "/sql/1.0/warehouses/fake",
    catalog: workspace.catalog,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    connectTimeoutMs: 10_000,
    statementTimeoutMs: 30_000,
    ...overrides,
  });
  const connect = (overrides: Partial<DatabricksConnectionOptions> = {}) =>
    connectDatabricks(options(overrides), { caCertificates: [server.caCertificate] });
  return { server, thrift, connect };
}

/** The W and EDGE tables' schema, beside the standard fixture's. */
const TABLES_SCHEMA = "cr8_tables";
const W_ROWS = 1_000;

/** The standard fixture plus W and EDGE (`w_table.ts`) as Databricks holds them. */
function contractWorkspace(): FakeWorkspace {
  const workspace = fixtureWorkspace();
  return {
    ...workspace,
    schemas: [...workspace.schemas, databricksTablesSchema(TABLES_SCHEMA, W_ROWS)],
  };
}

Deno.test("DatabricksSourceDatabase passes the SourceDatabase contract against the fake workspace (emulated)", async (t) => {
  await sourceDatabaseContract(t, {
    name: "DatabricksSourceDatabase",
    setUp: async () => {
      const { server, connect } = await startWorkspace(contractWorkspace());
      return {
        schema: SCHEMA,
        connect: () => connect(),
        cleanup: () => server.close(),
        wide: { schema: TABLES_SCHEMA, table: W_TABLE, rows: W_ROWS },
        edge: { schema: TABLES_SCHEMA, table: EDGE_TABLE, engine: "databricks" },
      };
    },
    engine: "databricks",
  });
});

Deno.test("DatabricksSourceDatabase reads every edge value exactly from a warehouse in another time zone without ANSI mode (emulated)", async () => {
  // Clusters before DBR 17 start without ANSI mode (decimals cast to text as `0E-10`), and a workspace
  // may set a session time zone: the values must not change.
  const { server, thrift, connect } = await startWorkspace(contractWorkspace(), {
    sessionTimeZone: "+05:30",
    ansiMode: false,
  });
  try {
    await using db = await connect();
    const table = (await db.describeSchema(TABLES_SCHEMA, { tables: [EDGE_TABLE] })).tables[0]!;
    const rows = await readAll(db, { schema: TABLES_SCHEMA, table });
    assert.deepEqual(
      rows.sort((a, b) => Number(a[0]) - Number(b[0])),
      edgeExpectedRows("databricks"),
    );
    assert.ok(thrift.statements.includes("SET TIME ZONE 'UTC'"));
  } finally {
    await server.close();
  }
});

Deno.test("DatabricksSourceDatabase describes a schema without opening a warehouse session", async () => {
  const { server, thrift, connect } = await startWorkspace(fixtureWorkspace());
  try {
    await using db = await connect();
    const catalog = await db.describeSchema(SCHEMA);
    assert.equal(catalog.tables.length, 4);
    assert.equal(thrift.sessions.opened, 0, "metadata must not start a stopped warehouse");
  } finally {
    await server.close();
  }
});

Deno.test("DatabricksSourceDatabase refuses a wrong service principal secret at connect, without echoing it", async () => {
  const { server, connect } = await startWorkspace(fixtureWorkspace());
  try {
    const wrong = "wrong-secret-that-must-not-leak-42";
    const error = await connect({ clientSecret: wrong }).then(
      () => assert.fail("expected a refusal"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SourceUnavailableError, String(error));
    assert.ok(!error.message.includes(wrong), error.message);
    assert.ok(!error.message.includes(CLIENT_SECRET), error.message);
  } finally {
    await server.close();
  }
});

Deno.test("DatabricksSourceDatabase refreshes its token before expiry, for Unity Catalog and the warehouse", async () => {
  // Tokens last 2 s and are refreshed when half their life is left (the margin is capped at half the
  // lifetime): after a second each call needs a new one, as a long extract does after an hour.
  const { server, connect } = await startWorkspace({
    ...fixtureWorkspace(),
    tokenLifetimeSeconds: 2,
  });
  try {
    await using db = await connect();
    const table = (await db.describeSchema(SCHEMA, { tables: ["patients"] })).tables[0]!;
    assert.equal((await readAll(db, { schema: SCHEMA, table })).length, 3);
    const before = server.tokensIssued;
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal((await readAll(db, { schema: SCHEMA, table })).length, 3);
    const afterRead = server.tokensIssued;
    assert.ok(afterRead > before, "the warehouse call fetched a fresh token");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await db.describeSchema(SCHEMA, { tables: ["visits"] });
    assert.ok(server.tokensIssued > afterRead, "the catalogue call fetched a fresh token");
  } finally {
    await server.close();
  }
});

Deno.test("DatabricksSourceDatabase readRows() keeps memory bounded over 500 MB of values (emulated)", async () => {
  const rows = 100_000;
  const text = "é😀".repeat(1_000); // 3,000 UTF-16 units a value
  const workspace: FakeWorkspace = {
    ...fixtureWorkspace(),
    schemas: [{
      name: "bulk_schema",
      tables: [{
        name: "bulk",
        table_type: "MANAGED",
        columns: [
          { name: "n", type_name: "LONG", type_text: "bigint", nullable: false },
          { name: "t", type_name: "STRING", type_text: "string" },
        ],
        rows: { count: rows, row: (i) => [BigInt(i), `${i}${text}`] },
      }],
    }],
  };
  // The fake server shares the process, so it serves the size of batch the reader asks for.
  const { server, connect } = await startWorkspace(workspace, { batchRows: 500 });
  try {
    await using db = await connect();
    const bulk = (await db.describeSchema("bulk_schema")).tables[0]!;
    const seen = await measureStreaming(db, { schema: "bulk_schema", table: bulk }, 500);
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
    assert.equal(seen.rows, rows);
    assert.equal(seen.largestBatch, 500);
    assert.ok(seen.valueChars > 250_000_000, "over 250M characters (500 MB as UTF-16) were read");
    assert.ok(seen.heapGrowth < 100 * 2 ** 20, `the heap grew by ${mib(seen.heapGrowth)}`);
    // RSS also holds the in-process fake server's Arrow buffers and what the allocator keeps for
    // reuse; it levels off (measured: 220-295 MiB after 50k rows, 277-284 MiB after 100k).
    assert.ok(seen.rssGrowth < 400 * 2 ** 20, `RSS grew by ${mib(seen.rssGrowth)}`);
  } finally {
    await server.close();
  }
});

const LIVE = {
  host: Deno.env.get("DATABRICKS_HOST"),
  httpPath: Deno.env.get("DATABRICKS_HTTP_PATH"),
  clientId: Deno.env.get("DATABRICKS_CLIENT_ID"),
  clientSecret: Deno.env.get("DATABRICKS_CLIENT_SECRET"),
};

Deno.test({
  name: "DatabricksSourceDatabase against a live workspace (skipped unless DATABRICKS_HOST, " +
    "DATABRICKS_HTTP_PATH, DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET are set)",
  ignore: Object.values(LIVE).some((v) => v === undefined || v === ""),
  fn: async () => {
    // DATABRICKS_TEST_CATALOG / _SCHEMA / _TABLE default to the `samples` catalogue most workspaces have.
    const catalog = Deno.env.get("DATABRICKS_TEST_CATALOG") ?? "samples";
    const schema = Deno.env.get("DATABRICKS_TEST_SCHEMA") ?? "nyctaxi";
    const tableName = Deno.env.get("DATABRICKS_TEST_TABLE") ?? "trips";
    await using db = await connectDatabricks({
      host: new URL(LIVE.host!.includes("://") ? LIVE.host! : `https://${LIVE.host}`).hostname,
      port: 443,
      httpPath: LIVE.httpPath!,
      catalog,
      clientId: LIVE.clientId!,
      clientSecret: LIVE.clientSecret!,
      connectTimeoutMs: 30_000,
      statementTimeoutMs: 300_000,
    });
    await db.ping();
    const described = await db.describeSchema(schema, { tables: [tableName] });
    const table = described.tables[0];
    assert.ok(table, `${catalog}.${schema}.${tableName} is described`);
    let rows = 0;
    for await (const batch of db.readRows({ schema, table }, { batchRows: 100 })) {
      for (const row of batch) assert.equal(row.length, table.columns.length);
      rows += batch.length;
      if (rows >= 1_000) break;
    }
    assert.ok(rows > 0, "the table has rows");
  },
});

Deno.test("DatabricksSourceDatabase estimateRows() reads DESCRIBE TABLE EXTENDED, leaving out tables never analysed (emulated)", async () => {
  const workspace = fixtureWorkspace();
  const [fixture] = workspace.schemas;
  const tables = fixture!.tables.map((table): FakeUcTable => {
    const { statistics: _, ...neverAnalysed } = table;
    if (table.name === "audit_log") return neverAnalysed;
    // ANALYZE TABLE ... NOSCAN: the size only.
    if (table.name === "visits") return { ...table, statistics: { sizeInBytes: 2_048 } };
    return table;
  });
  const { server, thrift, connect } = await startWorkspace({
    ...workspace,
    schemas: [{ ...fixture!, tables }],
  });
  try {
    await using db = await connect();
    const estimates = await db.estimateRows(SCHEMA, ["audit_log", "patients", "visits"]);
    assert.deepEqual([...estimates], [["patients", 3]]);
    assert.deepEqual(
      thrift.statements.filter((s) => s.startsWith("DESCRIBE")),
      ["audit_log", "patients", "visits"].map((t) =>
        `DESCRIBE TABLE EXTENDED \`${CATALOG}\`.\`${SCHEMA}\`.\`${t}\``
      ),
    );
  } finally {
    await server.close();
  }
});

Deno.test("statisticsRowCount() reads the row count of a Statistics row", () => {
  assert.equal(statisticsRowCount("1234 bytes, 100 rows"), 100);
  assert.equal(statisticsRowCount("0 bytes, 0 rows"), 0);
  assert.equal(statisticsRowCount("1234 bytes"), undefined);
});
