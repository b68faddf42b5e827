/**
 * Opens the source database a request names: checks it against the allow-list, picks the connector for its
 * engine and fetches the credentials from the secret store by the names the request gives. Every error
 * of the connection, from connecting to the last read, comes out without the secret values read for it
 * (`domain/redaction.ts`). A connection that fails is counted by engine and error code
 * (`source_connection_failed`, `source_login_refused`), for `GET /metrics`.
 *
 * @module
 */
import type { AllowedSources } from "../../domain/allowed_sources.ts";
import type { Source } from "../../domain/contract.ts";
import { redactError } from "../../domain/redaction.ts";
import { type SourceEngine, sourceEngine } from "../../domain/source_engine.ts";
import { SourceTypeNotSupportedError } from "../../domain/errors.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import type { OpenConnections } from "./open_connections.ts";
import {
  type DatabricksSourceConnector,
  type SourceDatabase,
  SourceUnavailableError,
  type SqlSourceConnector,
} from "../../ports/source_database.ts";
import type { SourceFailureMetrics } from "./service_metrics.ts";

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
  /** Where failed connections are counted; nowhere when absent. */
  readonly sourceFailures?: SourceFailureMetrics | undefined;
}

/**
 * Connects to the request's source, at the host and port of its allow-list entry. The allow-list is
 * checked before any secret is read. Errors thrown by the connector or by the returned source never
 * contain a secret value read here.
 *
 * @param schemaName the schema the request reads, checked against the allow-list too (none for validate).
 * @throws {SourceNotAllowedError} when the source, a secret name or its role is not allowed; nothing was
 *   read.
 * @throws {SourceTypeNotSupportedError} when this build has no connector for the engine.
 * @throws {SecretNotFoundError} when a credential secret is missing.
 * @throws {SourceUnavailableError} when the database cannot be reached or refuses the login (then a
 *   `SourceConnectionError` or `SourceLoginRefusedError`, with a fixed message).
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
    const secrets = [clientId, clientSecret];
    return access.connections.track(
      new RedactingSource(
        await redactingFailures(secrets, () =>
          countingFailures(engine, access, () =>
            connect({
              host: address.host,
              port: address.port,
              httpPath: source.http_path,
              catalog: source.catalog,
              clientId,
              clientSecret,
              connectTimeoutMs: access.connectTimeoutMs,
              statementTimeoutMs: access.statementTimeoutMs,
            }))),
        secrets,
      ),
    );
  }
  const connect = access.connectors[sourceEngine(source)];
  if (connect === undefined) throw new SourceTypeNotSupportedError(engine);
  const [username, password] = await Promise.all([
    access.secrets.get(source.credentials.username_key),
    access.secrets.get(source.credentials.password_key),
  ]);
  const secrets = [username, password];
  return access.connections.track(
    new RedactingSource(
      await redactingFailures(secrets, () =>
        countingFailures(engine, access, () =>
          connect({
            host: address.host,
            port: address.port,
            database: source.database,
            username,
            password,
            connectTimeoutMs: access.connectTimeoutMs,
            statementTimeoutMs: access.statementTimeoutMs,
          }))),
      secrets,
    ),
  );
}

/** Connects; a source that cannot be reached or refuses the login is counted, then rethrown. */
async function countingFailures<T>(
  engine: SourceEngine,
  access: SourceAccess,
  connect: () => Promise<T>,
): Promise<T> {
  try {
    return await connect();
  } catch (e) {
    if (e instanceof SourceUnavailableError) {
      access.sourceFailures?.sourceConnectionFailed(engine, e.code);
    }
    throw e;
  }
}

/** Runs `work`; whatever it throws is rethrown without the secret values. */
async function redactingFailures<T>(
  secrets: readonly string[],
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw redactError(e, secrets);
  }
}

/** Passes a stream on; whatever it throws is rethrown without the secret values. */
async function* redactingStream<T>(
  secrets: readonly string[],
  stream: AsyncIterable<T>,
): AsyncGenerator<T, void, undefined> {
  try {
    yield* stream;
  } catch (e) {
    throw redactError(e, secrets);
  }
}

/**
 * The same source, each of whose errors (a catalogue or query error can quote the login, e.g. MySQL's
 * `SELECT command denied to user '…'`) is rethrown without the secret values read for it.
 */
class RedactingSource implements SourceDatabase {
  readonly #db: SourceDatabase;
  readonly #secrets: readonly string[];
  /** Present only when the source has it: writers take the CSV fast path when it is there. */
  readonly readCsv?: NonNullable<SourceDatabase["readCsv"]>;
  /** Present only when the source has it: runs report the expected rows when it is there. */
  readonly estimateRows?: NonNullable<SourceDatabase["estimateRows"]>;

  constructor(db: SourceDatabase, secrets: readonly string[]) {
    this.#db = db;
    this.#secrets = secrets;
    if (db.readCsv !== undefined) {
      this.readCsv = (...args) => redactingStream(secrets, db.readCsv!(...args));
    }
    if (db.estimateRows !== undefined) {
      this.estimateRows = (...args) => redactingFailures(secrets, () => db.estimateRows!(...args));
    }
  }

  ping(): Promise<void> {
    return redactingFailures(this.#secrets, () => this.#db.ping());
  }

  describeSchema(...args: Parameters<SourceDatabase["describeSchema"]>) {
    return redactingFailures(this.#secrets, () => this.#db.describeSchema(...args));
  }

  readRows(...args: Parameters<SourceDatabase["readRows"]>) {
    return redactingStream(this.#secrets, this.#db.readRows(...args));
  }

  close(): Promise<void> {
    return redactingFailures(this.#secrets, () => this.#db.close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    // `close` may have been wrapped since (`OpenConnections.track`): call it through `this`.
    return this.close();
  }
}
