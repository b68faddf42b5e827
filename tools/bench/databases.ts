/**
 * The local servers the bench reads from and loads into, and the 13-column W table of
 * `sources-and-benchmark.md` §F.3 it builds in them: generated in PostgreSQL, copied into MariaDB.
 * Needs `psql` on PATH, PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and MariaDB on
 * 127.0.0.1:3306 (root, empty password).
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import mysql from "mysql2/promise";
import postgres from "postgres";
import { say, sh } from "./processes.ts";

/** The local PostgreSQL server, as the bench's superuser reaches it. */
export const PG = { host: "127.0.0.1", port: 5432, user: "postgres", database: "postgres" };
/** The local MariaDB server, as root. */
export const MY = { host: "127.0.0.1", port: 3306, user: "root", password: "" };
/**
 * A plain lower-case SQL name from the environment variable `name`, or `fallback` when it is unset: lets
 * two benches on one machine use their own W table and destination database.
 *
 * @throws {Error} when the variable holds anything but `[a-z_][a-z0-9_]*`.
 */
function benchName(name: string, fallback: string): string {
  const value = Deno.env.get(name) ?? fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
    throw new Error(`${name} must be a lower-case SQL name ([a-z_][a-z0-9_]*)`);
  }
  return value;
}

/** The schema (MariaDB: database) the W table is built in (`CR8TOR_BENCH_SCHEMA`). */
export const BENCH_SCHEMA = benchName("CR8TOR_BENCH_SCHEMA", "cr8tor_bench");
/**
 * The read-only login the service reads W with, in PostgreSQL, MariaDB and the fake SQL Server. Each bench
 * sets its password afresh, so it is named after {@link BENCH_SCHEMA}: two benches with their own schemas
 * do not change each other's password mid-run (`cr8tor_bench_reader` by default).
 */
export const BENCH_READER = `${BENCH_SCHEMA}_reader`;
/** The W table's columns, in order, as the limit commands select them. */
export const W_COLUMNS_LIST =
  "id, i, s, amount, price, ratio, flag, created_at, d, code, txt, maybe, u";
/**
 * The destination database the bench loads into, service and limit commands alike
 * (`CR8TOR_BENCH_DEST_DB`).
 */
export const DEST_DB = benchName("CR8TOR_BENCH_DEST_DB", "cr8tor_bench_dest");
/** The W table's typed columns in a PostgreSQL destination, with its primary key. */
export const PG_W_TYPED = `(id bigint primary key, i integer, s smallint, amount numeric(18,2),
  price numeric(38,10), ratio double precision, flag boolean, created_at timestamptz, d date,
  code varchar(20), txt text, maybe text, u uuid)`;

/** A postgres.js client for the bench's superuser, one connection, notices silenced. */
export function postgresAdmin(database = PG.database): postgres.Sql {
  return postgres({ ...PG, database, username: PG.user, max: 1, onnotice: () => {} });
}

/** The SQL that creates `<schema>.wide` in PostgreSQL and fills it with rows 1..`rows`. */
export function postgresWSql(schema: string, rows: number): string {
  return `
  create table ${schema}.wide (id bigint primary key, i int, s smallint, amount numeric(18,2),
    price numeric(38,10), ratio double precision, flag boolean, created_at timestamptz, d date,
    code varchar(20), txt text, maybe text, u uuid);
  insert into ${schema}.wide select g, (g*7)%100000, (g%30000)::smallint, round((g*1.37)::numeric % 1000000, 2),
    (g::numeric * 3.1415926535) / 7, g/3.0, g%2=0, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
    date '2000-01-01' + (g % 9000), 'C' || lpad((g%99999)::text, 8, '0'), md5(g::text) || ' ' || (g%1000)::text,
    case when g%2=0 then null else 'v' || g end, md5(g::text)::uuid
  from generate_series(1, ${rows}) g;`;
}

/** The DDL of `<schema>.wide` in MariaDB. */
export function mysqlWDdl(schema: string): string {
  return `create table ${schema}.wide (id bigint primary key, i int, s smallint, amount decimal(18,2),
  price decimal(38,10), ratio double, flag boolean, created_at timestamp(6) null, d date, code varchar(20),
  txt text, maybe text, u char(36))`;
}

/**
 * Makes sure `<schema>.wide` holds `rows` rows in PostgreSQL and in MariaDB, building it afresh
 * (and analysed) where the count differs; MariaDB gets PostgreSQL's rows through a CSV file in `workDir`.
 */
export async function ensureTables(
  workDir: string,
  rows: number,
  schema: string = BENCH_SCHEMA,
): Promise<void> {
  const sql = postgresAdmin();
  try {
    const [existing] = await sql`select count(*)::int as n from information_schema.tables
      where table_schema = ${schema} and table_name = 'wide'`;
    const count = existing?.n === 1
      ? (await sql.unsafe(`select count(*)::int as n from ${schema}.wide`))[0]?.n
      : -1;
    if (count !== rows) {
      say(`Building the W table with ${rows} rows in PostgreSQL...`);
      await sql.unsafe(`drop schema if exists ${schema} cascade; create schema ${schema}`);
      await sql.unsafe(postgresWSql(schema, rows));
      await sql.unsafe(`analyze ${schema}.wide`);
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
    await conn.query(`create database if not exists ${schema}`);
    const [found] = await conn.query(
      `select count(*) as n from information_schema.tables where table_schema = ? and table_name = 'wide'`,
      [schema],
    ) as unknown as [{ n: number }[]];
    const present = Number(found[0]?.n) === 1;
    const [counted] = present
      ? await conn.query(`select count(*) as n from ${schema}.wide`) as unknown as [{ n: number }[]]
      : [[{ n: -1 }]];
    if (Number(counted[0]?.n) !== rows) {
      say(`Copying the W table into MariaDB...`);
      const csv = join(workDir, "w.csv");
      await sh(
        `psql -h ${PG.host} -U ${PG.user} -d ${PG.database} -q -c "\\copy (select id, i, s, amount, price, ratio, flag::int, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), d, code, txt, coalesce(maybe, '\\N'), u from ${schema}.wide) to '${csv}' with (format csv)"`,
      );
      await conn.query(`drop table if exists ${schema}.wide; ${mysqlWDdl(schema)}`);
      await conn.query(`set time_zone = '+00:00'`);
      await conn.query(
        `load data local infile ? into table ${schema}.wide fields terminated by ',' optionally enclosed by '"'
         lines terminated by '\\n' (id, i, s, amount, price, ratio, flag, created_at, d, code, txt, maybe, u)`,
        [csv],
      );
      await rm(csv);
    }
  } finally {
    await conn.end();
  }
}
