import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  mysqlConnectionOptions,
  postgresConnectionOptions,
} from "../../tests/support/databases.ts";
import { ignoreMysql, ignorePostgres } from "../../tests/support/services.ts";
import { ConfigError } from "./app_errors.ts";
import { parseEnv, SourceEnv } from "./config.ts";
import { memoryLogger } from "./log.ts";
import { sourceConnectors } from "./source_connectors.ts";
import { SourceConnectionError } from "../../ports/source_database.ts";

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

/** The warnings a logger received, as `event variable` strings. */
function warnings(lines: readonly string[]): string[] {
  return lines.map((line) => JSON.parse(line)).filter((l) => l.level === "warn")
    .map((l) => `${l.event} ${l.variable}`);
}

Deno.test({
  name: "sourceConnectors() by default connects to PostgreSQL and MariaDB with verified TLS only",
  ignore: ignorePostgres || ignoreMysql,
  fn: async () => {
    const log = memoryLogger();
    const connectors = sourceConnectors(parseEnv(SourceEnv, {}), { log });
    assert.deepEqual(warnings(log.lines), []);
    // The local servers have no TLS: the defaults refuse them rather than fall back to plain text.
    const { tls: _pgOptOut, ...pg } = postgresConnectionOptions();
    const { tls: _myOptOut, ...my } = mysqlConnectionOptions({ host: "localhost" });
    await assert.rejects(connectors.postgresql!(pg), (e: unknown) => {
      assert.ok(e instanceof SourceConnectionError);
      assert.match(
        e.logDetail ?? "",
        /does not accept TLS connections .*sslmode verify-full never falls back to plain text/,
      );
      return true;
    });
    await assert.rejects(connectors.mysql!(my), (e: unknown) => {
      assert.ok(e instanceof SourceConnectionError);
      assert.match(
        e.logDetail ?? "",
        /does not accept TLS connections, and ssl-mode VERIFY_IDENTITY never falls back/,
      );
      return true;
    });
  },
});

Deno.test({
  name: "sourceConnectors() opts out only when told to, and says so in a warning",
  ignore: ignorePostgres || ignoreMysql,
  fn: async () => {
    const log = memoryLogger();
    const connectors = sourceConnectors(
      parseEnv(SourceEnv, { SOURCE_POSTGRES_SSLMODE: "disable", SOURCE_MYSQL_SSLMODE: "disabled" }),
      { log },
    );
    assert.deepEqual(warnings(log.lines), [
      "database_tls_disabled SOURCE_POSTGRES_SSLMODE",
      "database_tls_disabled SOURCE_MYSQL_SSLMODE",
    ]);
    const { tls: _pgOptOut, ...pg } = postgresConnectionOptions();
    const { tls: _myOptOut, ...my } = mysqlConnectionOptions();
    await using _pg = await connectors.postgresql!(pg);
    await using _my = await connectors.mysql!(my);

    const weak = memoryLogger();
    sourceConnectors(
      parseEnv(SourceEnv, { SOURCE_POSTGRES_SSLMODE: "require", SOURCE_MYSQL_SSLMODE: "REQUIRED" }),
      { log: weak },
    );
    assert.deepEqual(warnings(weak.lines), [
      "database_tls_unverified SOURCE_POSTGRES_SSLMODE",
      "database_tls_unverified SOURCE_MYSQL_SSLMODE",
    ]);
  },
});

Deno.test("SourceEnv refuses the sslmodes that fall back to plain text, saying why", () => {
  const refused: [Record<string, string>, RegExp][] = [
    [{ SOURCE_POSTGRES_SSLMODE: "prefer" }, /SOURCE_POSTGRES_SSLMODE: "prefer" may fall back/],
    [{ SOURCE_POSTGRES_SSLMODE: "allow" }, /SOURCE_POSTGRES_SSLMODE: "allow" may fall back/],
    [{ SOURCE_POSTGRES_SSLMODE: "VERIFY-FULL" }, /SOURCE_POSTGRES_SSLMODE: must be one of/],
    [{ SOURCE_MYSQL_SSLMODE: "preferred" }, /SOURCE_MYSQL_SSLMODE: "PREFERRED" may fall back/],
    [{ SOURCE_MYSQL_SSLMODE: "verify-identity" }, /SOURCE_MYSQL_SSLMODE: must be one of/],
    [{ SOURCE_MYSQL_SSLMODE: "" }, /SOURCE_MYSQL_SSLMODE: must be one of/],
  ];
  for (const [env, message] of refused) {
    assert.throws(() => parseEnv(SourceEnv, env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      return true;
    });
  }
  const parsed = parseEnv(SourceEnv, { SOURCE_MYSQL_SSLMODE: "verify_ca" });
  assert.equal(parsed.SOURCE_POSTGRES_SSLMODE, "verify-full");
  assert.equal(parsed.SOURCE_MYSQL_SSLMODE, "VERIFY_CA");
});

Deno.test("sourceConnectors() refuses a DENO_CERT or NODE_EXTRA_CA_CERTS that Deno would ignore", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-ca-"));
  try {
    await writeFile(join(dir, "not-a-cert.pem"), "hello\n");
    for (const name of ["DENO_CERT", "NODE_EXTRA_CA_CERTS"]) {
      for (
        const [file, reason] of [
          ["absent.pem", /cannot be read \(ENOENT\)$/],
          ["not-a-cert.pem", /holds no PEM certificate$/],
        ] as const
      ) {
        assert.throws(
          () => sourceConnectors(parseEnv(SourceEnv, { [name]: join(dir, file) })),
          (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.match(e.message, new RegExp(`^Cannot start: ${name} `));
            assert.match(e.message, reason);
            return true;
          },
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
