/**
 * The HTTP-file sources the environment configures (`HTTP_FILE_SOURCES_FILE`, `docs/http-sources.md`),
 * with their registry kept where the runs are (`RUN_STORE`: `${STATE_DIR}/file-registry.sqlite`, or
 * its own schema in the run store's PostgreSQL database).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { openPostgresFileRegistry } from "../../adapters/postgres/postgres_file_registry.ts";
import {
  openSqliteFileRegistry,
  sqliteFileRegistryPath,
} from "../../adapters/sqlite/sqlite_file_registry.ts";
import { parseHttpFileSources } from "../../domain/http_file_sources.ts";
import type { FileRegistry } from "../../ports/file_registry.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import type { Logger } from "../_shared/log.ts";
import {
  type HttpSourceScheduler,
  httpSourceSchedulerOf,
} from "../_shared/http_source_scheduler.ts";
import { stateStoreFromEnv, type StateStoreKind } from "../_shared/state_store_from_env.ts";
import { HttpSources } from "./http_sources.ts";

/** The file registry opens as the run store does, in its own file or schema. */
export const FILE_REGISTRY_KIND: StateStoreKind<FileRegistry> = {
  prefix: "RUN_STORE",
  label: "file registry",
  sqlitePath: sqliteFileRegistryPath,
  openSqlite: (path) => openSqliteFileRegistry({ path }),
  openPostgres: (options) => openPostgresFileRegistry(options),
};

/** The sources and their open registry; none (and no registry opened) without the file. */
export interface ConfiguredHttpSources {
  readonly sources: HttpSources;
  /**
   * Who runs the sources' schedules (`httpSourceSchedulerOf`): the publish service starts its timer
   * only when this is `publish`; the operator ticks only when it is `operator`.
   */
  readonly scheduler: HttpSourceScheduler;
  /** Closes the registry. */
  readonly close: () => Promise<void>;
}

/**
 * Reads `HTTP_FILE_SOURCES_FILE` and opens the registry.
 *
 * @throws {ConfigError} when the file cannot be read or is not a valid sources file, or the registry
 *   cannot be opened.
 */
export async function httpSourcesFromEnv(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  log: Logger,
): Promise<ConfiguredHttpSources | undefined> {
  const path = env.HTTP_FILE_SOURCES_FILE;
  if (path === undefined || path === "") return undefined;
  httpSourceSchedulerOf(env); // a bad value stops startup before anything is opened
  let sources;
  try {
    sources = parseHttpFileSources(readFileSync(path, "utf8"));
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ConfigError(`Cannot read HTTP_FILE_SOURCES_FILE ${path}: ${reason}`, { cause: e });
  }
  const registry = await stateStoreFromEnv(FILE_REGISTRY_KIND, env, secrets, log);
  const scheduler = httpSourceSchedulerOf(env);
  log.info("http_file_sources", {
    file: path,
    sources: sources.length,
    scheduled: sources.filter((s) => s.schedule !== undefined).length,
    scheduler,
  });
  return {
    sources: new HttpSources({ sources, registry, client: new NodeHttpFileClient() }),
    scheduler,
    close: () => registry.close(),
  };
}
