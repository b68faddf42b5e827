/**
 * The run store the environment names (`RUN_STORE`, `RUN_STORE_POSTGRESQL_*`, `STATE_DIR`), for the
 * publish service, its one-run Jobs and the operator, which share it (`docs/runs.md`).
 *
 * @module
 */
import { openPostgresRunStore } from "../../adapters/postgres/postgres_run_store.ts";
import { openSqliteRunStore, sqliteRunStorePath } from "../../adapters/sqlite/sqlite_run_store.ts";
import type { RunStore } from "../../ports/run_store.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import type { Logger } from "./log.ts";
import { stateStoreFromEnv, type StateStoreKind } from "./state_store_from_env.ts";

/** How the run store is opened (`RUN_STORE`, `RUN_STORE_POSTGRESQL_*`, `STATE_DIR`). */
export const RUN_STORE_KIND: StateStoreKind<RunStore> = {
  prefix: "RUN_STORE",
  label: "run store",
  sqlitePath: sqliteRunStorePath,
  openSqlite: (path) => openSqliteRunStore({ path }),
  openPostgres: (options) => openPostgresRunStore(options),
};

/**
 * Opens the run store the environment names: SQLite at `${STATE_DIR}/runs.sqlite` by default, or the
 * shared PostgreSQL store (its password from the secret store, verified TLS unless `..._SSLMODE` says
 * otherwise).
 *
 * @throws {ConfigError} when the store cannot be configured, its password read or the store opened.
 */
export async function runStoreFromEnv(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  log: Logger,
): Promise<RunStore> {
  return await stateStoreFromEnv(RUN_STORE_KIND, env, secrets, log);
}
