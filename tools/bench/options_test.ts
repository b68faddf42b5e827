import assert from "node:assert/strict";
import { DEFAULT_BATCH_ROWS } from "../../ports/source_database.ts";
import { parseBenchOptions } from "./options.ts";

Deno.test("parseBenchOptions() measures every source and format at 1M rows by default", () => {
  assert.deepEqual(parseBenchOptions([]), {
    rows: 1_000_000,
    runs: 3,
    sources: ["PostgreSQL", "MariaDB", "SQL Server", "Databricks"],
    formats: ["csv", "duckdb", "postgresql"],
    batchRows: DEFAULT_BATCH_ROWS,
  });
});

Deno.test("parseBenchOptions() reads --name value pairs", () => {
  const options = parseBenchOptions([
    "--rows",
    "20000",
    "--runs",
    "1",
    "--sources",
    "databricks,MYSQL,sqlserver",
    "--formats",
    "postgresql,csv",
    "--batch-rows",
    "5000",
    "--write",
    "docs/benchmarks.md",
  ]);
  assert.deepEqual(options, {
    rows: 20_000,
    runs: 1,
    // Measured in the bench's own order, whatever the order given.
    sources: ["MariaDB", "SQL Server", "Databricks"],
    formats: ["csv", "postgresql"],
    batchRows: 5_000,
    serviceBatchRows: "5000",
    write: "docs/benchmarks.md",
  });
});

Deno.test("parseBenchOptions() refuses an unknown source or format", () => {
  assert.throws(
    () => parseBenchOptions(["--sources", "PostgreSQL,oracle"]),
    new RangeError(
      'Cannot bench source "oracle": --sources takes postgresql, mariadb, mysql, mssql, sqlserver, ' +
        "databricks",
    ),
  );
  assert.throws(
    () => parseBenchOptions(["--formats", "parquet"]),
    new RangeError('Cannot bench format "parquet": --formats takes csv, duckdb, postgresql'),
  );
});
