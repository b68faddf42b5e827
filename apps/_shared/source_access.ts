/**
 * Opens the source database a request names: checks it against the allow-list, picks the connector for its
 * engine and fetches the credentials from the secret store by the names the request gives.
 *
 * @module
 */
import type { AllowedSources } from "../../domain/allowed_sources.ts";
import type { Source } from "../../domain/contract.ts";
import { type SourceEngine, sourceEngine } from "../../domain/source_engine.ts";
import { SourceTypeNotSupportedError } from "../../domain/errors.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import type { OpenConnections } from "./open_connections.ts";
import type {
  DatabricksSourceConnector,
  SourceDatabase,
  SqlSourceConnector,
} from "../../ports/source_database.ts";

/** The connectors of the SQL engines, and of Databricks. */
export type SourceConnectors =
  & Partial<Record<Exclude<SourceEngine, "databrickssql">, SqlSourceConnector>>
  & { readonly databrickssql?: DatabricksSourceConnector };

/** What opening a source needs. */
export interface SourceAccess {
  /** The sources this deployment may reach; nothing else is read or connected to. */
  readonly allowedSources: AllowedSources;
  readonly secrets: SecretStore;
  /** Where open connections are kept, so a shutdown can cancel requests that run past its grace period. */
  readonly connections: OpenConnections;
  /** One connector per engine this deployment supports; a missing engine answers 501. */
  readonly connectors: SourceConnectors;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

/**
 * Connects to the request's source, at the host and port of its allow-list entry.
 *
 * @param schemaName the schema the request reads, checked against the allow-list too (none for validate).
 * @throws {SourceNotAllowedError} when the source or a secret name is not allowed; nothing was read.
 * @throws {SourceTypeNotSupportedError} when this build has no connector for the engine.
 * @throws {SecretNotFoundError} when a credential secret is missing.
 * @throws {SourceUnavailableError} when the database cannot be reached or refuses the login.
 */
export async function openSource(
  source: Source,
  access: SourceAccess,
  schemaName?: string,
): Promise<SourceDatabase> {
  const address = access.allowedSources.authorize(source, schemaName);
  const engine = sourceEngine(source);
  if (source.type === "databrickssql") {
    const connect = access.connectors.databrickssql;
    if (connect === undefined) throw new SourceTypeNotSupportedError(engine);
    const [clientId, clientSecret] = await Promise.all([
      access.secrets.get(source.credentials.spn_clientid),
      access.secrets.get(source.credentials.spn_secret),
    ]);
    return access.connections.track(
      await connect({
        host: address.host,
        port: address.port,
        httpPath: source.http_path,
        catalog: source.catalog,
        clientId,
        clientSecret,
        connectTimeoutMs: access.connectTimeoutMs,
        statementTimeoutMs: access.statementTimeoutMs,
      }),
    );
  }
  const connect = access.connectors[sourceEngine(source)];
  if (connect === undefined) throw new SourceTypeNotSupportedError(engine);
  const [username, password] = await Promise.all([
    access.secrets.get(source.credentials.username_key),
    access.secrets.get(source.credentials.password_key),
  ]);
  return access.connections.track(
    await connect({
      host: address.host,
      port: address.port,
      database: source.database,
      username,
      password,
      connectTimeoutMs: access.connectTimeoutMs,
      statementTimeoutMs: access.statementTimeoutMs,
    }),
  );
}
