/**
 * What the tests of the PostgreSQL stores (runs, releases) share: a schema of each test's own on the
 * local server, dropped afterwards, and the checks every store passes alike (migrations applied twice and
 * by several replicas at once; an unreachable server refused without the password).
 *
 * @module
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { AppError } from "../../domain/errors.ts";
import { quotePostgresIdentifier } from "../../adapters/postgres/postgres_dialect.ts";
import {
  postgresClientOptions,
  type PostgresConnectionOptions,
} from "../../adapters/postgres/postgres_source_database.ts";
import { postgresConnectionOptions } from "./databases.ts";
import { randomName } from "./services.ts";

/** Store options on the local server, in the schema `schema`. */
export function postgresStoreOptions(
  schema: string,
): PostgresConnectionOptions & { schema: string } {
  return { ...postgresConnectionOptions(), schema };
}

/**
 * Runs `body` with a maker of fresh schema names (prefixed `prefix`), then drops every schema it made,
 * whatever happened.
 */
export async function withStoreSchemas(
  prefix: string,
  body: (schema: () => string) => Promise<void>,
): Promise<void> {
  const made: string[] = [];
  try {
    await body(() => {
      const name = randomName(prefix);
      made.push(name);
      return name;
    });
  } finally {
    const sql = postgres(postgresClientOptions(postgresConnectionOptions()));
    try {
      for (const name of made) {
        await sql.unsafe(`drop schema if exists ${quotePostgresIdentifier(name)} cascade`);
      }
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
}

/** A store as the shared checks use it. */
export interface MigratedStore extends AsyncDisposable {
  migrationVersions(): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * Checks that opening a store twice on one schema keeps what the first wrote (`write`, then `check`)
 * and records each of `expected` once, and that six stores opening a new schema at once all see every
 * version.
 */
export async function assertMigrationsAppliedOnce<S extends MigratedStore>(
  open: (schema: string) => Promise<S>,
  schema: () => string,
  expected: readonly number[],
  data: { write(store: S): Promise<void>; check(store: S): Promise<void> },
): Promise<void> {
  const first = schema();
  {
    await using store = await open(first);
    await data.write(store);
  }
  {
    await using again = await open(first);
    await data.check(again);
    assert.deepEqual(await again.migrationVersions(), expected);
  }
  const fresh = schema();
  const stores = await Promise.all(Array.from({ length: 6 }, () => open(fresh)));
  try {
    for (const store of stores) assert.deepEqual(await store.migrationVersions(), expected);
  } finally {
    for (const store of stores) await store.close();
  }
}

/**
 * Checks that opening a store on an unreachable server rejects with `errorClass`, its log detail matching
 * `logDetail`, and that neither its message nor its log detail holds the password.
 */
export async function assertUnreachableStoreHidesPassword(
  open: (options: PostgresConnectionOptions & { schema: string }) => Promise<unknown>,
  schema: string,
  errorClass: abstract new (...args: never[]) => AppError,
  logDetail: RegExp,
): Promise<void> {
  const options = {
    ...postgresStoreOptions(schema),
    port: 1,
    password: "s3cret-pw",
    connectTimeoutMs: 1000,
  };
  await assert.rejects(open(options), (e: unknown) => {
    assert.ok(e instanceof errorClass);
    assert.match(e.logDetail ?? "", logDetail);
    assert.ok(!(e.logDetail ?? "").includes("s3cret-pw"));
    assert.ok(!e.message.includes("s3cret-pw"));
    return true;
  });
}
