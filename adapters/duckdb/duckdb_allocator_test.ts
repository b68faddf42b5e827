/**
 * DuckDB's allocator returns freed memory at once (`duckdb_allocator.ts`): checked on the settings
 * DuckDB's jemalloc actually took, read back through its `mallctl` in a fresh process (the setting is
 * read once per process, when DuckDB first allocates). That no module loads DuckDB another way is
 * checked in tests/architecture_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { inFreshProcess } from "../../tests/support/fresh_process.ts";
import { DUCKDB_ALLOCATOR_VARIABLE } from "./duckdb_allocator.ts";

/** Loads DuckDB through `duckdb.ts`, runs a query, and prints the decay settings its jemalloc took. */
const READ_SETTINGS = `
import { DuckDBInstance } from ${JSON.stringify(new URL("./duckdb.ts", import.meta.url).href)};
const instance = await DuckDBInstance.create(":memory:");
const connection = await instance.connect();
await connection.run("CREATE TABLE t AS SELECT range AS n FROM range(100000)");
connection.closeSync();
instance.closeSync();
const library = Deno.readTextFileSync("/proc/self/maps").split("\\n")
  .map((line) => line.split(/\\s+/)[5]).find((path) => path?.endsWith("/libduckdb.so"));
if (library === undefined) throw new Error("libduckdb.so is not loaded");
const { symbols } = Deno.dlopen(library, {
  duckdb_je_mallctl: { parameters: ["buffer", "buffer", "buffer", "pointer", "usize"], result: "i32" },
});
function read(name) {
  const value = new BigInt64Array(1);
  const code = symbols.duckdb_je_mallctl(new TextEncoder().encode(name + "\\0"), value, new BigUint64Array([8n]), null, 0n);
  if (code !== 0) throw new Error(name + ": mallctl returned " + code);
  return Number(value[0]);
}
console.log(JSON.stringify({ dirty: read("opt.dirty_decay_ms"), muzzy: read("opt.muzzy_decay_ms") }));
`;

function decaySettings(operatorSetting?: string): Promise<{ dirty: number; muzzy: number }> {
  const env = Deno.env.toObject();
  delete env[DUCKDB_ALLOCATOR_VARIABLE];
  if (operatorSetting !== undefined) env[DUCKDB_ALLOCATOR_VARIABLE] = operatorSetting;
  return inFreshProcess(READ_SETTINGS, { env });
}

Deno.test("DuckDB's allocator returns freed pages at once", async () => {
  assert.deepEqual(await decaySettings(), { dirty: 0, muzzy: 0 });
});

Deno.test("DuckDB's allocator keeps an operator's own DUCKDB_JE_MALLOC_CONF", async () => {
  assert.deepEqual(await decaySettings("dirty_decay_ms:5000,muzzy_decay_ms:7000"), {
    dirty: 5000,
    muzzy: 7000,
  });
});
