/**
 * The data API's nonce store in the release store's PostgreSQL database and schema (`cr8tor_releases` by
 * default), in a table of its own (`hawk_nonces`, migrations in `nonce_store_migrations`), so every
 * gateway replica refuses a nonce any of them accepted. A claim is one transaction: drop expired entries,
 * insert the nonce unless it is there (the primary key decides between concurrent claims), and check the
 * cap.
 *
 * @module
 */
import type { Sql } from "postgres";
import {
  checkNonceStoreLimits,
  type NonceClaim,
  nonceExpiryMs,
  type NonceStore,
  NonceStoreFullError,
  type NonceStoreLimits,
  NonceStoreUnavailableError,
} from "../../ports/nonce_store.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import { applyPostgresMigrations, type PostgresMigration } from "./postgres_migrations.ts";
import { DEFAULT_RELEASE_STORE_SCHEMA } from "./postgres_release_store.ts";
import {
  callPostgresStore,
  newPostgresStoreCall,
  openPostgresStore,
  type PostgresStoreCall,
  type PostgresStorePoolOptions,
} from "./postgres_store.ts";

const MIGRATIONS_TABLE = "nonce_store_migrations";

/** The schema, one migration per version; `%s` is the quoted schema. Never edit one that has shipped. */
export const POSTGRES_NONCE_STORE_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    sql: `
      create table %s.hawk_nonces (
        client_id text collate "C" not null,
        nonce text collate "C" not null,
        expires_at bigint not null,
        primary key (client_id, nonce)
      );
      create index hawk_nonces_expiry on %s.hawk_nonces (expires_at);
    `,
  },
];

/** Where the store lives (the release store's database and schema) and its limits. */
export interface PostgresNonceStoreOptions extends PostgresStorePoolOptions, NonceStoreLimits {
  /** The release store's schema. Default {@link DEFAULT_RELEASE_STORE_SCHEMA}. */
  readonly schema?: string;
}

/**
 * Connects, creates the table if needed. Several replicas may open it at once.
 *
 * @throws {NonceStoreUnavailableError} when the server cannot be reached or the migration fails.
 * @throws {RangeError} when the limits are not positive integers.
 */
export function openPostgresNonceStore(
  options: PostgresNonceStoreOptions,
): Promise<PostgresNonceStore> {
  checkNonceStoreLimits({ windowSeconds: options.windowSeconds, maxEntries: options.maxEntries });
  return openPostgresStore(
    { maxConnections: 2, ...options },
    (sql) => new PostgresNonceStore(sql, options),
  );
}

/** Nonces in a PostgreSQL table. Open it with {@link openPostgresNonceStore}. */
export class PostgresNonceStore implements NonceStore {
  readonly #call: PostgresStoreCall;
  readonly #schema: string;
  readonly #table: string;
  readonly #limits: NonceStoreLimits;

  /** Takes over a client; use {@link openPostgresNonceStore}. */
  constructor(sql: Sql, options: PostgresNonceStoreOptions) {
    this.#schema = options.schema ?? DEFAULT_RELEASE_STORE_SCHEMA;
    this.#table = `${quotePostgresIdentifier(this.#schema)}.hawk_nonces`;
    this.#limits = { windowSeconds: options.windowSeconds, maxEntries: options.maxEntries };
    this.#call = newPostgresStoreCall(
      sql,
      options,
      (error) => new NonceStoreUnavailableError(error),
    );
  }

  /** Applies the migrations the schema lacks, under an advisory lock on the schema. */
  migrate(): Promise<void> {
    return callPostgresStore(
      this.#call,
      "migrate the nonce store",
      (sql) =>
        applyPostgresMigrations(
          sql,
          this.#schema,
          "cr8tor nonce store",
          MIGRATIONS_TABLE,
          POSTGRES_NONCE_STORE_MIGRATIONS,
        ),
    );
  }

  /** {@inheritDoc NonceStore.claim} */
  claim(claim: NonceClaim, now: Date): Promise<boolean> {
    const table = this.#table;
    const { maxEntries } = this.#limits;
    return callPostgresStore(this.#call, "claim a nonce", (sql) =>
      sql.begin(async (tx) => {
        await tx.unsafe(`delete from ${table} where expires_at < $1`, [now.getTime()]);
        const inserted = await tx.unsafe(
          `insert into ${table} (client_id, nonce, expires_at) values ($1, $2, $3)
           on conflict (client_id, nonce) do nothing returning 1`,
          [claim.clientId, claim.nonce, nonceExpiryMs(claim, this.#limits)],
        );
        if (inserted.length === 0) return false;
        const [row] = await tx.unsafe(`select count(*)::int as n from ${table}`);
        // Thrown inside the transaction, so the insert is rolled back.
        if (Number(row?.n ?? 0) > maxEntries) throw new NonceStoreFullError(maxEntries);
        return true;
      }) as Promise<boolean>);
  }

  /** {@inheritDoc NonceStore.close} */
  async close(): Promise<void> {
    if (this.#call.closed) return;
    this.#call.closed = true;
    await this.#call.sql.end({ timeout: 5 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
