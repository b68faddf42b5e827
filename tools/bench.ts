/**
 * `deno task bench`: measures the publish service's package step against the physical limit of this
 * machine, as `sources-and-benchmark.md` §F.3 describes.
 *
 * For sources {PostgreSQL, MariaDB, SQL Server, Databricks} × formats {csv, duckdb, postgresql} it builds the 13-column
 * W table (`--rows N`, default 1,000,000) in the local servers, starts the publish service as its own
 * process, and reports per
 * cell: the median wall time of `--runs` runs (after one warm-up), rows/s, the service's peak RSS, the limit
 * command's time measured just before, their ratio, and a correctness digest of the output compared with
 * the source (row count, sum(amount), max(price), min(created_at), count(maybe), a hash of the sorted u).
 *
 * Limit commands: PostgreSQL→CSV `psql \copy (select ...) to file csv header`; MariaDB→CSV `mariadb --quick
 * -B -N -e 'select ...'` to a file; →DuckDB the two-step `psql \copy` to CSV, then DuckDB `COPY FROM` into the
 * same typed table. Results are printed as a Markdown table; `--write docs/benchmarks.md` also saves them.
 *
 * SQL Server (`--sources mssql`) has no server here: the fake TDS server of the tests runs as a child
 * process (`tests/support/fake_tds_w_process.ts`) and generates the W rows as they are read, so the cell
 * measures the client side (tedious, the adapter, the writer). Its limit is the raw read: tedious running
 * the adapter's own SELECT against the same fake and dropping every row (→ DuckDB and → PostgreSQL add
 * DuckDB `COPY FROM` and `psql \copy from`, of the same rows as CSV). The ratio therefore says what the
 * adapter and the writer cost on top of tedious' own decoding; the fake's CPU is reported apart.
 *
 * Databricks (`--sources databricks`) is served the same way: the fake workspace of the tests (OAuth token
 * endpoint, Unity Catalog REST and the Thrift TCLIService endpoint, over HTTPS with a test CA the service
 * trusts through `DENO_CERT`) runs as a child process (`tests/support/fake_databricks_w.ts`), generating
 * W as it is read and evaluating the adapter's SELECT into Arrow batches. Its limit is the raw driver
 * read: `@databricks/sql` running the adapter's own SELECT against the same fake, `fetchChunk` with the
 * service's batch size, dropping every row (plus the same CSV loads as SQL Server for → DuckDB and →
 * PostgreSQL). The ratio says what the adapter and the writer cost on top of the driver.
 *
 * Needs `psql` and `mariadb` on PATH, PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and MariaDB on
 * 127.0.0.1:3306 (root, empty password).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { DBSQLClient } from "@databricks/sql";
import { DuckDBInstance } from "@duckdb/node-api";
import mysql from "mysql2/promise";
import postgres from "postgres";
import { Connection, Request } from "tedious";
import { databricksReadQuery } from "../adapters/databricks/databricks_dialect.ts";
import { DatabricksTokenSource } from "../adapters/databricks/databricks_token.ts";
import { mssqlReadQuery } from "../adapters/mssql/mssql_dialect.ts";
import type { TableExtract } from "../domain/catalog.ts";
import { parseCsv } from "../domain/csv.ts";
import { DEFAULT_BATCH_ROWS, DEFAULT_MAX_VALUE_BYTES } from "../ports/source_database.ts";
import {
  FAKE_W_CATALOG,
  FAKE_W_HTTP_PATH,
  FAKE_W_SCHEMA as DATABRICKS_W_SCHEMA,
} from "../tests/support/fake_databricks_w.ts";
import { FAKE_W_SCHEMA } from "../tests/support/fake_tds_w_process.ts";
import { startService } from "../tests/support/processes.ts";
import { logicalTypeIn, W_COLUMNS } from "../tests/support/w_table.ts";

const args = new Map<string, string>();
for (let i = 0; i < Deno.args.length; i += 2) {
  args.set(Deno.args[i]!.replace(/^--/, ""), Deno.args[i + 1] ?? "");
}
const ROWS = Number(args.get("rows") ?? 1_000_000);
const RUNS = Number(args.get("runs") ?? 3);
/**
 * `--sources PostgreSQL,MariaDB,mssql,databricks` and `--formats csv,duckdb` pick cells (all by
 * default). The source names `--sources` takes, in any case, and the cell label each stands for; an
 * unknown name or format stops the bench rather than measuring nothing.
 */
const SOURCE_NAMES: ReadonlyMap<string, string> = new Map([
  ["postgresql", "PostgreSQL"],
  ["mariadb", "MariaDB"],
  ["mysql", "MariaDB"],
  ["mssql", "SQL Server"],
  ["sqlserver", "SQL Server"],
  ["databricks", "Databricks"],
]);
const SOURCES = (args.get("sources") ?? "PostgreSQL,MariaDB,mssql,databricks").split(",")
  .map((s) => {
    const name = SOURCE_NAMES.get(s.toLowerCase());
    if (name === undefined) {
      throw new RangeError(
        `Cannot bench source "${s}": --sources takes ${[...SOURCE_NAMES.keys()].join(", ")}`,
      );
    }
    return name;
  });
