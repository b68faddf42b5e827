/**
 * The limit commands and the W table against the local PostgreSQL and MariaDB, on a small W table in
 * a schema of its own: each limit's output holds exactly the source's rows (by the digest).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { ignoreMysql, ignorePostgres, randomName } from "../../tests/support/services.ts";
import { DEST_DB, ensureTables, MY, postgresAdmin } from "./databases.ts";
import { csvDigest, duckdbDigest, postgresDigest } from "./digest.ts";
import {
  duckdbCopyLimit,
  duckdbLimit,
  mariadbCsvCommand,
  mariadbCsvLimit,
  pgCsvCommand,
  pgCsvLimit,
  pgLoadLimit,
  pgPipeLimit,
} from "./limits.ts";

const ROWS = 200;

Deno.test("pgCsvCommand() and mariadbCsvCommand() select the W columns of the schema", () => {
  assert.equal(
    pgCsvCommand("/tmp/w.csv", "s1"),
    `psql -h 127.0.0.1 -U postgres -d postgres -q -c "set timezone='UTC'" -c "\\copy (select ` +
      "id, i, s, amount, price, ratio, flag, created_at, d, code, txt, maybe, u from s1.wide) " +
      `to '/tmp/w.csv' with (format csv, header)"`,
  );
  assert.equal(
    mariadbCsvCommand("/tmp/w.tsv", "s1"),
    "mariadb -h 127.0.0.1 -P 3306 -u root --quick -B -N -e 'select id, i, s, amount, price, " +
      "ratio, flag, created_at, d, code, txt, maybe, u from s1.wide' > '/tmp/w.tsv'",
  );
});

Deno.test({
  name: "the limit commands copy exactly the W table's rows (PostgreSQL, MariaDB, DuckDB)",
  ignore: ignorePostgres || ignoreMysql,
  fn: async () => {
    const schema = randomName("cr8_bench");
    const table = randomName("bench_limit");
    const work = await mkdtemp(join(tmpdir(), "cr8tor-bench-limits-"));
    const admin = postgresAdmin();
    try {
      await ensureTables(work, ROWS, schema);
      const [built] = await admin`select c.oid::int8::text as oid from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = ${schema} and c.relname = 'wide'`;
      // A table of the right size is kept.
      await ensureTables(work, ROWS, schema);
      const [kept] = await admin`select c.oid::int8::text as oid from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = ${schema} and c.relname = 'wide'`;
      assert.equal(kept?.oid, built?.oid);
      const expected = await postgresDigest(undefined, `${schema}.wide`);
      assert.equal(expected.rows, ROWS);

      const csv = join(work, "limit.csv");
      assert.ok(await pgCsvLimit(csv, schema) >= 0);
      assert.deepEqual(await csvDigest(csv), expected);

      assert.ok(await duckdbCopyLimit(csv, join(work, "copy.duckdb")) >= 0);
      assert.deepEqual(await duckdbDigest(join(work, "copy.duckdb"), "main"), expected);
      assert.ok(await duckdbLimit(join(work, "again.csv"), join(work, "two.duckdb"), schema) >= 0);
      assert.deepEqual(await duckdbDigest(join(work, "two.duckdb"), "main"), expected);

      const [hasDest] = await admin`select 1 as ok from pg_database where datname = ${DEST_DB}`;
      if (hasDest === undefined) await admin.unsafe(`create database ${DEST_DB}`);
      assert.ok(await pgLoadLimit(csv, table) >= 0);
      assert.deepEqual(await postgresDigest(DEST_DB, table), expected);
      assert.ok(await pgPipeLimit(schema, table) >= 0);
      assert.deepEqual(await postgresDigest(DEST_DB, table), expected);

      const tsv = join(work, "limit.tsv");
      assert.ok(await mariadbCsvLimit(tsv, schema) >= 0);
      const lines = (await readFile(tsv, "utf8")).trimEnd().split("\n");
      assert.equal(lines.length, ROWS);
      assert.equal(lines.filter((l) => l.split("\t").length === 13).length, ROWS);
    } finally {
      const dest = postgresAdmin(DEST_DB);
      await dest.unsafe(`drop table if exists ${table}`).catch(() => {});
      await dest.end();
      await admin.unsafe(`drop schema if exists ${schema} cascade`);
      await admin.end();
      const my = await mysql.createConnection(MY);
      await my.query(`drop database if exists ${schema}`);
      await my.end();
      await rm(work, { recursive: true, force: true });
    }
  },
});
