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
 * With PostgreSQL and postgresql among the cells, it also pages through the destination's copy of W via
 * the read API (`POST /data-publish/read/rows`, limit 10,000; issue 19) against `psql \copy (select ...)
 * to stdout` of the same table (`bench/read_api.ts`).
 *
 * With PostgreSQL and CSV among the cells, it also measures the cost of run bookkeeping (issue 13) in its
 * own process: the same PostgreSQL → CSV package through the plain use case and through the runner with
 * the default SQLite run store and progress on (`bench/run_overhead.ts`), reported as a percentage.
 *
 * Needs `psql` and `mariadb` on PATH, PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and MariaDB on
 * 127.0.0.1:3306 (root, empty password).
 *
 * This file runs the cells; its parts are in `tools/bench/`: `options.ts` (the command line),
 * `databases.ts` (the servers and the W table), `limits.ts` (the limit commands), `raw_reads.ts` (the
 * fake-served sources and their read limits), `digest.ts` (the correctness digest), `run_overhead.ts` (run bookkeeping), `report.ts` (the
 * cells' lines and the Markdown table) and `processes.ts` (shell, CPU and memory of a process).
 *
 * @module
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { LocalFilestore } from "../adapters/filesystem/local_filestore.ts";
import { connectPostgres } from "../adapters/postgres/postgres_source_database.ts";
import { stagingManifestKey } from "../domain/staging_manifest.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import {
  FAKE_W_CATALOG,
  FAKE_W_HTTP_PATH,
  FAKE_W_SCHEMA as DATABRICKS_W_SCHEMA,
} from "../tests/support/fake_databricks_w_names.ts";
import { FAKE_W_SCHEMA } from "../tests/support/fake_tds_w_process.ts";
import { startService } from "../tests/support/processes.ts";
import {
  BENCH_READER,
  BENCH_SCHEMA as SCHEMA,
  DEST_DB,
  ensureTables,
  MY,
  PG,
  postgresAdmin,
} from "./bench/databases.ts";
import {
  csvDigest,
  type Digest,
  digestMismatch,
  duckdbDigest,
  postgresDigest,
} from "./bench/digest.ts";
import {
  duckdbCopyLimit,
  duckdbLimit,
  mariadbCsvLimit,
  pgCsvLimit,
  pgLoadLimit,
  pgPipeLimit,
} from "./bench/limits.ts";
import { parseBenchOptions } from "./bench/options.ts";
import {
  measureReadApi,
  readApiReport,
  type ReadApiResult,
  readApiSummary,
} from "./bench/read_api.ts";
import {
  measureRunOverhead,
  overheadReport,
  overheadSummary,
  type RunOverhead,
} from "./bench/run_overhead.ts";
import { cpuSeconds, peakRssMb, resetPeakRss, say } from "./bench/processes.ts";
import {
  databricksReadLimit,
  type FakeServer,
  mssqlReadLimit,
  startFakeDatabricksWorkspace,
  startFakeSqlServer,
} from "./bench/raw_reads.ts";
import {
  type Cell,
  cellSummary,
  describeMachine,
  median,
  renderReport,
  withResults,
} from "./bench/report.ts";

const PG_ADDRESS = { host: PG.host, port: PG.port };
const MY_ADDRESS = { host: MY.host, port: MY.port };
/** The Databricks service principal the fake workspace gives tokens to. */
const DATABRICKS_CLIENT_ID = "cr8tor-bench-spn";
/** The secrets the benchmark's read-only logins are stored under, in their allow-list roles. */
const BENCH_LOGINS = [{ username: "benchuser", password: "benchpassword" }];

/** Whether a cell's digest matches the source's; says so when it does not. */
function digestMatches(cell: string, actual: Digest, expected: Digest): boolean {
  const mismatch = digestMismatch(cell, actual, expected);
  if (mismatch !== undefined) say(mismatch);
  return mismatch === undefined;
}

