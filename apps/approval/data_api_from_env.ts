/**
 * The data API's configuration (`docs/data-api.md`): off unless `DATA_API=on`; then the clients file
 * (`DATA_API_CLIENTS_FILE`, YAML or JSON, checked at startup), each client's HAWK key from the secret
 * store, the nonce store in the release store's database (`RELEASE_STORE`: SQLite by default, or the shared
 * PostgreSQL store) and the batched audit of reads (`DATA_API_AUDIT_FLUSH_SECONDS`).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  HAWK_SKEW_SECONDS,
  HawkRequestVerifier,
} from "../../adapters/hawk/hawk_request_verifier.ts";
import { openPostgresNonceStore } from "../../adapters/postgres/postgres_nonce_store.ts";
import { openSqliteNonceStore } from "../../adapters/sqlite/sqlite_nonce_store.ts";
import { sqliteReleaseStorePath } from "../../adapters/sqlite/sqlite_release_store.ts";
import {
  type DataApiClients,
  InvalidDataApiClientsError,
  parseDataApiClients,
} from "../../domain/data_api_scopes.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { DEFAULT_MAX_NONCES, type NonceStore } from "../../ports/nonce_store.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { parseEnv } from "../_shared/config.ts";
import type { Logger } from "../_shared/log.ts";
import { stateStoreFromEnv, type StateStoreKind } from "../_shared/state_store_from_env.ts";
import type { DataApiDeps } from "./data_api.ts";
import { DataReadAuditEnv, dataReadAuditFrom } from "../_shared/data_read_audit.ts";

/** The shortest HAWK key accepted: 32 characters. */
export const MIN_HAWK_KEY_LENGTH = 32;

/** The data API's variables. */
export const DataApiEnv = DataReadAuditEnv.extend({
  /** `on` serves `/data/v1`; `off` (the default): the routes do not exist. */
  DATA_API: z.enum(["on", "off"]).default("off"),
  /** The clients file (YAML or JSON); required with `DATA_API=on`. */
  DATA_API_CLIENTS_FILE: z.string().trim().optional(),
  /** The most HAWK nonces remembered at once (requests beyond are refused 503 until some expire). */
  DATA_API_MAX_NONCES: z.coerce.number<unknown>().int().min(100).max(10_000_000).default(
    DEFAULT_MAX_NONCES,
  ),
});

/** The nonce store kind: in the release store's database (`RELEASE_STORE_*`, `STATE_DIR`). */
export function nonceStoreKind(maxEntries: number): StateStoreKind<NonceStore> {
  const limits = { windowSeconds: HAWK_SKEW_SECONDS, maxEntries };
  return {
    prefix: "RELEASE_STORE",
    label: "nonce store",
    sqlitePath: sqliteReleaseStorePath,
    openSqlite: (path) => openSqliteNonceStore({ path, ...limits }),
    openPostgres: (options) => openPostgresNonceStore({ ...options, ...limits }),
  };
}

/** The data API, ready to serve, and how to close it at shutdown. */
export interface DataApiSetup {
  readonly deps: DataApiDeps;
  /** Writes the reads not yet recorded and closes the nonce store. */
  close(): Promise<void>;
}

/**
 * Reads and checks the clients file at `path`: YAML or JSON (JSON is YAML).
 *
 * @throws {ConfigError} naming the file and every field at fault.
 */
export function readDataApiClients(path: string): DataApiClients {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`Cannot read DATA_API_CLIENTS_FILE ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `Cannot read DATA_API_CLIENTS_FILE ${path}: not YAML or JSON: ${(e as Error).message}`,
    );
  }
  try {
    return parseDataApiClients(value);
  } catch (e) {
    if (!(e instanceof InvalidDataApiClientsError)) throw e;
    throw new ConfigError(
      `Cannot read DATA_API_CLIENTS_FILE ${path}: ${e.issues.join("; ")}`,
    );
  }
}

/**
 * The data API the environment configures, or `undefined` when `DATA_API` is not `on`.
 *
 * @throws {ConfigError} when the clients file is missing or invalid, a client's key cannot be read or is
 *   shorter than {@link MIN_HAWK_KEY_LENGTH}, or the nonce store cannot be opened.
 */
export async function dataApiFromEnv(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  trail: AuditTrail | undefined,
  log: Logger,
): Promise<DataApiSetup | undefined> {
  const config = parseEnv(DataApiEnv, env);
  if (config.DATA_API !== "on") return undefined;
  const path = config.DATA_API_CLIENTS_FILE ?? "";
  if (path === "") {
    throw new ConfigError(
      "Cannot start: DATA_API is on but DATA_API_CLIENTS_FILE is not set: list the clients that may " +
        "read (docs/data-api.md), or set DATA_API=off",
    );
  }
  const file = readDataApiClients(path);
  const keys = new Map<string, string>();
  for (const client of file.clients) {
    let key: string;
    try {
      key = await secrets.get(client.secret_name);
    } catch (e) {
      throw new ConfigError(
        `Cannot start: cannot read the HAWK key of data API client "${client.id}" (secret ` +
          `"${client.secret_name}"): ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (key.length < MIN_HAWK_KEY_LENGTH) {
      throw new ConfigError(
        `Cannot start: the HAWK key of data API client "${client.id}" (secret "${client.secret_name}") ` +
          `is shorter than ${MIN_HAWK_KEY_LENGTH} characters`,
      );
    }
    keys.set(client.id, key);
  }
  const nonces = await stateStoreFromEnv(
    nonceStoreKind(config.DATA_API_MAX_NONCES),
    env,
    secrets,
    log,
  );
  const audit = dataReadAuditFrom(config, { service: "approval", log, trail });
  log.info("data_api", {
    clients: file.clients.map((client) => client.id),
    file: path,
    audit_flush_seconds: config.DATA_API_AUDIT_FLUSH_SECONDS,
  });
  return {
    deps: {
      clients: new Map(file.clients.map((client) => [client.id, client])),
      verifier: new HawkRequestVerifier({ keys, nonces }),
      audit,
    },
    async close() {
      try {
        await audit.close();
      } finally {
        await nonces.close();
      }
    },
  };
}
