/**
 * What the PostgreSQL stores (runs, releases) share besides their migrations: opening a pool and
 * migrating it, the error rule of a store call, reading a row by id and the keyset-paged list, newest
 * first.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";
import { AppError, type AppErrorOptions } from "../../domain/errors.ts";
import type { KeysetPosition } from "../../domain/keyset_cursor.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { isZodError, messageOf } from "../shared/errors.ts";
import {
  postgresClientOptions,
  type PostgresConnectionOptions,
} from "./postgres_source_database.ts";

/** Where a PostgreSQL store lives and how many connections its pool holds. */
export interface PostgresStorePoolOptions extends PostgresConnectionOptions {
  /** Connections in the pool. Default 4. */
  readonly maxConnections?: number;
}

/** A store that migrates its schema and closes its pool. */
export interface MigratingPostgresStore {
  migrate(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects a pool as `options` say, hands it to `create` and migrates the store it returns, closing it
 * when the migrations fail.
 */
export async function openPostgresStore<S extends MigratingPostgresStore>(
  options: PostgresStorePoolOptions,
  create: (sql: Sql) => S,
): Promise<S> {
  const sql = postgres({ ...postgresClientOptions(options), max: options.maxConnections ?? 4 });
  const store = create(sql);
  try {
    await store.migrate();
    return store;
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** What one store call needs to know about its store. */
export interface PostgresStoreCall {
  readonly sql: Sql;
  /** Set once by the store's `close`; a closed store refuses calls. */
  closed: boolean;
  readonly secrets: readonly string[];
  /** The store's own "unavailable" error. */
  readonly unavailable: (options: AppErrorOptions) => AppError;
}

/**
 * A new store's call state on the pool `sql`: open, hiding the user name and password of `options` from
 * log details, failing with `unavailable`.
 */
export function newPostgresStoreCall(
  sql: Sql,
  options: PostgresConnectionOptions,
  unavailable: (options: AppErrorOptions) => AppError,
): PostgresStoreCall {
  return {
    sql,
    closed: false,
    secrets: [options.username, options.password].filter((s) => s !== ""),
    unavailable,
  };
}

/**
 * Runs `body` on the store's pool. The store's own errors (`AppError`) and invalid input (zod) pass
 * through; anything else becomes the store's unavailable error, its `logDetail` `Cannot ${what}: ` and the
 * driver's message without the secrets; a closed store refuses with that error too.
 */
export async function callPostgresStore<T>(
  store: PostgresStoreCall,
  what: string,
  body: (sql: Sql) => Promise<T>,
): Promise<T> {
  if (store.closed) throw store.unavailable({ logDetail: "the store is closed" });
  try {
    return await body(store.sql);
  } catch (e) {
    if (e instanceof AppError || isZodError(e)) throw e;
    throw store.unavailable({
      logDetail: `Cannot ${what}: ${redactSecrets(messageOf(e), store.secrets)}`,
      cause: e,
    });
  }
}

/** The row `id` of `table` (quoted), its `body` read by `parse`, or undefined when there is none. */
export async function selectPostgresById<T>(
  sql: Sql,
  table: string,
  id: string,
  parse: (body: unknown) => T,
): Promise<T | undefined> {
  const [row] = await sql.unsafe(`select body from ${table} where id = $1`, [id]);
  return row === undefined ? undefined : parse(row.body);
}

/** One page of a keyset-paged list, newest first; `after` is the decoded cursor of the previous page. */
export interface PostgresNewestQuery {
  readonly project?: string | undefined;
  readonly state?: string | undefined;
  readonly limit: number;
  readonly after?: KeysetPosition | undefined;
}

/**
 * The page of `table` (quoted; columns `project_name`, `state`, `created_at`, `id`, `body`) that `query`
 * asks for, newest first (`created_at`, then `id`, descending), each body read by `parse`, with the
 * cursor of the next page (`encodeCursor` of the last item) when there are more rows, else null.
 */
export async function selectPostgresNewestPage<T>(
  sql: Sql,
  table: string,
  query: PostgresNewestQuery,
  parse: (body: unknown) => T,
  encodeCursor: (last: T) => string,
): Promise<{ readonly items: T[]; readonly nextCursor: string | null }> {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const param = (value: string | number) => `$${params.push(value)}`;
  if (query.project !== undefined) where.push(`project_name = ${param(query.project)}`);
  if (query.state !== undefined) where.push(`state = ${param(query.state)}`);
  if (query.after !== undefined) {
    where.push(`(created_at, id) < (${param(query.after.created_at)}, ${param(query.after.id)})`);
  }
  const rows = await sql.unsafe(
    `select body from ${table} ${where.length === 0 ? "" : `where ${where.join(" and ")}`}
     order by created_at desc, id desc limit ${param(query.limit + 1)}`,
    params,
  );
  const items = rows.slice(0, query.limit).map((row) => parse(row.body));
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last) : null,
  };
}