/** Rows per source batch: the service's `SOURCE_BATCH_ROWS` (`--batch-rows N`) and the raw reads'. */
const BATCH_ROWS = Number(args.get("batch-rows") ?? DEFAULT_BATCH_ROWS);
const FORMAT_NAMES = ["csv", "duckdb", "postgresql"];
const FORMATS = (args.get("formats") ?? FORMAT_NAMES.join(",")).split(",").map((f) => {
  if (!FORMAT_NAMES.includes(f)) {
    throw new RangeError(`Cannot bench format "${f}": --formats takes ${FORMAT_NAMES.join(", ")}`);
  }
  return f;
});
const SCHEMA = "cr8tor_bench";
const COLUMNS = "id, i, s, amount, price, ratio, flag, created_at, d, code, txt, maybe, u";

const PG = { host: "127.0.0.1", port: 5432, user: "postgres", database: "postgres" };
const MY = { host: "127.0.0.1", port: 3306, user: "root", password: "" };
const PG_ADDRESS = { host: PG.host, port: PG.port };
const MY_ADDRESS = { host: MY.host, port: MY.port };
/** The Databricks service principal the fake workspace gives tokens to. */
const DATABRICKS_CLIENT_ID = "cr8tor-bench-spn";
/** The secrets the benchmark's read-only logins are stored under, in their allow-list roles. */
const BENCH_LOGINS = [{ username: "benchuser", password: "benchpassword" }];

function say(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
}

