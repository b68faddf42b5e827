/**
 * The sources without a server here, served by the fakes of the tests as child processes, and their
 * read limits. SQL Server: the fake TDS server (`tests/support/fake_tds_w_process.ts`) generates W as
 * it is read; its limit is tedious running the adapter's own SELECT and dropping every row. Databricks:
 * the fake workspace (`tests/support/fake_databricks_w.ts`: OAuth, Unity Catalog REST and Thrift over
 * HTTPS with a test CA); its limit is `@databricks/sql` running the adapter's own SELECT and
 * `fetchChunk`ing it with the service's batch size. Both report the fake's CPU during the read apart.
 *
 * @module
 */
import process from "node:process";
import { Connection, Request } from "tedious";
import { databricksReadQuery } from "../../adapters/databricks/databricks_dialect.ts";
import { DatabricksTokenSource } from "../../adapters/databricks/databricks_token.ts";
import { mssqlReadQuery } from "../../adapters/mssql/mssql_dialect.ts";
import type { TableExtract } from "../../domain/catalog.ts";
import { DEFAULT_MAX_VALUE_BYTES } from "../../ports/source_database.ts";
import {
  FAKE_W_CATALOG,
  FAKE_W_HTTP_PATH,
  FAKE_W_SCHEMA as DATABRICKS_W_SCHEMA,
} from "../../tests/support/fake_databricks_w_names.ts";
import { FAKE_W_SCHEMA } from "../../tests/support/fake_tds_w_process.ts";
import {
  type Engine,
  logicalTypeIn,
  type TestColumn,
  W_COLUMNS,
} from "../../tests/support/w_table.ts";
import { cpuSeconds } from "./processes.ts";