if (import.meta.main) {
  const options = parseBenchOptions(Deno.args);
  const { rows: ROWS, runs: RUNS, sources: SOURCES, formats: FORMATS } = options;
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
      benchuser: BENCH_READER,
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
    await ensureTables(work, ROWS);
    // A read-only login for both sources.
    const admin = postgresAdmin();
    await admin.unsafe(
      `do $$ begin if not exists (select from pg_roles where rolname = '${BENCH_READER}')
      then create role ${BENCH_READER} login; end if; end $$`,
    );
    await admin.unsafe(`alter role ${BENCH_READER} password '${readerPassword}'`);
    await admin.unsafe(
      `grant usage on schema ${SCHEMA} to ${BENCH_READER}; grant select on all tables in schema ${SCHEMA} to ${BENCH_READER}`,
    );
    await admin.end();
    const my = await mysql.createConnection(MY);
    await my.query(`create user if not exists '${BENCH_READER}'@'%' identified by ?`, [
      readerPassword,
    ]);
    await my.query(`alter user '${BENCH_READER}'@'%' identified by ?`, [readerPassword]);
    await my.query(`grant select on ${SCHEMA}.* to '${BENCH_READER}'@'%'`);
    await my.end();

    // The PostgreSQL destination: its own database, loaded by the superuser (trust auth).
    const server = postgresAdmin();
    const [hasDest] = await server`select 1 as ok from pg_database where datname = ${DEST_DB}`;
    if (hasDest === undefined) await server.unsafe(`create database ${DEST_DB}`);
    await server.unsafe(
      `do $$ begin if not exists (select from pg_roles where rolname = 'cr8tor_bench_opal_ro')
      then create role cr8tor_bench_opal_ro login; end if; end $$`,
    );
    await server.end();

    // SQL Server: the fake TDS server, serving W to the same read-only login.
    fake = SOURCES.includes("SQL Server")
      ? await startFakeSqlServer(ROWS, BENCH_READER, readerPassword)
      : undefined;
    const MS_ADDRESS = { host: "127.0.0.1", port: fake?.port ?? 1433 };
    // Databricks: the fake workspace, its test CA trusted by the service through DENO_CERT.
    databricks = SOURCES.includes("Databricks")
      ? await startFakeDatabricksWorkspace(ROWS, DATABRICKS_CLIENT_ID, databricksSecret)
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
    const disclosureChecks = Deno.env.get("DISCLOSURE_CHECKS");
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
      ...(options.serviceBatchRows === undefined
        ? {}
        : { SOURCE_BATCH_ROWS: options.serviceBatchRows }),
      ...(databricks === undefined ? {} : { DENO_CERT: caFile }),
      // The service's default DISCLOSURE_CHECKS (`requested`): the bench's packages do not ask, so they
      // get no pre-checks, as the CLI's without a gate before publish. `DISCLOSURE_CHECKS=on deno task
      // bench ...` passes the setting through, to measure packaging with the pre-checks.
      ...(disclosureChecks === undefined ? {} : { DISCLOSURE_CHECKS: disclosureChecks }),
    });
    const cells: Cell[] = [];
    let readApi: ReadApiResult | undefined;
    try {
      for (const source of SOURCES) {
        for (const format of FORMATS) {
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
                ? await mssqlReadLimit(
                  served,
                  { user: BENCH_READER, password: readerPassword },
                  ROWS,
                )
                : await databricksReadLimit(
                  served,
                  { clientId: DATABRICKS_CLIENT_ID, clientSecret: databricksSecret },
                  { rows: ROWS, batchRows: options.batchRows },
                );
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
                  `${source} ${format}`,
                  await postgresDigest(DEST_DB, qualified),
                  expected,
                );
              }
              const dest = postgresAdmin(DEST_DB);
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
                digestOk = digestMatches(`${source} ${format}`, actual, expected);
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
          say(cellSummary(cell));
        }
      }
      // The read API (issue 19): paging through the destination's copy of W via the service.
      if (SOURCES.includes("PostgreSQL") && FORMATS.includes("postgresql")) {
        readApi = await measureReadApi({ url: service.url, key, pid: service.pid }, {
          rows: ROWS,
          runs: RUNS,
          source: {
            type: "postgresql",
            host_url: PG.host,
            port: PG.port,
            database: PG.database,
            credentials: { username_key: "benchuser", password_key: "benchpassword" },
          },
          schemaName: SCHEMA,
          gateway: { work, secrets, env: { ALLOWED_SOURCES_FILE: allowList } },
        });
        say(readApiSummary(readApi));
      }
    } finally {
      await service.stop();
    }

    // Run bookkeeping: PostgreSQL → CSV through the runner against the plain use case, in this process.
    let overhead: RunOverhead | undefined;
    if (SOURCES.includes("PostgreSQL") && FORMATS.includes("csv")) {
      overhead = await measureRunOverhead({
        filestore: new LocalFilestore(storage, {
          manifestKey: await stagingManifestKey(crypto.randomUUID()),
        }),
        storage,
        stateDir: join(work, "state"),
        openSource: () =>
          connectPostgres({
            ...PG_ADDRESS,
            database: PG.database,
            username: BENCH_READER,
            password: readerPassword,
            tls: { mode: "disable" },
            connectTimeoutMs: 10_000,
            statementTimeoutMs: 3_600_000,
          }),
        source: {
          type: "postgresql",
          host_url: PG.host,
          port: PG.port,
          database: PG.database,
          credentials: { username_key: "benchuser", password_key: "benchpassword" },
        },
        schemaName: SCHEMA,
        table: "wide",
        limits: {
          concurrency: 2,
          batchRows: options.batchRows,
        },
      }, RUNS);
      say(overheadSummary(overhead));
    }

    const report = renderReport(cells, { rows: ROWS, runs: RUNS, machine: describeMachine() }) +
      (overhead === undefined ? "" : `\n\n${overheadReport(overhead)}`) +
      (readApi === undefined ? "" : `\n\n${readApiReport(readApi)}`);
    say("\n" + report);
    if (options.write !== undefined) {
      const previous = await readFile(options.write, "utf8").catch(() => "");
      await writeFile(options.write, withResults(previous, report));
    }
  } finally {
    await fake?.stop();
    await databricks?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