async function sh(command: string): Promise<number> {
  const started = performance.now();
  const { code, stderr } = await new Deno.Command("bash", {
    args: ["-c", command],
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`${command}: ${new TextDecoder().decode(stderr)}`);
  return (performance.now() - started) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

// ---------------------------------------------------------------------------------------------------------
// The W table (§F.3)

const PG_W = `
  create table ${SCHEMA}.wide (id bigint primary key, i int, s smallint, amount numeric(18,2),
    price numeric(38,10), ratio double precision, flag boolean, created_at timestamptz, d date,
    code varchar(20), txt text, maybe text, u uuid);
  insert into ${SCHEMA}.wide select g, (g*7)%100000, (g%30000)::smallint, round((g*1.37)::numeric % 1000000, 2),
    (g::numeric * 3.1415926535) / 7, g/3.0, g%2=0, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
    date '2000-01-01' + (g % 9000), 'C' || lpad((g%99999)::text, 8, '0'), md5(g::text) || ' ' || (g%1000)::text,
    case when g%2=0 then null else 'v' || g end, md5(g::text)::uuid
  from generate_series(1, ${ROWS}) g;`;

const MY_W =
  `create table ${SCHEMA}.wide (id bigint primary key, i int, s smallint, amount decimal(18,2),
  price decimal(38,10), ratio double, flag boolean, created_at timestamp(6) null, d date, code varchar(20),
  txt text, maybe text, u char(36))`;

async function ensureTables(workDir: string): Promise<void> {
  const sql = postgres({ ...PG, username: PG.user, max: 1, onnotice: () => {} });
  try {
    const [existing] = await sql`select count(*)::int as n from information_schema.tables
      where table_schema = ${SCHEMA} and table_name = 'wide'`;
    const count = existing?.n === 1
      ? (await sql.unsafe(`select count(*)::int as n from ${SCHEMA}.wide`))[0]?.n
      : -1;
    if (count !== ROWS) {
      say(`Building the W table with ${ROWS} rows in PostgreSQL...`);
      await sql.unsafe(`drop schema if exists ${SCHEMA} cascade; create schema ${SCHEMA}`);
      await sql.unsafe(PG_W);
      await sql.unsafe(`analyze ${SCHEMA}.wide`);
    }
  } finally {
    await sql.end();
  }
  const conn = await mysql.createConnection({
    ...MY,
    multipleStatements: true,
    infileStreamFactory: (p: string) => createReadStream(p),
  });
  try {
    await conn.query(`create database if not exists ${SCHEMA}`);
    const [rows] = await conn.query(
      `select count(*) as n from information_schema.tables where table_schema = ? and table_name = 'wide'`,
      [SCHEMA],
    ) as unknown as [{ n: number }[]];
    const present = Number(rows[0]?.n) === 1;
    const [counted] = present
      ? await conn.query(`select count(*) as n from ${SCHEMA}.wide`) as unknown as [{ n: number }[]]
      : [[{ n: -1 }]];
    if (Number(counted[0]?.n) !== ROWS) {
      say(`Copying the W table into MariaDB...`);
      const csv = join(workDir, "w.csv");
      await sh(
        `psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "\\copy (select id, i, s, amount, price, ratio, flag::int, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), d, code, txt, coalesce(maybe, '\\N'), u from ${SCHEMA}.wide) to '${csv}' with (format csv)"`,
      );
      await conn.query(`drop table if exists ${SCHEMA}.wide; ${MY_W}`);
      await conn.query(`set time_zone = '+00:00'`);
      await conn.query(
        `load data local infile ? into table ${SCHEMA}.wide fields terminated by ',' optionally enclosed by '"'
         lines terminated by '\\n' (id, i, s, amount, price, ratio, flag, created_at, d, code, txt, maybe, u)`,
        [csv],
      );
      await rm(csv);
    }
  } finally {
    await conn.end();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Correctness digest

interface Digest {
  rows: number;
  sumAmount: string;
  maxPrice: string;
  minCreatedAt: string;
  countMaybe: number;
  uHash: string;
}

function scaled(text: string, scale: number): bigint {
  const [whole = "0", fraction = ""] = text.split(".");
  return BigInt(whole + fraction.padEnd(scale, "0").slice(0, scale));
}

function unscaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** The hash of the sorted `u` values joined by newlines, fed piece by piece (no giant string). */
function sortedHash(values: string[]): string {
  values.sort();
  const hash = createHash("sha256");
  values.forEach((value, i) => hash.update(i === 0 ? value : `\n${value}`));
  return hash.digest("hex").slice(0, 16);
}

/** The digest of rows read one by one; only the `u` column is kept, to sort it at the end. */
async function digestOf(rows: AsyncIterable<Record<string, string | null>>): Promise<Digest> {
  let count = 0;
  let sumAmount = 0n;
  let maxPrice: bigint | undefined;
  let minCreatedAt: string | undefined;
  let countMaybe = 0;
  const us: string[] = [];
  for await (const row of rows) {
    count++;
    if (row.amount !== null) sumAmount += scaled(row.amount!, 2);
    if (row.price !== null) {
      const price = scaled(row.price!, 10);
      if (maxPrice === undefined || price > maxPrice) maxPrice = price;
    }
    const created = row.created_at!.replace(/\+00$/, "");
    if (minCreatedAt === undefined || created < minCreatedAt) minCreatedAt = created;
    if (row.maybe !== null) countMaybe++;
    us.push(row.u!);
  }
  return {
    rows: count,
    sumAmount: unscaled(sumAmount, 2),
    maxPrice: maxPrice === undefined ? "" : unscaled(maxPrice, 10),
    minCreatedAt: minCreatedAt ?? "",
    countMaybe,
    uHash: sortedHash(us),
  };
}

/** The digest PostgreSQL computes itself, of the W table or of a loaded copy of it. */
async function postgresDigest(
  database = PG.database,
  table = `${SCHEMA}.wide`,
): Promise<Digest> {
  const sql = postgres({ ...PG, database, username: PG.user, max: 1, onnotice: () => {} });
  try {
    await sql`set timezone = 'UTC'`;
    const [r] = await sql.unsafe(`select count(*)::int as rows, sum(amount)::text as sum_amount,
      max(price)::text as max_price, to_char(min(created_at), 'YYYY-MM-DD HH24:MI:SS') as min_created,
      count(maybe)::int as count_maybe from ${table}`);
    const us: string[] = [];
    for await (
      const batch of sql.unsafe(`select u::text from ${table}`).values().cursor(100_000)
    ) {
      for (const [u] of batch) us.push(u);
    }
    return {
      rows: r!.rows,
      sumAmount: r!.sum_amount,
      maxPrice: r!.max_price,
      minCreatedAt: r!.min_created,
      countMaybe: r!.count_maybe,
      uHash: sortedHash(us),
    };
  } finally {
    await sql.end();
  }
}

async function* csvRecords(path: string): AsyncGenerator<Record<string, string | null>> {
  // The W table has no quoted newlines, so lines are records.
  const lines = createInterface({ input: createReadStream(path, { highWaterMark: 1 << 20 }) });
  let header: string[] | undefined;
  for await (const line of lines) {
    const [values] = parseCsv(line + "\n");
    if (header === undefined) {
      header = values!.map(String);
      continue;
    }
    yield Object.fromEntries(header.map((h, i) => [h, values![i] ?? null]));
  }
}

function csvDigest(path: string): Promise<Digest> {
  return digestOf(csvRecords(path));
}

async function duckdbDigest(path: string, schema: string): Promise<Digest> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const conn = await instance.connect();
  try {
    await conn.run("set TimeZone = 'UTC'");
    const r =
      (await conn.runAndReadAll(`select count(*)::int as rows, sum(amount)::varchar as sum_amount,
      max(price)::varchar as max_price, strftime(min(created_at), '%Y-%m-%d %H:%M:%S') as min_created,
      count(maybe)::int as count_maybe from "${schema}".wide`)).getRowObjects()[0]!;
    const us: string[] = [];
    const result = await conn.stream(`select u::varchar as u from "${schema}".wide`);
    for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0;) {
      for (const [u] of chunk.getRows()) us.push(String(u));
      chunk = await result.fetchChunk();
    }
    return {
      rows: Number(r.rows),
      sumAmount: String(r.sum_amount),
      maxPrice: String(r.max_price),
      minCreatedAt: String(r.min_created),
      countMaybe: Number(r.count_maybe),
      uHash: sortedHash(us),
    };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Limits

async function pgCsvLimit(file: string): Promise<number> {
  return await sh(
    `psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "set timezone='UTC'" -c "\\copy (select ${COLUMNS} from ${SCHEMA}.wide) to '${file}' with (format csv, header)"`,
  );
}

async function mariadbCsvLimit(file: string): Promise<number> {
  return await sh(
    `mariadb -h ${MY.host} -P ${MY.port} -u ${MY.user} --quick -B -N -e 'select ${COLUMNS} from ${SCHEMA}.wide' > '${file}'`,
  );
}

/** The destination database the benchmark loads into, and its table for the limit command. */
const DEST_DB = "cr8tor_bench_dest";
const PG_W_TYPED = `(id bigint primary key, i integer, s smallint, amount numeric(18,2),
  price numeric(38,10), ratio double precision, flag boolean, created_at timestamptz, d date,
  code varchar(20), txt text, maybe text, u uuid)`;

/**
 * The PostgreSQL destination limit: the COPY pipe `psql \copy ... to stdout | psql \copy ... from stdin`
 * (CSV, from the source database into a fresh typed table with the same primary key), for either source:
 * the pipe reads PostgreSQL's copy of W, which holds the same rows as MariaDB's.
 */
async function pgPipeLimit(): Promise<number> {
  const dest = `psql -h ${PG.host} -U ${PG.user} -d ${DEST_DB} -q`;
  await sh(
    `${dest} -c "drop table if exists bench_limit; create table bench_limit ${
      PG_W_TYPED.replaceAll("\n", " ")
    }"`,
  );
  return await sh(
    `set -o pipefail; psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "set timezone='UTC'" -c "\\copy (select ${COLUMNS} from ${SCHEMA}.wide) to stdout with (format csv)" | ${dest} -c "\\copy bench_limit from stdin with (format csv)"`,
  );
}

/** The two-step DuckDB limit: `psql \copy` to CSV, then DuckDB `COPY FROM` into the typed table. */
async function duckdbLimit(csvFile: string, dbFile: string): Promise<number> {
  return await pgCsvLimit(csvFile) + await duckdbCopyLimit(csvFile, dbFile);
}

/** DuckDB `COPY FROM` of a W CSV file into the typed table, with a checkpoint. */
async function duckdbCopyLimit(csvFile: string, dbFile: string): Promise<number> {
  const started = performance.now();
  const instance = await DuckDBInstance.create(dbFile);
  const conn = await instance.connect();
  try {
    await conn.run(
      `create table wide (id bigint primary key, i integer, s smallint, amount decimal(18,2),
      price decimal(38,10), ratio double, flag boolean, created_at timestamptz, d date, code varchar, txt varchar,
      maybe varchar, u uuid)`,
    );
    await conn.run(`copy wide from '${csvFile}' (header true)`);
    await conn.run("checkpoint");
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return (performance.now() - started) / 1000;
}

/** `psql \copy from` of a W CSV file into a fresh typed table with the primary key. */
async function pgLoadLimit(csvFile: string): Promise<number> {
  const dest = `psql -h ${PG.host} -U ${PG.user} -d ${DEST_DB} -q`;
  await sh(
    `${dest} -c "drop table if exists bench_limit; create table bench_limit ${
      PG_W_TYPED.replaceAll("\n", " ")
    }"`,
  );
  return await sh(`${dest} -c "\\copy bench_limit from '${csvFile}' with (format csv, header)"`);
}

// ---------------------------------------------------------------------------------------------------------
// Fakes as child processes: SQL Server (the fake TDS server) and Databricks (the fake workspace)

/** A fake server serving W in a process of its own, and how much CPU it has used. */
interface FakeServer {
  readonly port: number;
  /** What the process printed once it listened (its port and, for Databricks, the test CA). */
  readonly info: Record<string, unknown>;
  /** User plus system CPU seconds of the process so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

/** Runs a fake's script with `deno run`, and waits for its first line: `{"port": ...}`. */
async function startFakeProcess(permissions: string[], script: string, ...scriptArgs: string[]) {
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

function startFakeSqlServer(user: string, password: string): Promise<FakeServer> {
  return startFakeProcess(
    ["--allow-net=127.0.0.1", "--allow-env"],
    "tests/support/fake_tds_w_process.ts",
    String(ROWS),
    user,
    password,
  );
}

/** The fake Databricks workspace serving W, with Arrow batches of up to 100,000 rows. */
function startFakeDatabricksWorkspace(clientId: string, secret: string): Promise<FakeServer> {
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
    String(ROWS),
    clientId,
    secret,
  );
}

/** User plus system CPU seconds a process has used (through a shell: /proc needs -A in Deno). */
async function cpuSeconds(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("bash", {
    args: ["-c", `cat /proc/${pid}/stat`],
    stdout: "piped",
  }).output();
  const stat = new TextDecoder().decode(stdout);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

/** The W table as the SQL Server adapter describes it (the types `INFORMATION_SCHEMA` reports). */
function mssqlWExtract(): TableExtract {
  return {
    schema: FAKE_W_SCHEMA,
    table: {
      name: "wide",
      kind: "table",
      description: null,
      columns: W_COLUMNS.map((c) => ({
        name: c.name,
        dataType: c.mssql,
        logicalType: logicalTypeIn(c, "mssql"),
        nullable: c.name !== "id",
        description: null,
      })),
      primaryKey: ["id"],
    },
  };
}

/** A raw read: its wall time, the fake's CPU seconds during it and this process's (the client's). */
interface RawRead {
  readonly seconds: number;
  readonly fakeCpu: number;
  readonly clientCpu: number;
}

function cpuUsageSeconds(usage: { user: number; system: number }): number {
  return (usage.user + usage.system) / 1e6;
}

/**
 * The SQL Server read limit: tedious runs the adapter's own SELECT against the fake and drops every row
 * (no conversion, no batching, no writer). Returns the wall time and the fake's CPU during it.
 */
async function mssqlReadLimit(
  fake: FakeServer,
  user: string,
  password: string,
): Promise<RawRead> {
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
    let rows = 0;
    await new Promise<void>((resolve, reject) => {
      const request = new Request(
        mssqlReadQuery(mssqlWExtract(), DEFAULT_MAX_VALUE_BYTES),
        (e) => e ? reject(e) : resolve(),
      );
      request.on("row", () => rows++);
      connection.execSqlBatch(request);
    });
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = cpuUsageSeconds(process.cpuUsage(clientBefore));
    if (rows !== ROWS) throw new Error(`The raw SQL Server read saw ${rows} rows, not ${ROWS}`);
    return { seconds, fakeCpu: await fake.cpuSeconds() - cpuBefore, clientCpu };
  } finally {
    connection.close();
  }
}

/** The W table as the Databricks adapter describes it (Unity Catalog's `type_text`). */
function databricksWExtract(): TableExtract {
  return {
    schema: DATABRICKS_W_SCHEMA,
    table: {
      name: "wide",
      kind: "table",
      description: null,
      columns: W_COLUMNS.map((c) => ({
        name: c.name,
        dataType: c.databricks.type_text,
        logicalType: logicalTypeIn(c, "databricks"),
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
async function databricksReadLimit(
  fake: FakeServer,
  clientId: string,
  clientSecret: string,
): Promise<RawRead> {
  const tokens = new DatabricksTokenSource({
    baseUrl: `https://127.0.0.1:${fake.port}`,
    clientId,
    clientSecret,
    timeoutMs: 10_000,
    caCertificates: [String(fake.info.caCertificate)],
  });
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
      { ...options, maxRows: BATCH_ROWS },
    );
    let rows = 0;
    while (await operation.hasMoreRows()) {
      rows += (await operation.fetchChunk({ maxRows: BATCH_ROWS })).length;
    }
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = cpuUsageSeconds(process.cpuUsage(clientBefore));
    await operation.close();
    await session.close();
    if (rows !== ROWS) throw new Error(`The raw Databricks read saw ${rows} rows, not ${ROWS}`);
    return { seconds, fakeCpu: await fake.cpuSeconds() - cpuBefore, clientCpu };
  } finally {
    await client.close();
    tokens.close();
  }
}

// ---------------------------------------------------------------------------------------------------------

interface Cell {
  source: "PostgreSQL" | "MariaDB" | "SQL Server" | "Databricks";
  format: "csv" | "duckdb" | "postgresql";
  seconds: number;
  limit: number;
  peakRssMb: number;
  outputMb: number;
  digestOk: boolean;
  /**
   * SQL Server and Databricks only: median CPU seconds per run of the fake server during packaging and
   * during the raw read, of the publish service during packaging, and of the raw read's client (the
   * driver alone).
   */
  fakeCpu?: { run: number; read: number; service: number; client: number };
}

/** Whether a cell's digest matches the source's; says so when it does not. */
function digestMatches(source: string, format: string, actual: Digest, expected: Digest): boolean {
  const ok = JSON.stringify(actual) === JSON.stringify(expected);
  if (!ok) {
    say(
      `Digest mismatch ${source} ${format}: ${JSON.stringify(actual)} vs ${
        JSON.stringify(expected)
      }`,
    );
  }
  return ok;
}

/** The process's peak resident memory since the last reset (read through a shell: /proc needs -A in Deno). */
async function peakRssMb(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("bash", {
    args: ["-c", `grep VmHWM /proc/${pid}/status`],
    stdout: "piped",
  })
    .output();
  return Number(/VmHWM:\s+(\d+) kB/.exec(new TextDecoder().decode(stdout))?.[1] ?? 0) / 1024;
}

/** Resets the peak so each run is measured on its own (Linux `clear_refs` 5). */
async function resetPeakRss(pid: number): Promise<void> {
  await new Deno.Command("bash", { args: ["-c", `echo 5 > /proc/${pid}/clear_refs`] }).output();
}

if (import.meta.main) {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-bench-"));
  const storage = join(work, "lsc");
  const secrets = join(work, "secrets");
  await mkdir(join(storage, "staging"), { recursive: true });
  await mkdir(join(storage, "production"));
  await mkdir(secrets);
  const key = `bench-${crypto.randomUUID()}`;
  const readerPassword = crypto.randomUUID();
  const databricksSecret = `dbx-${crypto.randomUUID()}`;
  for (
    const [name, value] of Object.entries({
      publishserviceapikey: key,
      benchuser: "cr8tor_bench_reader",
      benchpassword: readerPassword,
      rootuser: "root",
      destpassword: "unused-trust-auth",
      dbxclientid: DATABRICKS_CLIENT_ID,
      dbxsecret: databricksSecret,
    })
  ) {
    await writeFile(join(secrets, name), value);
  }
  let fake: FakeServer | undefined;
  let databricks: FakeServer | undefined;
  try {
    await ensureTables(work);
    // A read-only login for both sources.
    const admin = postgres({ ...PG, username: PG.user, max: 1, onnotice: () => {} });
    await admin.unsafe(
      `do $$ begin if not exists (select from pg_roles where rolname = 'cr8tor_bench_reader')
      then create role cr8tor_bench_reader login; end if; end $$`,
    );
    await admin.unsafe(`alter role cr8tor_bench_reader password '${readerPassword}'`);
    await admin.unsafe(
      `grant usage on schema ${SCHEMA} to cr8tor_bench_reader; grant select on all tables in schema ${SCHEMA} to cr8tor_bench_reader`,
    );
    await admin.end();
    const my = await mysql.createConnection(MY);
    await my.query(`create user if not exists 'cr8tor_bench_reader'@'%' identified by ?`, [
      readerPassword,
    ]);
    await my.query(`alter user 'cr8tor_bench_reader'@'%' identified by ?`, [readerPassword]);
    await my.query(`grant select on ${SCHEMA}.* to 'cr8tor_bench_reader'@'%'`);
    await my.end();

    // The PostgreSQL destination: its own database, loaded by the superuser (trust auth).
    const server = postgres({ ...PG, username: PG.user, max: 1, onnotice: () => {} });
    const [hasDest] = await server`select 1 as ok from pg_database where datname = ${DEST_DB}`;
    if (hasDest === undefined) await server.unsafe(`create database ${DEST_DB}`);
    await server.unsafe(
      `do $$ begin if not exists (select from pg_roles where rolname = 'cr8tor_bench_opal_ro')
      then create role cr8tor_bench_opal_ro login; end if; end $$`,
    );
    await server.end();

    // SQL Server: the fake TDS server, serving W to the same read-only login.
    fake = SOURCES.includes("SQL Server")
      ? await startFakeSqlServer("cr8tor_bench_reader", readerPassword)
      : undefined;
    const MS_ADDRESS = { host: "127.0.0.1", port: fake?.port ?? 1433 };
    // Databricks: the fake workspace, its test CA trusted by the service through DENO_CERT.
    databricks = SOURCES.includes("Databricks")
      ? await startFakeDatabricksWorkspace(DATABRICKS_CLIENT_ID, databricksSecret)
      : undefined;
    const DBX_ADDRESS = { host: "127.0.0.1", port: databricks?.port ?? 443 };
    const caFile = join(work, "databricks-ca.pem");
    if (databricks !== undefined) await writeFile(caFile, String(databricks.info.caCertificate));

    const allowList = join(work, "allowed-sources.json");
    await writeFile(
      allowList,
      JSON.stringify({
        sources: [
          { type: "postgresql", ...PG_ADDRESS, database: PG.database, credentials: BENCH_LOGINS },
          { type: "mysql", ...MY_ADDRESS, database: SCHEMA, credentials: BENCH_LOGINS },
          { type: "sqlserver", ...MS_ADDRESS, database: "bench", credentials: BENCH_LOGINS },
          {
            type: "databrickssql",
            ...DBX_ADDRESS,
            http_path: FAKE_W_HTTP_PATH,
            catalog: FAKE_W_CATALOG,
            credentials: [{ client_id: "dbxclientid", client_secret: "dbxsecret" }],
          },
        ],
      }),
    );

    const expected = await postgresDigest();
    const service = await startService("publish", {
      SECRETS_MNT_PATH: secrets,
      ALLOWED_SOURCES_FILE: allowList,
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: storage,
      DESTINATION_POSTGRESQL_HOST: PG.host,
      DESTINATION_POSTGRESQL_PORT: String(PG.port),
      DESTINATION_POSTGRESQL_DATABASE: DEST_DB,
      DESTINATION_POSTGRESQL_USERNAME: PG.user,
      DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
      DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: "cr8tor_bench_opal_ro",
      DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "destpassword",
      // Packaging never calls OPAL; nothing listens here.
      DESTINATION_OPAL_HOST: "http://127.0.0.1:9",
      DESTINATION_OPAL_USERNAME: "administrator",
      DESTINATION_OPAL_PASSWORD_SECRET_NAME: "destpassword",
      PACKAGE_CONCURRENCY: "2",
      // The fake TDS server speaks TDS without TLS.
      SOURCE_MSSQL_ENCRYPT: "false",
      // `--batch-rows N` overrides the service's SOURCE_BATCH_ROWS, to compare batch sizes.
      ...(args.has("batch-rows") ? { SOURCE_BATCH_ROWS: args.get("batch-rows")! } : {}),
      ...(databricks === undefined ? {} : { DENO_CERT: caFile }),
    });
    const cells: Cell[] = [];
    try {
      for (
        const source of (["PostgreSQL", "MariaDB", "SQL Server", "Databricks"] as const).filter((
          s,
        ) => SOURCES.includes(s))
      ) {
        for (
          const format of (["csv", "duckdb", "postgresql"] as const).filter((f) =>
            FORMATS.includes(f)
          )
        ) {
          const sourceBody = source === "PostgreSQL"
            ? { type: "postgresql", host_url: PG.host, port: PG.port, database: PG.database }
            : source === "MariaDB"
            ? { type: "mysql", host_url: MY.host, port: MY.port, database: SCHEMA }
            : source === "SQL Server"
            ? {
              type: "sqlserver",
              host_url: MS_ADDRESS.host,
              port: MS_ADDRESS.port,
              database: "bench",
            }
            : {
              type: "databrickssql",
              host_url: `https://${DBX_ADDRESS.host}`,
              port: DBX_ADDRESS.port,
              http_path: FAKE_W_HTTP_PATH,
              catalog: FAKE_W_CATALOG,
            };
          const credentials = source === "Databricks"
            ? { spn_clientid: "dbxclientid", spn_secret: "dbxsecret" }
            : { username_key: "benchuser", password_key: "benchpassword" };
          const schemaName = source === "SQL Server"
            ? FAKE_W_SCHEMA
            : source === "Databricks"
            ? DATABRICKS_W_SCHEMA
            : SCHEMA;
          const served = source === "SQL Server"
            ? fake
            : source === "Databricks"
            ? databricks
            : undefined;
          const limits: number[] = [];
          const times: number[] = [];
          const fakeRunCpu: number[] = [];
          const fakeReadCpu: number[] = [];
          const clientReadCpu: number[] = [];
          const serviceCpu: number[] = [];
          let peak = 0;
          let outputMb = 0;
          let digestOk = true;
          for (let run = 0; run <= RUNS; run++) {
            const limitFile = join(work, `limit-${run}.csv`);
            let limit: number;
            if (served !== undefined) {
              // The raw read, plus (for a database destination) loading the same rows from CSV.
              const read = source === "SQL Server"
                ? await mssqlReadLimit(served, "cr8tor_bench_reader", readerPassword)
                : await databricksReadLimit(served, DATABRICKS_CLIENT_ID, databricksSecret);
              fakeReadCpu.push(read.fakeCpu);
              clientReadCpu.push(read.clientCpu);
              limit = read.seconds;
              if (format !== "csv") {
                await pgCsvLimit(limitFile); // the same rows as CSV, not timed
                limit += format === "duckdb"
                  ? await duckdbCopyLimit(limitFile, join(work, `limit-${run}.duckdb`))
                  : await pgLoadLimit(limitFile);
              }
            } else {
              limit = format === "postgresql"
                ? await pgPipeLimit()
                : format === "csv"
                ? source === "PostgreSQL"
                  ? await pgCsvLimit(limitFile)
                  : await mariadbCsvLimit(limitFile)
                : await duckdbLimit(limitFile, join(work, `limit-${run}.duckdb`));
            }
            await rm(limitFile, { force: true });
            await rm(join(work, `limit-${run}.duckdb`), { force: true });
            const startTime = `20250101_0000${String(run).padStart(2, "0")}`;
            await resetPeakRss(service.pid);
            const fakeCpuBefore = await served?.cpuSeconds() ?? 0;
            const serviceCpuBefore = await cpuSeconds(service.pid);
            const started = performance.now();
            const res = await fetch(`${service.url}/data-publish/package`, {
              method: "POST",
              headers: { "content-type": "application/json", "x-api-key": key },
              body: JSON.stringify({
                project_name: "Bench",
                project_start_time: startTime,
                destination: format === "postgresql"
                  ? { type: "postgresql" }
                  : { name: "LSC", type: "filestore", format },
                source: { ...sourceBody, credentials },
                dataset: { schema_name: schemaName, tables: [{ name: "wide" }] },
              }),
            });
            const body = await res.json();
            const seconds = (performance.now() - started) / 1000;
            if (served !== undefined) {
              fakeRunCpu.push(await served.cpuSeconds() - fakeCpuBefore);
              serviceCpu.push(await cpuSeconds(service.pid) - serviceCpuBefore);
            }
            if (res.status !== 200) throw new Error(`package failed: ${JSON.stringify(body)}`);
            if (format === "postgresql") {
              const [schema, table] = String(body.payload.data_retrieved[0].table_name).split(".");
              const qualified = `"${schema}"."${table}"`;
              if (run === RUNS) {
                digestOk = digestMatches(
                  source,
                  format,
                  await postgresDigest(DEST_DB, qualified),
                  expected,
                );
              }
              const dest = postgres({
                ...PG,
                database: DEST_DB,
                username: PG.user,
                max: 1,
                onnotice: () => {},
              });
              const [size] = await dest.unsafe(
                `select pg_total_relation_size('${qualified}')::bigint as bytes`,
              );
              outputMb = Number(size?.bytes) / 1e6;
              await dest.unsafe(`drop schema "${schema}" cascade`);
              await dest.end();
            } else {
              const runDir = join(storage, "staging", "Bench", startTime);
              const file = join(runDir, body.payload.data_retrieved[0].file_path);
              if (run === RUNS) {
                const actual = format === "csv"
                  ? await csvDigest(file)
                  : await duckdbDigest(file, schemaName);
                digestOk = digestMatches(source, format, actual, expected);
              }
              outputMb = (await Deno.stat(file)).size / 1e6;
              await rm(runDir, { recursive: true, force: true });
            }
            if (run === 0) { // warm-up
              fakeRunCpu.length = 0;
              fakeReadCpu.length = 0;
              clientReadCpu.length = 0;
              serviceCpu.length = 0;
              continue;
            }
            limits.push(limit);
            times.push(seconds);
            peak = Math.max(peak, await peakRssMb(service.pid));
          }
          const cell: Cell = {
            source,
            format,
            seconds: median(times),
            limit: median(limits),
            peakRssMb: peak,
            outputMb,
            digestOk,
            ...(served !== undefined
              ? {
                fakeCpu: {
                  run: median(fakeRunCpu),
                  read: median(fakeReadCpu),
                  service: median(serviceCpu),
                  client: median(clientReadCpu),
                },
              }
              : {}),
          };
          cells.push(cell);
          say(
            `${source} → ${format}: ${cell.seconds.toFixed(2)} s (limit ${
              cell.limit.toFixed(2)
            } s, ratio ${(cell.seconds / cell.limit).toFixed(2)}), peak RSS ${
              peak.toFixed(0)
            } MB, digest ${digestOk ? "ok" : "MISMATCH"}${
              cell.fakeCpu === undefined
                ? ""
                : `; CPU per run: publish service ${cell.fakeCpu.service.toFixed(2)} s, fake ` +
                  `${source} ${cell.fakeCpu.run.toFixed(2)} s (${
                    cell.fakeCpu.read.toFixed(2)
                  } s during the raw read, whose client used ${cell.fakeCpu.client.toFixed(2)} s)`
            }`,
          );
        }
      }
    } finally {
      await service.stop();
    }

    const cpu = cpus()[0]?.model ?? "unknown";
    const report = [
      `Machine: ${cpus().length} × ${cpu}, ${
        (totalmem() / 2 ** 30).toFixed(0)
      } GiB RAM; Deno ${Deno.version.deno}; ` +
      `the databases run on the same machine. W table, ${
        ROWS.toLocaleString("en")
      } rows; median of ${RUNS} runs after a warm-up.`,
      "",
      "| source → format | time (s) | rows/s | output (MB) | limit (s) | ratio to limit | peak RSS (MB) | digest |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
      ...cells.map((c) =>
        `| ${c.source} → ${c.format} | ${c.seconds.toFixed(2)} | ${
          Math.round(ROWS / c.seconds).toLocaleString("en")
        } | ` +
        `${c.outputMb.toFixed(0)} | ${c.limit.toFixed(2)} | ${(c.seconds / c.limit).toFixed(2)} | ${
          c.peakRssMb.toFixed(0)
        } | ${c.digestOk ? "matches source" : "MISMATCH"} |`
      ),
      ...(["SQL Server", "Databricks"] as const).flatMap((source) => {
        const served = cells.filter((c) => c.source === source && c.fakeCpu !== undefined);
        return served.length === 0 ? [] : [
          "",
          `${source} rows, CPU seconds per run (median): the publish service / the fake ` +
          `${source === "SQL Server" ? "TDS server" : "workspace"} (a child process generating W ` +
          "as it is read) / the fake during the raw read / the raw read's client (the driver " +
          "alone): " +
          served.map((c) =>
            `${c.format} ${c.fakeCpu!.service.toFixed(2)} / ${c.fakeCpu!.run.toFixed(2)} / ${
              c.fakeCpu!.read.toFixed(2)
            } / ${c.fakeCpu!.client.toFixed(2)}`
          ).join(", ") + ".",
        ];
      }),
    ].join("\n");
    say("\n" + report);
    const target = args.get("write");
    if (target !== undefined && target !== "") {
      const previous = await readFile(target, "utf8").catch(() => "");
      const marker = "<!-- bench results -->";
      const head = previous.includes(marker)
        ? previous.slice(0, previous.indexOf(marker))
        : previous;
      await writeFile(target, `${head}${marker}\n${report}\n`);
    }
  } finally {
    await fake?.stop();
    await databricks?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
