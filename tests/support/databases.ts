/**
 * Sandboxes in the local PostgreSQL and MariaDB for integration and end-to-end tests: a random schema or
 * database, a random login with a password and read-only grants, all dropped by `cleanup()`.
 *
 * @module
 */
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import postgres, { type Sql } from "postgres";
import type { MysqlConnectionOptions } from "../../adapters/mysql/mysql_source_database.ts";
import type { PostgresConnectionOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { LOCAL_MYSQL_TLS, LOCAL_POSTGRES_TLS, MYSQL, POSTGRES, randomName } from "./services.ts";

export function postgresAdmin(): Sql {
  return postgres({
    host: POSTGRES.host,
    port: POSTGRES.port,
    username: POSTGRES.user,
    database: POSTGRES.database,
    max: 1,
    onnotice: () => {},
  });
}

/** Double-quotes a PostgreSQL identifier (DDL cannot take parameters). */
export function quotePostgres(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Options for the local PostgreSQL, which has no TLS: they say `disable` explicitly. */
export function postgresConnectionOptions(
  overrides: Partial<PostgresConnectionOptions> = {},
): PostgresConnectionOptions {
  return {
    host: POSTGRES.host,
    port: POSTGRES.port,
    database: POSTGRES.database,
    username: POSTGRES.user,
    password: "",
    tls: LOCAL_POSTGRES_TLS,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 30_000,
    ...overrides,
  };
}

/**
 * A login role with a password and only what reading a catalogue needs, plus the schemas it may read.
 * Everything is dropped by {@link PostgresSandbox.cleanup}, even after a failure half-way through set-up.
 */
export class PostgresSandbox {
  readonly admin = postgresAdmin();
  readonly role = randomName("cr8_reader");
  readonly password = crypto.randomUUID();
  readonly #schemas: string[] = [];
  #roleCreated = false;

  async createRole(): Promise<void> {
    await this.admin.unsafe(
      `create role ${quotePostgres(this.role)} login password '${this.password}'`,
    );
    this.#roleCreated = true;
  }

  /** Creates a schema and runs `ddl`, in which `$s` stands for the quoted schema name. */
  async createSchema(schema: string, ddl: string, grant = true): Promise<void> {
    this.#schemas.push(schema);
    const s = quotePostgres(schema);
    await this.admin.unsafe(`create schema ${s}; ${ddl.replaceAll("$s", s)}`);
    if (grant) {
      await this.admin.unsafe(
        `grant usage on schema ${s} to ${quotePostgres(this.role)};
         grant select on all tables in schema ${s} to ${quotePostgres(this.role)}`,
      );
    }
  }

  /** Grants the role USAGE on the schema and SELECT on every table in it (again, after adding tables). */
  async grantSelect(schema: string): Promise<void> {
    const s = quotePostgres(schema);
    await this.admin.unsafe(
      `grant usage on schema ${s} to ${quotePostgres(this.role)};
       grant select on all tables in schema ${s} to ${quotePostgres(this.role)}`,
    );
  }

  /** Terminates every session of the role, as if the server dropped them; returns how many. */
  async terminateSessions(): Promise<number> {
    const rows = await this.admin<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity where usename = ${this.role}`;
    return rows.filter((r) => r.ok).length;
  }

  connectOptions(overrides: Partial<PostgresConnectionOptions> = {}): PostgresConnectionOptions {
    return postgresConnectionOptions({
      username: this.role,
      password: this.password,
      ...overrides,
    });
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const schema of this.#schemas) {
      await this.admin.unsafe(`drop schema if exists ${quotePostgres(schema)} cascade`).catch((e) =>
        errors.push(e)
      );
    }
    if (this.#roleCreated) {
      await this.admin.unsafe(`drop role if exists ${quotePostgres(this.role)}`).catch((e) =>
        errors.push(e)
      );
    }
    await this.admin.end({ timeout: 5 });
    if (errors.length > 0) throw new AggregateError(errors, "Cannot clean up the test sandbox");
  }
}

export function mysqlAdmin(): Promise<Connection> {
  return mysql.createConnection({
    host: MYSQL.host,
    port: MYSQL.port,
    user: MYSQL.user,
    password: MYSQL.password,
    multipleStatements: true,
  });
}

/** Back-quotes a MySQL identifier (DDL cannot take parameters). */
export function quoteMysql(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

/** Options for the local MariaDB, which has no TLS: they say `DISABLED` explicitly. */
export function mysqlConnectionOptions(
  overrides: Partial<MysqlConnectionOptions> = {},
): MysqlConnectionOptions {
  return {
    host: MYSQL.host,
    port: MYSQL.port,
    database: "",
    username: MYSQL.user,
    password: MYSQL.password,
    tls: LOCAL_MYSQL_TLS,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 30_000,
    ...overrides,
  };
}

// The hosts a test login is created for: '%' alone would lose to an anonymous ''@'localhost'.
export const MYSQL_USER_HOSTS = ["%", "127.0.0.1", "localhost"] as const;

/**
 * A login with a password and only SELECT on the databases it may read, plus those databases. Everything
 * is dropped by {@link MysqlSandbox.cleanup}, even after a failure half-way through set-up.
 */
export class MysqlSandbox {
  readonly user = randomName("cr8_reader");
  readonly password = crypto.randomUUID();
  readonly #databases: string[] = [];
  #admin: Connection | undefined;
  #userCreated = false;

  async admin(): Promise<Connection> {
    this.#admin ??= await mysqlAdmin();
    return this.#admin;
  }

  async createUser(): Promise<void> {
    const admin = await this.admin();
    this.#userCreated = true;
    for (const host of MYSQL_USER_HOSTS) {
      await admin.query(`CREATE USER ?@? IDENTIFIED BY ?`, [this.user, host, this.password]);
    }
  }

  /** Creates a database and runs `ddl`, in which `$s` stands for the quoted database name. */
  async createDatabase(database: string, ddl: string, grant = true): Promise<void> {
    const admin = await this.admin();
    this.#databases.push(database);
    const s = quoteMysql(database);
    await admin.query(`CREATE DATABASE ${s}; ${ddl.replaceAll("$s", s)}`);
    if (grant) {
      for (const host of MYSQL_USER_HOSTS) {
        await admin.query(`GRANT SELECT ON ${s}.* TO ?@?`, [this.user, host]);
      }
    }
  }

  connectOptions(overrides: Partial<MysqlConnectionOptions> = {}): MysqlConnectionOptions {
    return mysqlConnectionOptions({ username: this.user, password: this.password, ...overrides });
  }

  /** Kills every connection of the user, as if the server dropped them; returns how many. */
  async killSessions(): Promise<number> {
    const admin = await this.admin();
    const [rows] = await admin.query<RowDataPacket[]>(
      "SELECT id FROM information_schema.processlist WHERE user = ?",
      [this.user],
    );
    for (const row of rows) await admin.query(`KILL CONNECTION ${Number(row.id)}`);
    return rows.length;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    const admin = this.#admin;
    if (admin === undefined) return;
    for (const database of this.#databases) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteMysql(database)}`).catch((e) =>
        errors.push(e)
      );
    }
    if (this.#userCreated) {
      for (const host of MYSQL_USER_HOSTS) {
        await admin.query(`DROP USER IF EXISTS ?@?`, [this.user, host]).catch((e) =>
          errors.push(e)
        );
      }
    }
    await admin.end();
    if (errors.length > 0) throw new AggregateError(errors, "Cannot clean up the test sandbox");
  }
}
