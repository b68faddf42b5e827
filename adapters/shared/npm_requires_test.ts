import assert from "node:assert/strict";
import { deferredExports } from "./npm_requires.ts";

Deno.test("deferredExports: loads at the first read of a property, once", () => {
  let loads = 0;
  const exports = deferredExports(() => {
    loads++;
    return { Credential: class Credential {}, version: "1" };
  }) as { Credential: new () => object; version: string };
  assert.equal(loads, 0);
  assert.equal(exports.version, "1");
  assert.equal(typeof new exports.Credential(), "object");
  assert.ok("Credential" in exports);
  assert.ok(!("missing" in exports));
  assert.equal(loads, 1);
});

/**
 * Imports `module` in a fresh process; returns its stderr and whether tedious and `@azure/identity`
 * are among the CommonJS modules it then holds.
 */
async function importInFreshProcess(
  module: string,
): Promise<{ tedious: boolean; identity: boolean; stderr: string }> {
  const script = `
    import { createRequire } from "node:module";
    await import(${JSON.stringify(module)});
    const loaded = Object.keys(createRequire(import.meta.url).cache).map((p) => p.replaceAll("\\\\", "/"));
    console.log(JSON.stringify({
      tedious: loaded.some((path) => path.includes("/tedious/")),
      identity: loaded.some((path) => path.includes("/@azure/identity/")),
    }));`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    cwd: new URL("../../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return { ...JSON.parse(new TextDecoder().decode(output.stdout)), stderr };
}

Deno.test("the SQL Server adapter loads tedious without @azure/identity; tedious alone loads both", async () => {
  const adapter = await importInFreshProcess("./adapters/mssql/mssql_source_database.ts");
  assert.deepEqual([adapter.tedious, adapter.identity], [true, false]);
  const driver = await importInFreshProcess("tedious");
  assert.deepEqual([driver.tedious, driver.identity], [true, true]);
});

Deno.test("the Databricks driver, loaded through its adapter module, loads without Node's punycode, so it prints no warning", async () => {
  const adapter = await importInFreshProcess("./adapters/databricks/databricks_driver.ts");
  assert.doesNotMatch(adapter.stderr, /DeprecationWarning|punycode/);
  const driver = await importInFreshProcess("@databricks/sql");
  assert.match(driver.stderr, /punycode/);
});
