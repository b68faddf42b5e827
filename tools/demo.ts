/**
 * `deno task demo`: a working demo on one machine. It writes demo secrets and storage under `.demo/`, loads a
 * small research dataset into the local PostgreSQL (schema `cr8tor_demo`) and MariaDB/MySQL (database
 * `cr8tor_demo`) with read-only demo users, starts the three services, and prints the `curl` command that
 * validates the dataset through the gateway the way `cr8tor validate` does.
 *
 * Admin connections: `DEMO_POSTGRES_HOST/PORT/USER/DATABASE` (default 127.0.0.1, 5432, postgres, postgres;
 * trust auth) and `DEMO_MYSQL_HOST/PORT/USER/PASSWORD` (default 127.0.0.1, 3306, root, empty). A source that
 * cannot be reached is skipped with a message.
 *
 * @module
 */
import { access, mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import mysql from "mysql2/promise";
import postgres from "postgres";
import { stdoutSink } from "../apps/_shared/log.ts";
import { runAllServices } from "../apps/start_all.ts";

const env = Deno.env.toObject();
const DEMO = resolve(".demo");
const SECRETS = join(DEMO, "secrets");
const STORAGE = join(DEMO, "storage", "lsc");
const SCHEMA = "cr8tor_demo";

const TABLES_SQL = [
  `create table ${SCHEMA}.patients (
     patient_id integer primary key, nhs_number varchar(10) not null, birth_date date, weight_kg decimal(5,1))`,
  `create table ${SCHEMA}.admissions (
     patient_id integer not null, admission_no integer not null, admitted_at timestamp not null,
     ward varchar(40), primary key (patient_id, admission_no))`,
  `insert into ${SCHEMA}.patients values
     (1, '9434765919', '1950-03-01', 72.5), (2, '9434765870', '1987-11-23', 64.0), (3, '9434765828', null, null)`,
  `insert into ${SCHEMA}.admissions values (1, 1, '2024-01-05 09:30:00', 'Cardiology'),
     (1, 2, '2024-06-11 14:00:00', 'Oncology'), (2, 1, '2024-02-29 23:59:59', null)`,
];

function randomSecret(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

async function exists(path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false);
}

async function secret(name: string, value: string, keep = true): Promise<string> {
  const path = join(SECRETS, name);
  if (keep && await exists(path)) return (await Deno.readTextFile(path)).trim();
  await writeFile(path, value + "\n", { mode: 0o600 });
  return value;
}

function say(text: string): void {
  stdoutSink(text);
}

async function loadPostgres(password: string): Promise<boolean> {
  const sql = postgres({
    host: env.DEMO_POSTGRES_HOST ?? "127.0.0.1",
    port: Number(env.DEMO_POSTGRES_PORT ?? 5432),
    username: env.DEMO_POSTGRES_USER ?? "postgres",
    database: env.DEMO_POSTGRES_DATABASE ?? "postgres",
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  try {
    await sql.unsafe(`drop schema if exists ${SCHEMA} cascade`);
    await sql.unsafe(`create schema ${SCHEMA}`);
    await sql.unsafe(`comment on schema ${SCHEMA} is 'CR8TOR demo research dataset'`);
    for (const statement of TABLES_SQL) await sql.unsafe(statement);
    await sql.unsafe(`comment on table ${SCHEMA}.patients is 'One row per patient'`);
    await sql.unsafe(`comment on column ${SCHEMA}.patients.nhs_number is 'NHS number (synthetic)'`);
    await sql.unsafe(`create view ${SCHEMA}.ward_counts as
      select ward, count(*) as admissions from ${SCHEMA}.admissions group by ward`);
    await sql.unsafe(`do $$ begin
      if not exists (select from pg_roles where rolname = 'cr8tor_demo_reader') then
        create role cr8tor_demo_reader login; end if; end $$`);
    await sql.unsafe(`alter role cr8tor_demo_reader password '${password}'`);
    await sql.unsafe(`grant usage on schema ${SCHEMA} to cr8tor_demo_reader`);
    await sql.unsafe(`grant select on all tables in schema ${SCHEMA} to cr8tor_demo_reader`);
    return true;
  } catch (e) {
    say(`PostgreSQL demo data skipped: ${(e as Error).message}`);
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function loadMysql(password: string): Promise<boolean> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({
      host: env.DEMO_MYSQL_HOST ?? "127.0.0.1",
      port: Number(env.DEMO_MYSQL_PORT ?? 3306),
      user: env.DEMO_MYSQL_USER ?? "root",
      password: env.DEMO_MYSQL_PASSWORD ?? "",
      connectTimeout: 5000,
    });
    await conn.query(`drop database if exists ${SCHEMA}`);
    await conn.query(`create database ${SCHEMA}`);
    for (const statement of TABLES_SQL) await conn.query(statement);
    await conn.query(`alter table ${SCHEMA}.patients comment = 'One row per patient'`);
    await conn.query(`create view ${SCHEMA}.ward_counts as
      select ward, count(*) as admissions from ${SCHEMA}.admissions group by ward`);
    await conn.query(`create user if not exists 'cr8tor_demo_reader'@'%' identified by ?`, [
      password,
    ]);
    await conn.query(`alter user 'cr8tor_demo_reader'@'%' identified by ?`, [password]);
    await conn.query(`grant select, show view on ${SCHEMA}.* to 'cr8tor_demo_reader'@'%'`);
    return true;
  } catch (e) {
    say(`MySQL demo data skipped: ${(e as Error).message}`);
    return false;
  } finally {
    await conn?.end();
  }
}

if (import.meta.main) {
  await mkdir(SECRETS, { recursive: true });
  await mkdir(join(STORAGE, "staging"), { recursive: true });
  await mkdir(join(STORAGE, "production"), { recursive: true });
  await secret("approvalserviceapikey", randomSecret());
  await secret("metadataserviceapikey", randomSecret());
  await secret("publishserviceapikey", randomSecret());
  const readerPassword = await secret("demosourcepassword", randomSecret(), false);
  await secret("demosourceuser", "cr8tor_demo_reader", false);
  const pg = await loadPostgres(readerPassword);
  const my = await loadMysql(readerPassword);

  const serviceEnv = {
    ...env,
    SECRETS_MNT_PATH: SECRETS,
    TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: STORAGE,
  };
  const request = (type: string, port: number) =>
    JSON.stringify({
      project_name: "DemoProject",
      project_start_time: "20250101_120000",
      destination: { name: "LSC", type: "filestore", format: "csv" },
      source: {
        type,
        host_url: "127.0.0.1",
        port,
        database: type === "postgresql" ? (env.DEMO_POSTGRES_DATABASE ?? "postgres") : SCHEMA,
        credentials: { username_key: "demosourceuser", password_key: "demosourcepassword" },
      },
      dataset: {
        name: "demo",
        schema_name: SCHEMA,
        tables: [{ name: "patients", columns: [{ name: "patient_id" }, { name: "birth_date" }] }, {
          name: "ward_counts",
        }],
      },
    });
  say("");
  say("CR8TOR demo: gateway http://localhost:8000 (docs: http://localhost:8000/docs)");
  say(`Keys and demo credentials: ${SECRETS}`);
  for (const [ok, type, port] of [[pg, "postgresql", 5432], [my, "mysql", 3306]] as const) {
    if (!ok) continue;
    say(`\nValidate the ${type} demo dataset:`);
    say(
      `curl -s -X POST http://localhost:8000/project/validate -H 'content-type: application/json' -H "x-api-key: $(cat ${
        join(SECRETS, "approvalserviceapikey")
      })" -d '${request(type, port)}'`,
    );
  }
  say("");
  await runAllServices(serviceEnv);
}
