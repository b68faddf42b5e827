/**
 * A PostgreSQL source database, read through postgres.js. The catalogue comes from `pg_catalog` with
 * parameterised queries only: one round trip for the schema, one for its tables and views, one for
 * their columns and one for their primary keys.
 *
 * @module
 */
import postgres, { type Options, type Sql } from "postgres";
import type { CatalogColumn, CatalogTable, SchemaCatalog } from "../../domain/catalog.ts";
import {
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
  type SqlConnectionOptions,
  type SqlSourceConnector,
} from "../../ports/source_database.ts";

/** The `application_name` every connection reports, so DBAs can tell our sessions apart. */
export const POSTGRES_APPLICATION_NAME = "cr8tor-publisher";

/** A source database backed by one postgres.js client. */
export class PostgresSourceDatabase implements SourceDatabase {
  readonly #sql: Sql;
  #closed = false;

  /** @param sql a postgres.js client; this object owns it from now on and ends it in {@link close}. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /**
   * Runs `select 1`.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#sql`select 1 as ok`;
    } catch (e) {
      throw new SourceUnavailableError(`Cannot query PostgreSQL: ${messageOf(e)}`, { cause: e });
    }
  }

  /**
   * Describes one schema from `pg_catalog`: tables, partitioned and foreign tables (kind "table"), views
   * and materialized views (kind "view").
   *
   * @throws {SchemaNotFoundError} when the schema does not exist or the user lacks USAGE on it.
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async describeSchema(
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    this.#assertOpen();
    try {
      return await this.#describe(schema, options.tables);
    } catch (e) {
      if (e instanceof SchemaNotFoundError) throw e;
      throw new SourceUnavailableError(
        `Cannot read the catalogue of schema "${schema}" from PostgreSQL: ${messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /** Ends the client, waiting up to five seconds for running queries; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sql.end({ timeout: 5 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #describe(
    schema: string,
    only: readonly string[] | undefined,
  ): Promise<SchemaCatalog> {
    const sql = this.#sql;
    const [namespace] = await sql<{ oid: string; description: string | null }[]>`
      select n.oid::int8::text as oid, pg_catalog.obj_description(n.oid, 'pg_namespace') as description
        from pg_catalog.pg_namespace n
       where n.nspname = ${schema}
         and pg_catalog.has_schema_privilege(n.oid, 'USAGE')`;
    if (namespace === undefined) throw new SchemaNotFoundError(schema);
    const empty = { name: schema, description: namespace.description, tables: [] };
    if (only !== undefined && only.length === 0) return empty;

    // The relations to describe, as a condition on `pg_class c`; built afresh for each query.
    const names = only === undefined ? undefined : [...only];
    const relations = () =>
      sql`c.relnamespace = ${namespace.oid}::oid
          and c.relkind in ('r', 'p', 'f', 'v', 'm')
          ${names === undefined ? sql`` : sql`and c.relname = any(${sql.array(names)}::text[])`}`;

    const tables = await sql<
      { oid: string; name: string; relkind: string; description: string | null }[]
    >`
      select c.oid::int8::text as oid, c.relname as name, c.relkind::text as relkind,
             pg_catalog.obj_description(c.oid, 'pg_class') as description
        from pg_catalog.pg_class c
       where ${relations()}`;
    if (tables.length === 0) return empty;

    const columns = await sql<
      {
        relid: string;
        name: string;
        data_type: string;
        nullable: boolean;
        description: string | null;
      }[]
    >`
      select a.attrelid::int8::text as relid, a.attname as name,
             pg_catalog.format_type(a.atttypid, a.atttypmod) as data_type,
             not a.attnotnull as nullable,
             pg_catalog.col_description(a.attrelid, a.attnum) as description
        from pg_catalog.pg_attribute a
        join pg_catalog.pg_class c on c.oid = a.attrelid
       where ${relations()}
         and a.attnum > 0
         and not a.attisdropped
       order by a.attrelid, a.attnum`;

    const keys = await sql<{ relid: string; name: string }[]>`
      select con.conrelid::int8::text as relid, a.attname as name
        from pg_catalog.pg_constraint con
        join pg_catalog.pg_class c on c.oid = con.conrelid
       cross join lateral unnest(con.conkey) with ordinality as k(attnum, position)
        join pg_catalog.pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
       where ${relations()}
         and con.contype = 'p'
       order by con.conrelid, k.position`;

    const columnsOf = groupBy(columns, (c) => c.relid);
    const keysOf = groupBy(keys, (k) => k.relid);
    const described: CatalogTable[] = tables.map((t) => ({
      name: t.name,
      kind: t.relkind === "v" || t.relkind === "m" ? "view" : "table",
      description: t.description,
      columns: (columnsOf.get(t.oid) ?? []).map((c): CatalogColumn => ({
        name: c.name,
        dataType: c.data_type,
        nullable: c.nullable,
        description: c.description,
      })),
      primaryKey: (keysOf.get(t.oid) ?? []).map((k) => k.name),
    }));
    described.sort((a, b) => compareNames(a.name, b.name));
    return { name: schema, description: namespace.description, tables: described };
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("Cannot use a closed PostgreSQL connection");
  }
}

/**
 * The postgres.js options {@link connectPostgres} uses: one connection, the connect and statement
 * timeouts, our `application_name`, TLS when the server offers it, and notices silenced.
 */
export function postgresClientOptions(options: SqlConnectionOptions): Options<never> {
  return {
    host: options.host,
    port: options.port,
    database: options.database,
    username: options.username,
    password: options.password,
    max: 1,
    ssl: "prefer",
    // postgres.js takes seconds and accepts fractions.
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: 0,
    connection: {
      statement_timeout: Math.max(0, Math.round(options.statementTimeoutMs)),
      application_name: POSTGRES_APPLICATION_NAME,
    },
    onnotice: () => {},
  };
}

/**
 * Opens a PostgreSQL source and proves it with a ping.
 *
 * @throws {SourceUnavailableError} when the server cannot be reached or refuses the login.
 */
export const connectPostgres: SqlSourceConnector = async function connectPostgres(options) {
  const sql = postgres(postgresClientOptions(options));
  try {
    await sql`select 1 as ok`;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    const detail = redact(messageOf(e), options.password);
    throw new SourceUnavailableError(
      `Cannot connect to PostgreSQL at ${options.host}:${options.port}: ${detail}`,
      { cause: e },
    );
  }
  return new PostgresSourceDatabase(sql);
};

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function redact(message: string, secret: string): string {
  return secret === "" ? message : message.replaceAll(secret, "***");
}

function groupBy<T>(rows: Iterable<T>, key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [row]);
    else group.push(row);
  }
  return groups;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
