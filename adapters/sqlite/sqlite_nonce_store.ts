/**
 * The data API's nonce store in the release store's SQLite file (`${STATE_DIR}/releases.sqlite`), in a
 * table of its own (`hawk_nonces`, migrations in `nonce_store_migrations`): every process on the machine
 * that opens the file shares it. A claim is one `BEGIN IMMEDIATE` transaction that drops expired entries,
 * checks the nonce and the cap, and records it.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import {
  checkNonceStoreLimits,
  type NonceClaim,
  nonceExpiryMs,
  type NonceStore,
  NonceStoreFullError,
  type NonceStoreLimits,
  NonceStoreUnavailableError,
} from "../../ports/nonce_store.ts";
import {
  callSqliteStore,
  inImmediateTransaction,
  openSqliteStore,
  type SqliteMigration,
  type SqliteStoreOptions,
} from "./sqlite_database.ts";

const MIGRATIONS_TABLE = "nonce_store_migrations";

/** The schema, one migration per version. Never edit one that has shipped: add the next. */
export const SQLITE_NONCE_STORE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE hawk_nonces (
        client_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (client_id, nonce)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX hawk_nonces_expiry ON hawk_nonces (expires_at);
    `,
  },
];

/** Where the store lives (the release store's file) and its limits. */
export interface SqliteNonceStoreOptions extends SqliteStoreOptions, NonceStoreLimits {}

/**
 * Opens the nonce store in the SQLite file at `options.path` (the release store's), creating its table.
 *
 * @throws {NonceStoreUnavailableError} when the file cannot be opened or migrated.
 * @throws {RangeError} when the limits are not positive integers.
 */
export function openSqliteNonceStore(options: SqliteNonceStoreOptions): Promise<SqliteNonceStore> {
  checkNonceStoreLimits({ windowSeconds: options.windowSeconds, maxEntries: options.maxEntries });
  return openSqliteStore(
    options,
    "nonce store",
    { migrationsTable: MIGRATIONS_TABLE, migrations: SQLITE_NONCE_STORE_MIGRATIONS },
    (db) => new SqliteNonceStore(db, options),
    (error) => new NonceStoreUnavailableError(error),
  );
}

/** Nonces in a SQLite table. Open it with {@link openSqliteNonceStore}. */
export class SqliteNonceStore implements NonceStore {
  #db: DatabaseSync | undefined;
  readonly #limits: NonceStoreLimits;

  /** Takes over an open, migrated database; use {@link openSqliteNonceStore}. */
  constructor(db: DatabaseSync, limits: NonceStoreLimits) {
    this.#db = db;
    this.#limits = { windowSeconds: limits.windowSeconds, maxEntries: limits.maxEntries };
  }

  /** {@inheritDoc NonceStore.claim} */
  claim(claim: NonceClaim, now: Date): Promise<boolean> {
    return callSqliteStore(
      this.#db,
      "claim a nonce",
      (db) =>
        inImmediateTransaction(db, () => {
          db.prepare("DELETE FROM hawk_nonces WHERE expires_at < ?").run(now.getTime());
          const seen = db.prepare("SELECT 1 FROM hawk_nonces WHERE client_id = ? AND nonce = ?")
            .get(claim.clientId, claim.nonce);
          if (seen !== undefined) return false;
          const count = Number(db.prepare("SELECT count(*) AS n FROM hawk_nonces").get()?.n ?? 0);
          if (count >= this.#limits.maxEntries) {
            throw new NonceStoreFullError(this.#limits.maxEntries);
          }
          db.prepare("INSERT INTO hawk_nonces (client_id, nonce, expires_at) VALUES (?, ?, ?)")
            .run(claim.clientId, claim.nonce, nonceExpiryMs(claim, this.#limits));
          return true;
        }),
      (error) => new NonceStoreUnavailableError(error),
    );
  }

  /** {@inheritDoc NonceStore.close} */
  close(): Promise<void> {
    this.#db?.close();
    this.#db = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
