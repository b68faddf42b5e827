/**
 * Gates for integration tests that need the local PostgreSQL or MariaDB. On a laptop without them the tests
 * are ignored; under `CI=true` they always run, so a missing service is a failure, never a skip.
 *
 * @module
 */
import type { MysqlTlsOptions } from "../../adapters/mysql/mysql_tls.ts";
import type { PostgresTlsOptions } from "../../adapters/postgres/postgres_tls.ts";
import type { AllowedSource } from "../../domain/allowed_sources.ts";

/** Connection facts for the PostgreSQL every project machine runs (trust auth). */
export const POSTGRES = {
  host: Deno.env.get("TEST_POSTGRES_HOST") ?? "127.0.0.1",
  port: Number(Deno.env.get("TEST_POSTGRES_PORT") ?? 5432),
  user: Deno.env.get("TEST_POSTGRES_USER") ?? "postgres",
  database: Deno.env.get("TEST_POSTGRES_DATABASE") ?? "postgres",
} as const;

/** Connection facts for the MariaDB every project machine runs (root, empty password). */
export const MYSQL = {
  host: Deno.env.get("TEST_MYSQL_HOST") ?? "127.0.0.1",
  port: Number(Deno.env.get("TEST_MYSQL_PORT") ?? 3306),
  user: Deno.env.get("TEST_MYSQL_USER") ?? "root",
  password: Deno.env.get("TEST_MYSQL_PASSWORD") ?? "",
} as const;

/**
 * The local PostgreSQL and MariaDB have no TLS, and every connection defaults to verified TLS, so tests
 * opt out explicitly: adapters with these settings, services with {@link LOCAL_DATABASES_WITHOUT_TLS}.
 */
export const LOCAL_POSTGRES_TLS: PostgresTlsOptions = { mode: "disable" };

/** See {@link LOCAL_POSTGRES_TLS}. */
export const LOCAL_MYSQL_TLS: MysqlTlsOptions = { mode: "DISABLED" };

/** The environment that lets a service reach the local databases without TLS. */
export const LOCAL_DATABASES_WITHOUT_TLS: Readonly<Record<string, string>> = {
  SOURCE_POSTGRES_SSLMODE: "disable",
  SOURCE_MYSQL_SSLMODE: "DISABLED",
  DESTINATION_POSTGRESQL_SSLMODE: "disable",
};

const IN_CI = Deno.env.get("CI") === "true";

async function reachable(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** True when PostgreSQL tests must be ignored: the server is absent and this is not CI. */
export const ignorePostgres = !IN_CI && !(await reachable(POSTGRES.host, POSTGRES.port));

/** True when MariaDB tests must be ignored: the server is absent and this is not CI. */
export const ignoreMysql = !IN_CI && !(await reachable(MYSQL.host, MYSQL.port));

/** A random lower-case name for a test schema, database or user, unique per run. */
export function randomName(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** A SQL login of an allow-list entry: the secret names of the user name and of the password. */
export interface AllowedLogin {
  readonly username: string;
  readonly password: string;
}

/**
 * The allow-list entry for the local PostgreSQL's test database, read with the secrets `pguser` (user
 * name) and `pgpassword` (password), and any further logins.
 */
export function allowedLocalPostgres(...moreLogins: AllowedLogin[]): AllowedSource {
  return {
    type: "postgresql",
    host: POSTGRES.host,
    port: POSTGRES.port,
    database: POSTGRES.database,
    credentials: [{ username: "pguser", password: "pgpassword" }, ...moreLogins],
  };
}

/**
 * The allow-list entry for one database of the local MariaDB, read with `myuser` (user name) and
 * `mypassword` (password), and any further logins.
 */
export function allowedLocalMysql(database: string, ...moreLogins: AllowedLogin[]): AllowedSource {
  return {
    type: "mysql",
    host: MYSQL.host,
    port: MYSQL.port,
    database,
    credentials: [{ username: "myuser", password: "mypassword" }, ...moreLogins],
  };
}
