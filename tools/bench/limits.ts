/**
 * The physical-limit commands each cell's time is divided by: the fastest way this machine has to do
 * the same work without the publish service.
 *
 * - PostgreSQL → CSV: `psql \copy (select ...) to file csv header`;
 * - MariaDB → CSV: `mariadb --quick -B -N -e 'select ...'` to a file;
 * - → DuckDB: the two steps `psql \copy` to CSV, then DuckDB `COPY FROM` into the typed table;
 * - → PostgreSQL: the COPY pipe `psql \copy ... to stdout | psql \copy ... from stdin`.
 *
 * The read limits of the fake-served sources (SQL Server, Databricks) are in `raw_reads.ts`; they add
 * {@link duckdbCopyLimit} or {@link pgLoadLimit} for a database destination.
 *
 * @module
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { BENCH_SCHEMA, DEST_DB, MY, PG, PG_W_TYPED, W_COLUMNS_LIST } from "./databases.ts";
import { sh } from "./processes.ts";

/** The table in {@link DEST_DB} the PostgreSQL limits load into, made afresh each time. */
export const LIMIT_TABLE = "bench_limit";

/** The `psql` command that writes `<schema>.wide` to a CSV file with a header, in UTC. */
export function pgCsvCommand(file: string, schema: string = BENCH_SCHEMA): string {
  return `psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "set timezone='UTC'" -c "\\copy (select ${W_COLUMNS_LIST} from ${schema}.wide) to '${file}' with (format csv, header)"`;
}

/** The `mariadb` command that writes `<schema>.wide` to a tab-separated file. */
export function mariadbCsvCommand(file: string, schema: string = BENCH_SCHEMA): string {
  return `mariadb -h ${MY.host} -P ${MY.port} -u ${MY.user} --quick -B -N -e 'select ${W_COLUMNS_LIST} from ${schema}.wide' > '${file}'`;
}

/** The PostgreSQL → CSV limit, in seconds. */
export async function pgCsvLimit(file: string, schema: string = BENCH_SCHEMA): Promise<number> {
  return await sh(pgCsvCommand(file, schema));
}

/** The MariaDB → CSV limit, in seconds. */
export async function mariadbCsvLimit(
  file: string,
  schema: string = BENCH_SCHEMA,
): Promise<number> {
  return await sh(mariadbCsvCommand(file, schema));
}

/** `psql` on the destination database, quiet. */
const DEST_PSQL = `psql -h ${PG.host} -U ${PG.user} -d ${DEST_DB} -q`;

/** Makes the limits' destination table afresh (not timed). */
async function freshLimitTable(table: string): Promise<void> {
  await sh(
    `${DEST_PSQL} -c "drop table if exists ${table}; create table ${table} ${
      PG_W_TYPED.replaceAll("\n", " ")
    }"`,
  );
}

/**
 * The PostgreSQL destination limit: the COPY pipe `psql \copy ... to stdout | psql \copy ... from stdin`
 * (CSV, from the source database into a fresh typed table with the same primary key), for either source:
 * the pipe reads PostgreSQL's copy of W, which holds the same rows as MariaDB's.
 */
export async function pgPipeLimit(
  schema: string = BENCH_SCHEMA,
  table: string = LIMIT_TABLE,
): Promise<number> {
  await freshLimitTable(table);
  return await sh(
    `set -o pipefail; psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "set timezone='UTC'" -c "\\copy (select ${W_COLUMNS_LIST} from ${schema}.wide) to stdout with (format csv)" | ${DEST_PSQL} -c "\\copy ${table} from stdin with (format csv)"`,
  );
}

/** The two-step DuckDB limit: `psql \copy` to CSV, then DuckDB `COPY FROM` into the typed table. */
export async function duckdbLimit(
  csvFile: string,
  dbFile: string,
  schema: string = BENCH_SCHEMA,
): Promise<number> {
  return await pgCsvLimit(csvFile, schema) + await duckdbCopyLimit(csvFile, dbFile);
}

/** DuckDB `COPY FROM` of a W CSV file into the typed table `wide`, with a checkpoint. */
export async function duckdbCopyLimit(csvFile: string, dbFile: string): Promise<number> {
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
export async function pgLoadLimit(csvFile: string, table: string = LIMIT_TABLE): Promise<number> {
  await freshLimitTable(table);
  return await sh(`${DEST_PSQL} -c "\\copy ${table} from '${csvFile}' with (format csv, header)"`);
}
