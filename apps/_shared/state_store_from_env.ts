/**
 * Opening a service's own state store from the environment, the same way for every store (the publish
 * service's run store, `RUN_STORE_*`; the approval service's release store, `RELEASE_STORE_*`): SQLite at
 * `${STATE_DIR}/<file>` by default, or a shared PostgreSQL database with `<PREFIX>_POSTGRESQL_HOST`,
 * `_PORT`, `_DATABASE`, `_USERNAME`, `_PASSWORD_SECRET_NAME` and `_SSLMODE`.
 *
 * @module
 */
import { z } from "zod";
import type { PostgresConnectionOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { DEFAULT_STATE_DIR } from "../../adapters/sqlite/sqlite_database.ts";
import { AppError } from "../../domain/errors.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import { ConfigError } from "./app_errors.ts";
import { parseEnv, postgresSslModeVar } from "./config.ts";
import type { Logger } from "./log.ts";
import { postgresTlsOf } from "./source_connectors.ts";

const required = z.string().min(1);

/** One kind of state store and how to open each of its adapters. */
export interface StateStoreKind<S> {
  /** The variables' prefix: `RUN_STORE` or `RELEASE_STORE`. */
  readonly prefix: "RUN_STORE" | "RELEASE_STORE";
  /** `run store`, `release store`: for log lines and error messages. */
  readonly label: string;
  /** The SQLite file in a state directory. */
  readonly sqlitePath: (stateDir: string) => string;
  readonly openSqlite: (path: string) => Promise<S>;
  readonly openPostgres: (options: PostgresConnectionOptions) => Promise<S>;
}

/** `<PREFIX>` (`sqlite` or `postgresql`) and `STATE_DIR`. */
export function stateStoreEnv(prefix: StateStoreKind<unknown>["prefix"]) {
  return z.object({
    [prefix]: z.enum(["sqlite", "postgresql"]).default("sqlite"),
    STATE_DIR: z.string().min(1).default(DEFAULT_STATE_DIR),
  });
}

/** The shared PostgreSQL store's variables (`<PREFIX>=postgresql`): all are needed then. */
export function postgresqlStateStoreEnv(prefix: StateStoreKind<unknown>["prefix"]) {
  return z.object({
    [`${prefix}_POSTGRESQL_HOST`]: required,
    [`${prefix}_POSTGRESQL_PORT`]: z.coerce.number<unknown>().int().min(1).max(65535).default(5432),
    [`${prefix}_POSTGRESQL_DATABASE`]: required,
    [`${prefix}_POSTGRESQL_USERNAME`]: required,
    [`${prefix}_POSTGRESQL_PASSWORD_SECRET_NAME`]: required,
    /** The store's TLS, as `SOURCE_POSTGRES_SSLMODE` (`verify-full` by default). */
    [`${prefix}_POSTGRESQL_SSLMODE`]: postgresSslModeVar(),
  });
}

/**
 * Opens the store the environment names: SQLite at `${STATE_DIR}/<file>` by default, or the shared
 * PostgreSQL store (its password from the secret store, verified TLS unless `..._SSLMODE` says otherwise).
 *
 * @throws {ConfigError} when the store cannot be configured, its password read or the store opened.
 */
export async function stateStoreFromEnv<S>(
  kind: StateStoreKind<S>,
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  log: Logger,
): Promise<S> {
  const { prefix, label } = kind;
  const event = label.replaceAll(" ", "_");
  const config = parseEnv(stateStoreEnv(prefix), env) as Record<string, string>;
  try {
    if (config[prefix] === "sqlite") {
      const path = kind.sqlitePath(config.STATE_DIR as string);
      const store = await kind.openSqlite(path);
      log.info(event, { kind: "sqlite", path });
      return store;
    }
    const pg = parseEnv(postgresqlStateStoreEnv(prefix), env) as Record<string, never>;
    const v = (name: string): never => pg[`${prefix}_POSTGRESQL_${name}`] as never;
    const store = await kind.openPostgres({
      host: v("HOST"),
      port: v("PORT"),
      database: v("DATABASE"),
      username: v("USERNAME"),
      password: await secrets.get(v("PASSWORD_SECRET_NAME")),
      tls: postgresTlsOf(`${prefix}_POSTGRESQL_SSLMODE`, v("SSLMODE"), log),
      connectTimeoutMs: 15_000,
      statementTimeoutMs: 60_000,
    });
    log.info(event, { kind: "postgresql", host: v("HOST"), database: v("DATABASE") });
    return store;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(
      `Cannot start: cannot open the ${label}: ${(e as Error).message}${
        e instanceof AppError && e.logDetail !== undefined ? ` (${e.logDetail})` : ""
      }`,
      { cause: e },
    );
  }
}
