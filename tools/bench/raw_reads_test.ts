/**
 * The read limits of the fake-served sources, against the fakes as child processes, with a small W.
 */
import assert from "node:assert/strict";
import {
  databricksReadLimit,
  databricksWExtract,
  mssqlReadLimit,
  mssqlWExtract,
  startFakeDatabricksWorkspace,
  startFakeSqlServer,
} from "./raw_reads.ts";

const ROWS = 2_000;

Deno.test("mssqlWExtract() and databricksWExtract() describe the 13 W columns", () => {
  for (const extract of [mssqlWExtract(), databricksWExtract()]) {
    assert.equal(extract.table.name, "wide");
    assert.equal(extract.table.columns.length, 13);
    assert.deepEqual(extract.table.primaryKey, ["id"]);
  }
});

Deno.test("mssqlReadLimit() reads every row of W from the fake TDS server", async () => {
  const fake = await startFakeSqlServer(ROWS, "bench_reader", "bench-Passw0rd");
  try {
    const read = await mssqlReadLimit(
      fake,
      { user: "bench_reader", password: "bench-Passw0rd" },
      ROWS,
    );
    assert.ok(read.seconds > 0 && read.fakeCpu >= 0 && read.clientCpu >= 0);
    // The row count is checked: a different one fails the read.
    await assert.rejects(
      mssqlReadLimit(fake, { user: "bench_reader", password: "bench-Passw0rd" }, ROWS + 1),
      new Error(`The raw SQL Server read saw ${ROWS} rows, not ${ROWS + 1}`),
    );
  } finally {
    await fake.stop();
  }
});

Deno.test("databricksReadLimit() reads every row of W from the fake workspace", async () => {
  const secret = `dbx-${crypto.randomUUID()}`;
  const fake = await startFakeDatabricksWorkspace(ROWS, "bench-spn", secret);
  try {
    const read = await databricksReadLimit(
      fake,
      { clientId: "bench-spn", clientSecret: secret },
      { rows: ROWS, batchRows: 500 },
    );
    assert.ok(read.seconds > 0 && read.fakeCpu >= 0 && read.clientCpu >= 0);
  } finally {
    await fake.stop();
  }
});

Deno.test("loading the bench loads no Databricks driver, so it prints no punycode deprecation warning", async () => {
  // The driver (node-fetch 2 → whatwg-url → tr46 → `require("punycode")`) is imported by
  // databricksReadLimit() only, when Databricks is benched.
  const bench = new URL("../bench.ts", import.meta.url).href;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `await import(${JSON.stringify(bench)});`],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stderr);
  assert.equal(code, 0, output);
  assert.doesNotMatch(output, /DeprecationWarning|punycode/);
  // What the test guards against: the driver, loaded, does warn.
  const driver = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `await import("@databricks/sql");`],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.match(new TextDecoder().decode(driver.stderr), /punycode/);
});
