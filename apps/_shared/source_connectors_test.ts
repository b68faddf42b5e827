import assert from "node:assert/strict";
import { ConfigError } from "./app_errors.ts";
import { SourceEnv } from "./config.ts";
import { sourceConnectors } from "./source_connectors.ts";

Deno.test("sourceConnectors() has a connector for every source engine", () => {
  const connectors = sourceConnectors(SourceEnv.parse({}));
  assert.deepEqual(Object.keys(connectors).sort(), [
    "databrickssql",
    "mssql",
    "mysql",
    "postgresql",
  ]);
});

Deno.test("sourceConnectors() refuses a SQL Server trust setting that strict encryption would ignore", () => {
  const env = (encrypt: string, trust: string) =>
    SourceEnv.parse({
      SOURCE_MSSQL_ENCRYPT: encrypt,
      SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE: trust,
    });
  assert.throws(() => sourceConnectors(env("strict", "true")), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /SOURCE_MSSQL_ENCRYPT=strict/);
    assert.match(e.message, /DENO_CERT/);
    return true;
  });
  for (const [encrypt, trust] of [["strict", "false"], ["true", "true"], ["false", "false"]]) {
    assert.doesNotThrow(() => sourceConnectors(env(encrypt!, trust!)), `${encrypt}/${trust}`);
  }
});