/** A fake server serving W in a process of its own, and how much CPU it has used. */
export interface FakeServer {
  readonly port: number;
  /** What the process printed once it listened (its port and, for Databricks, the test CA). */
  readonly info: Record<string, unknown>;
  /** User plus system CPU seconds of the process so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

/** Runs a fake's script with `deno run`, and waits for its first line: `{"port": ...}`. */
export async function startFakeProcess(
  permissions: string[],
  script: string,
  ...scriptArgs: string[]
): Promise<FakeServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script, ...scriptArgs],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before listening`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const info = JSON.parse(text.split("\n")[0]!) as Record<string, unknown>;
  return {
    port: Number(info.port),
    info,
    cpuSeconds: () => cpuSeconds(child.pid),
    stop: async () => {
      child.kill();
      await child.status;
      await child.stdout.cancel().catch(() => {});
    },
  } satisfies FakeServer;
}

/** The fake TDS server serving `rows` rows of W to one login. */
export function startFakeSqlServer(
  rows: number,
  user: string,
  password: string,
): Promise<FakeServer> {
  return startFakeProcess(
    ["--allow-net=127.0.0.1", "--allow-env"],
    "tests/support/fake_tds_w_process.ts",
    String(rows),
    user,
    password,
  );
}

/** The fake Databricks workspace serving W, with Arrow batches of up to 100,000 rows. */
export function startFakeDatabricksWorkspace(
  rows: number,
  clientId: string,
  secret: string,
): Promise<FakeServer> {
  return startFakeProcess(
    [
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run=openssl",
      // The driver's module (the fake uses its Thrift types) asks for the OS release when loaded.
      "--allow-sys=osRelease",
    ],
    "tests/support/fake_databricks_w.ts",
    String(rows),
    clientId,
    secret,
  );
}

/** The W table as the SQL Server adapter describes it (the types `INFORMATION_SCHEMA` reports). */
export function mssqlWExtract(): TableExtract {
  return wExtract(FAKE_W_SCHEMA, "mssql", (c) => c.mssql);
}

/** A raw read: its wall time, the fake's CPU seconds during it and this process's (the client's). */
export interface RawRead {
  readonly seconds: number;
  readonly fakeCpu: number;
  readonly clientCpu: number;
}

/** Seconds of `process.cpuUsage()` (microseconds of user and system time). */
function cpuUsageSeconds(usage: { user: number; system: number }): number {
  return (usage.user + usage.system) / 1e6;
}

/**
 * The SQL Server read limit: tedious runs the adapter's own SELECT against the fake and drops every row
 * (no conversion, no batching, no writer). Returns the wall time and the fake's CPU during it.
 */
export async function mssqlReadLimit(
  fake: FakeServer,
  login: { readonly user: string; readonly password: string },
  rows: number,
): Promise<RawRead> {
  const { user, password } = login;
  const connection = new Connection({
    server: "127.0.0.1",
    authentication: { type: "default", options: { userName: user, password } },
    options: {
      port: fake.port,
      encrypt: false,
      rowCollectionOnRequestCompletion: false,
      requestTimeout: 0,
    },
  });
  await new Promise<void>((resolve, reject) => {
    connection.on("connect", (e?: Error) => e === undefined ? resolve() : reject(e));
    connection.connect();
  });
  try {
    const cpuBefore = await fake.cpuSeconds();
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    let seen = 0;
    await new Promise<void>((resolve, reject) => {
      const request = new Request(
        mssqlReadQuery(mssqlWExtract(), DEFAULT_MAX_VALUE_BYTES),
        (e) => e ? reject(e) : resolve(),
      );
      request.on("row", () => seen++);
      connection.execSqlBatch(request);
    });
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = cpuUsageSeconds(process.cpuUsage(clientBefore));
    if (seen !== rows) throw new Error(`The raw SQL Server read saw ${seen} rows, not ${rows}`);
    return { seconds, fakeCpu: await fake.cpuSeconds() - cpuBefore, clientCpu };
  } finally {
    connection.close();
  }
}

/** The W table as the Databricks adapter describes it (Unity Catalog's `type_text`). */
export function databricksWExtract(): TableExtract {
  return wExtract(DATABRICKS_W_SCHEMA, "databricks", (c) => c.databricks.type_text);
}

/** The W table in a schema, with each column's type as the engine's adapter describes it. */
function wExtract(
  schema: string,
  engine: Engine,
  dataType: (column: TestColumn) => string,
): TableExtract {
  return {
    schema,
    table: {
      name: "wide",
      kind: "table",
      description: null,
      columns: W_COLUMNS.map((c) => ({
        name: c.name,
        dataType: dataType(c),
        logicalType: logicalTypeIn(c, engine),
        nullable: c.name !== "id",
        description: null,
      })),
      primaryKey: ["id"],
    },
  };
}

/**
 * The Databricks read limit: `@databricks/sql` runs the adapter's own SELECT against the fake workspace
 * and `fetchChunk`s it with the service's batch size, dropping every row (no conversion, no writer).
 * Returns the wall time and the fake's CPU during it.
 */
export async function databricksReadLimit(
  fake: FakeServer,
  principal: { readonly clientId: string; readonly clientSecret: string },
  size: { readonly rows: number; readonly batchRows: number },
): Promise<RawRead> {
  const { clientId, clientSecret } = principal;
  const tokens = new DatabricksTokenSource({
    baseUrl: `https://127.0.0.1:${fake.port}`,
    clientId,
    clientSecret,
    timeoutMs: 10_000,
    caCertificates: [String(fake.info.caCertificate)],
  });
  // Loaded here, only when Databricks is benched.
  const { DBSQLClient } =
    (await import("../../adapters/databricks/databricks_driver.ts")).databricks;
  // The driver's own HTTPS agent does not verify certificates, so it takes the fake's as it is.
  const client = new DBSQLClient({ logger: { log: () => {} } as never });
  try {
    await client.connect({
      host: "127.0.0.1",
      port: fake.port,
      path: FAKE_W_HTTP_PATH,
      token: await tokens.token(),
      telemetryEnabled: false,
      preserveBigNumericPrecision: true,
    });
    const session = await client.openSession({ initialCatalog: FAKE_W_CATALOG });
    const options = { useCloudFetch: false, useLZ4Compression: false } as const;
    await (await session.executeStatement("SET TIME ZONE 'UTC'", options)).close();
    const cpuBefore = await fake.cpuSeconds();
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    const operation = await session.executeStatement(
      databricksReadQuery(FAKE_W_CATALOG, databricksWExtract(), DEFAULT_MAX_VALUE_BYTES),
      { ...options, maxRows: size.batchRows },
    );
    let seen = 0;
    while (await operation.hasMoreRows()) {
      seen += (await operation.fetchChunk({ maxRows: size.batchRows })).length;
    }
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = cpuUsageSeconds(process.cpuUsage(clientBefore));
    await operation.close();
    await session.close();
    if (seen !== size.rows) {
      throw new Error(`The raw Databricks read saw ${seen} rows, not ${size.rows}`);
    }
    return { seconds, fakeCpu: await fake.cpuSeconds() - cpuBefore, clientCpu };
  } finally {
    await client.close();
    tokens.close();
  }
}
