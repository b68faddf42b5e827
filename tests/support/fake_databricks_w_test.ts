import assert from "node:assert/strict";
import { openDatabricksSql } from "../../adapters/databricks/databricks_sql.ts";
import { DatabricksTokenSource } from "../../adapters/databricks/databricks_token.ts";
import type { CatalogColumn } from "../../domain/catalog.ts";
import { FIRST_FETCH_ROWS } from "../../ports/source_database.ts";
import {
  databricksEdgeTable,
  databricksStoredConverter,
  databricksWTable,
  FAKE_W_CATALOG,
  FAKE_W_HTTP_PATH,
  FAKE_W_SCHEMA,
  startFakeWWorkspace,
} from "./fake_databricks_w.ts";
import { fakeRow, fakeRowCount } from "./fake_databricks_workspace.ts";
import { EDGE_CASES, edgeCasesFor, logicalTypeIn, W_COLUMNS, wExpectedRows } from "./w_table.ts";

Deno.test("databricksStoredConverter() stores BC dates and timestamps with astronomical years", () => {
  const date = databricksStoredConverter("date");
  assert.equal(date("0044-03-15 BC"), "-0043-03-15");
  assert.equal(date("0001-01-01 BC"), "0000-01-01");
  assert.equal(date("5877642-06-23 BC"), "-5877641-06-23");
  assert.equal(date("5881580-07-11"), "5881580-07-11");
  assert.equal(
    databricksStoredConverter("timestamp_ntz")("290309-12-21 19:59:05.224192 BC"),
    "-290308-12-21 19:59:05.224192",
  );
  assert.equal(
    databricksStoredConverter("timestamp")("290309-12-21 19:59:05.224192+00 BC"),
    "-290308-12-21 19:59:05.224192",
  );
});

Deno.test("databricksStoredConverter() turns a timestamp's offset into UTC, across days and years", () => {
  const timestamp = databricksStoredConverter("timestamp");
  assert.equal(timestamp("2020-06-01 12:00:00+02"), "2020-06-01 10:00:00");
  assert.equal(timestamp("2021-01-01 01:00:00+14:00"), "2020-12-31 11:00:00");
  assert.equal(timestamp("2020-12-31 23:30:00.1234567-05:30"), "2021-01-01 05:00:00.1234567");
  assert.equal(timestamp("2020-01-01 00:00:01.5+00"), "2020-01-01 00:00:01.5");
  assert.equal(timestamp("2020-01-01 00:00:01"), "2020-01-01 00:00:01");
});

Deno.test("databricksStoredConverter() reads complex values with LONG, DECIMAL and BINARY as strings", () => {
  assert.deepEqual(
    databricksStoredConverter("array<bigint>")('["-9223372036854775808", null, "1"]'),
    [-9223372036854775808n, null, 1n],
  );
  assert.deepEqual(
    databricksStoredConverter("struct<d:decimal(38,10),b:binary,ts:timestamp,x:int>")(
      '{"d": "0.5", "b": "\\\\x00ff", "ts": "2020-01-01 00:00:00+01"}',
    ),
    { d: "0.5", b: new Uint8Array([0, 255]), ts: "2019-12-31 23:00:00", x: null },
  );
  assert.deepEqual(
    databricksStoredConverter("map<string,double>")('{"a": 1.5, "n": "NaN", "z": null}'),
    { a: 1.5, n: NaN, z: null },
  );
  assert.throws(
    () => databricksStoredConverter("struct<a:int>")('{"b": 1}'),
    SyntaxError,
    "a field the struct does not have",
  );
  assert.throws(() => databricksStoredConverter("array<bigint>")("[1]"), SyntaxError);
});

