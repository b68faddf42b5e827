/**
 * Opens the source database a request names: picks the connector for its engine and fetches the credentials
 * from the secret store by the names the request gives.
 *
 * @module
 */
import { type Source, type SourceEngine, sourceEngine } from "../../domain/contract.ts";
import { SourceTypeNotSupportedError } from "../../domain/errors.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import type { SourceDatabase, SqlSourceConnector } from "../../ports/source_database.ts";

/** What opening a source needs. */
export interface SourceAccess {
  readonly secrets: SecretStore;
  /** One connector per SQL engine this build supports; a missing engine answers 501. */
  readonly connectors: Partial<Record<SourceEngine, SqlSourceConnector>>;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

/**
 * Connects to the request's source.
 *
 * @throws {SourceTypeNotSupportedError} when this build has no connector for the engine.
 * @throws {SecretNotFoundError} when a credential secret is missing.
 * @throws {SourceUnavailableError} when the database cannot be reached or refuses the login.
 */
export async function openSource(source: Source, access: SourceAccess): Promise<SourceDatabase> {
  const engine = sourceEngine(source);
  const connect = access.connectors[engine];
  if (source.type === "databrickssql" || connect === undefined) {
    throw new SourceTypeNotSupportedError(engine);
  }
  const [username, password] = await Promise.all([
    access.secrets.get(source.credentials.username_key),
    access.secrets.get(source.credentials.password_key),
  ]);
  return await connect({
    host: source.host_url,
    port: source.port,
    database: source.database,
    username,
    password,
    connectTimeoutMs: access.connectTimeoutMs,
    statementTimeoutMs: access.statementTimeoutMs,
  });
}
