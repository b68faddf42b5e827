import assert from "node:assert/strict";
import { type Cell, cellSummary, median, renderReport, withResults } from "./report.ts";

const POSTGRES_CSV: Cell = {
  source: "PostgreSQL",
  format: "csv",
  seconds: 2,
  limit: 1.6,
  peakRssMb: 120.4,
  outputMb: 187.2,
  digestOk: true,
};

const MSSQL_DUCKDB: Cell = {
  source: "SQL Server",
  format: "duckdb",
  seconds: 4,
  limit: 5,
  peakRssMb: 300,
  outputMb: 90,
  digestOk: false,
  fakeCpu: { run: 1.5, read: 1.25, service: 3, client: 0.5 },
};

Deno.test("median() takes the middle value, the upper one of an even count", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([7]), 7);
});

Deno.test("cellSummary() gives time, limit, ratio, memory, digest and the fakes' CPU", () => {
  assert.equal(
    cellSummary(POSTGRES_CSV),
    "PostgreSQL → csv: 2.00 s (limit 1.60 s, ratio 1.25), peak RSS 120 MB, digest ok",
  );
  assert.equal(
    cellSummary(MSSQL_DUCKDB),
    "SQL Server → duckdb: 4.00 s (limit 5.00 s, ratio 0.80), peak RSS 300 MB, digest MISMATCH; " +
      "CPU per run: publish service 3.00 s, fake SQL Server 1.50 s (1.25 s during the raw read, " +
      "whose client used 0.50 s)",
  );
});

Deno.test("renderReport() writes the Markdown table and the CPU split of fake-served sources", () => {
  const report = renderReport([POSTGRES_CSV, MSSQL_DUCKDB], {
    rows: 20_000,
    runs: 3,
    machine: "2 × Test CPU, 8 GiB RAM; Deno 2.9.6",
  });
  assert.equal(
    report,
    [
      "Machine: 2 × Test CPU, 8 GiB RAM; Deno 2.9.6; the databases run on the same machine. " +
      "W table, 20,000 rows; median of 3 runs after a warm-up.",
      "",
      "| source → format | time (s) | rows/s | output (MB) | limit (s) | ratio to limit | peak RSS (MB) | digest |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
      "| PostgreSQL → csv | 2.00 | 10,000 | 187 | 1.60 | 1.25 | 120 | matches source |",
      "| SQL Server → duckdb | 4.00 | 5,000 | 90 | 5.00 | 0.80 | 300 | MISMATCH |",
      "",
      "SQL Server rows, CPU seconds per run (median): the publish service / the fake TDS server " +
      "(a child process generating W as it is read) / the fake during the raw read / the raw " +
      "read's client (the driver alone): duckdb 3.00 / 1.50 / 1.25 / 0.50.",
    ].join("\n"),
  );
});

Deno.test("withResults() replaces what is below the marker, or appends marker and results", () => {
  assert.equal(
    withResults("# Benchmarks\n\nProse.\n<!-- bench results -->\nold table\n", "new table"),
    "# Benchmarks\n\nProse.\n<!-- bench results -->\nnew table\n",
  );
  assert.equal(withResults("# Notes\n", "table"), "# Notes\n<!-- bench results -->\ntable\n");
  assert.equal(withResults("", "table"), "<!-- bench results -->\ntable\n");
});