Deno.test("databricksWTable() makes W rows as stored, only when they are read", () => {
  const table = databricksWTable(10_000_000);
  assert.equal(fakeRowCount(table), 10_000_000);
  assert.deepEqual(fakeRow(table, 0), [
    1n,
    7,
    1,
    "1.37",
    "0.4487989505",
    0.3333333333333333,
    false,
    "2020-01-01 00:00:01",
    "2000-01-02",
    "C00000001",
    "c4ca4238a0b923820dcc509a6f75849b 1",
    "v1",
    "c4ca4238-a0b9-2382-0dcc-509a6f75849b",
  ]);
  assert.equal(fakeRow(table, 9_999_999)[0], 10_000_000n);
  assert.equal(fakeRow(table, 1)[11], null);
});

Deno.test("databricksEdgeTable() holds each Databricks case in its own column, the rest NULL", () => {
  const table = databricksEdgeTable();
  const cases = edgeCasesFor("databricks");
  assert.equal(fakeRowCount(table), cases.length);
  const names = table.columns.map((c) => c.name);
  const row = (column: string, label: string) => {
    const c = EDGE_CASES.find((x) => x.column === column && x.label === label)!;
    const stored = fakeRow(table, cases.indexOf(c));
    assert.equal(stored[0], c.id);
    assert.equal(stored.filter((v) => v !== null).length, 2, `${column}: ${label}`);
    return stored[names.indexOf(column)];
  };
  assert.equal(row("ch", "padded to its length on read"), "ab");
  assert.equal(row("i8", "bigint min"), -9223372036854775808n);
  assert.ok(Object.is(row("f8", "negative zero"), -0));
  assert.equal(row("tz", "another offset becomes UTC"), "2020-06-01 10:00:00");
  assert.deepEqual(row("bin", "0x00 0xff"), new Uint8Array([0, 255]));
  assert.equal(table.columns.find((c) => c.name === "st")?.type_name, "STRUCT");
});

Deno.test("startFakeWWorkspace() serves W exactly, each batch made before it is asked for", async () => {
  const rows = 5_000;
  const { server, thrift } = await startFakeWWorkspace({
    rows,
    clientId: "bench-spn",
    clientSecret: "bench-secret-0123456789",
    batchRows: 1_000,
  });
  const tokens = new DatabricksTokenSource({
    baseUrl: server.url,
    clientId: "bench-spn",
    clientSecret: "bench-secret-0123456789",
    timeoutMs: 10_000,
    caCertificates: [server.caCertificate],
  });
  try {
    const sql = await openDatabricksSql({
      host: server.host,
      port: server.port,
      httpPath: FAKE_W_HTTP_PATH,
      catalog: FAKE_W_CATALOG,
      getToken: () => tokens.token(),
      caCertificates: [server.caCertificate],
      connectTimeoutMs: 10_000,
      statementTimeoutMs: 30_000,
    });
    const columns = W_COLUMNS.map((c): CatalogColumn => ({
      name: c.name,
      dataType: c.databricks.type_text,
      logicalType: logicalTypeIn(c, "databricks"),
      nullable: c.name !== "id",
      description: null,
    }));
    const extract = {
      schema: FAKE_W_SCHEMA,
      table: {
        name: "wide",
        kind: "table" as const,
        description: null,
        columns,
        primaryKey: ["id"],
      },
    };
    const read = [];
    for await (const batch of sql.readRows(extract, { batchRows: 1_000 })) {
      if (read.length === 0) {
        // Four fetches have been served by now: FIRST_FETCH_ROWS with the statement, as many again
        // by the driver, which reads one ahead with the size it last asked for, then the rest of the
        // first batch (984) and, read ahead, 984 more. The fifth (984) was made once the fourth was
        // sent. Without prefetching this reads 2,000.
        await new Promise((resolve) => setTimeout(resolve, 50));
        const rest = 1_000 - FIRST_FETCH_ROWS;
        assert.equal(thrift.rowsGenerated.get("wide"), 2 * FIRST_FETCH_ROWS + 3 * rest);
      }
      read.push(...batch);
    }
    await sql.close();
    assert.deepEqual(read, wExpectedRows(rows));
    assert.equal(thrift.rowsGenerated.get("wide"), rows, "nothing is made past the end");
  } finally {
    tokens.close();
    await server.close();
  }
});
