/**
 * A Databricks SQL source in a Unity Catalog workspace: the catalogue comes from Unity Catalog REST (as
 * the reference reads it: comments, `type_text` with precision, primary keys from `table_constraints`),
 * the rows from a SQL warehouse through the `@databricks/sql` driver. Both use one OAuth machine-to-machine
 * token for the service principal, fetched from the workspace and refreshed before it expires, so a long
 * extract survives a token rollover.
 *
 * The "schema" is a Unity Catalog schema of the connection's catalog.
 *
 * @module
 */
import type { SchemaCatalog, TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import {
  type DatabricksConnectionOptions,
  type DatabricksSourceConnector,
  type ReadRowsOptions,
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
} from "../../ports/source_database.ts";
import type { DatabricksSql } from "./databricks_sql.ts";
import { DatabricksTokenSource } from "./databricks_token.ts";
import { UnityCatalogClient } from "./unity_catalog.ts";

/** Deployment-wide settings for Databricks sources. */
export interface DatabricksSettings {
  /** Extra certificate authorities (PEM) to trust, for a TRE whose egress goes through a TLS proxy. */
  readonly caCertificates?: readonly string[];
}

/**
 * Returns a connector that opens Databricks sources with the given deployment settings.
 *
 * Connecting fetches a token, so it proves the service principal's credentials, as the reference's
 * validate does; the warehouse itself is first reached by `ping()` or a read.
 */
export function databricksConnector(settings: DatabricksSettings = {}): DatabricksSourceConnector {
  return (options) => connectDatabricks(options, settings);
}

/**
 * Opens a Databricks source.
 *
 * @throws {SourceUnavailableError} when no token can be had for the service principal.
 */
export async function connectDatabricks(
  options: DatabricksConnectionOptions,
  settings: DatabricksSettings = {},
): Promise<DatabricksSourceDatabase> {
  const baseUrl = `https://${hostForUrl(options.host)}:${options.port}`;
  const ca = settings.caCertificates === undefined
    ? {}
    : { caCertificates: settings.caCertificates };
  const tokens = new DatabricksTokenSource({
    baseUrl,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    timeoutMs: options.connectTimeoutMs,
    ...ca,
  });
  try {
    await tokens.token();
    const catalog = new UnityCatalogClient({
      baseUrl,
      tokens,
      timeoutMs: options.statementTimeoutMs,
      ...ca,
    });
    // The driver is loaded on first use: it costs a process about 44 MB of resident memory, which a
    // service without Databricks sources should not pay.
    const openSql = async () =>
      (await import("./databricks_sql.ts")).openDatabricksSql({
        host: options.host,
        port: options.port,
        httpPath: options.httpPath,
        catalog: options.catalog,
        getToken: () => tokens.token(),
        connectTimeoutMs: options.connectTimeoutMs,
        statementTimeoutMs: options.statementTimeoutMs,
        ...ca,
      });
    return new DatabricksSourceDatabase(options.catalog, tokens, catalog, openSql);
  } catch (e) {
    tokens.close();
    throw e;
  }
}

/** An IPv6 literal needs brackets in a URL. */
function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * A Databricks source: Unity Catalog for the catalogue, one warehouse session for the rows. The session is
 * opened on first use, so describing a schema never starts a stopped warehouse.
 */
export class DatabricksSourceDatabase implements SourceDatabase {
  readonly #catalogName: string;
  readonly #tokens: DatabricksTokenSource;
  readonly #catalog: UnityCatalogClient;
  readonly #openSql: () => Promise<DatabricksSql>;
  #sql: Promise<DatabricksSql> | undefined;
  #closed = false;

  /**
   * @param catalogName the Unity Catalog catalog every schema is read from.
   * @param openSql opens the warehouse session; this object owns the token source, the catalogue client
   *   and the session, and closes them.
   */
  constructor(
    catalogName: string,
    tokens: DatabricksTokenSource,
    catalog: UnityCatalogClient,
    openSql: () => Promise<DatabricksSql>,
  ) {
    this.#catalogName = catalogName;
    this.#tokens = tokens;
    this.#catalog = catalog;
    this.#openSql = openSql;
  }

  /** The warehouse session, opened by the first caller; a failed open is retried by the next one. */
  #session(): Promise<DatabricksSql> {
    if (this.#closed) {
      return Promise.reject(
        new SourceUnavailableError("Cannot query Databricks: the source is closed"),
      );
    }
    if (this.#sql === undefined) {
      const opening = this.#openSql();
      this.#sql = opening;
      opening.catch(() => {
        if (this.#sql === opening) this.#sql = undefined;
      });
    }
    return this.#sql;
  }

  /**
   * Runs `SELECT 1` on the warehouse.
   *
   * @throws {SourceUnavailableError} when the warehouse cannot be reached or the query fails.
   */
  async ping(): Promise<void> {
    await (await this.#session()).ping();
  }

  /** {@inheritDoc SourceDatabase.describeSchema} */
  describeSchema(schema: string, options?: { tables?: readonly string[] }): Promise<SchemaCatalog> {
    return this.#catalog.describeSchema(this.#catalogName, schema, options);
  }

  /** {@inheritDoc SourceDatabase.readRows} */
  async *readRows(
    extract: TableExtract,
    options: ReadRowsOptions = {},
  ): AsyncIterable<CanonicalRow[]> {
    yield* (await this.#session()).readRows(extract, options);
  }

  /**
   * How many rows the table statistics expect: Unity Catalog names the tables (exactly, views left out),
   * then the warehouse's `DESCRIBE TABLE EXTENDED` gives each table's `Statistics` row count, which
   * exists once `ANALYZE TABLE ... COMPUTE STATISTICS` (or predictive optimisation) has run; a table
   * without one is left out, as are names that are not there and an unknown schema. Unlike
   * `describeSchema` this opens the warehouse session (and may start a stopped warehouse). Reads
   * metadata only.
   *
   * @throws {SourceUnavailableError} when the catalogue or the statistics cannot be read.
   */
  async estimateRows(
    schema: string,
    tables: readonly string[],
  ): Promise<ReadonlyMap<string, number>> {
    const estimates = new Map<string, number>();
    if (this.#closed) {
      throw new SourceUnavailableError("Cannot query Databricks: the source is closed");
    }
    if (tables.length === 0) return estimates;
    let catalog: SchemaCatalog;
    try {
      catalog = await this.describeSchema(schema, { tables });
    } catch (e) {
      if (e instanceof SchemaNotFoundError) return estimates;
      throw e;
    }
    const named = catalog.tables.filter((t) => t.kind === "table");
    if (named.length === 0) return estimates;
    const sql = await this.#session();
    for (const table of named) {
      const rows = await sql.statisticsRows(schema, table.name);
      if (rows !== undefined) estimates.set(table.name, rows);
    }
    return estimates;
  }

  /** Closes the warehouse session and forgets the token; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sql = this.#sql;
    this.#sql = undefined;
    try {
      if (sql !== undefined) await (await sql).close();
    } catch {
      // The session never opened: there is nothing to close.
    } finally {
      this.#catalog.close();
      this.#tokens.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
