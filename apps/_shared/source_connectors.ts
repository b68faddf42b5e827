/**
 * The source connectors the metadata and publish services use, one per engine, configured from the
 * environment in one place.
 *
 * @module
 */
import {
  databricksConnector,
  type DatabricksSettings,
} from "../../adapters/databricks/databricks_source_database.ts";
import { connectMssqlWith } from "../../adapters/mssql/mssql_source_database.ts";
import { connectMysql } from "../../adapters/mysql/mysql_source_database.ts";
import { connectPostgres } from "../../adapters/postgres/postgres_source_database.ts";
import type { SqlSourceConnector } from "../../ports/source_database.ts";
import type { z } from "zod";
import { ConfigError } from "./app_errors.ts";
import type { SourceEnv } from "./config.ts";
import type { SourceConnectors } from "./source_access.ts";

/** The SQL Server TLS settings of the environment (`SourceEnv`). */
export type MssqlEnv = Pick<
  z.infer<typeof SourceEnv>,
  "SOURCE_MSSQL_ENCRYPT" | "SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE"
>;

/**
 * PostgreSQL, MySQL/MariaDB, SQL Server and Databricks.
 *
 * @throws {ConfigError} for `SOURCE_MSSQL_ENCRYPT=strict` with `SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE=true`:
 *   TDS 8.0 always checks the certificate, so the setting would silently do nothing.
 */
export function sourceConnectors(
  env: MssqlEnv,
  databricks: DatabricksSettings = {},
): SourceConnectors {
  if (env.SOURCE_MSSQL_ENCRYPT === "strict" && env.SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE) {
    throw new ConfigError(
      "SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE=true has no effect with SOURCE_MSSQL_ENCRYPT=strict " +
        "(TDS 8.0 always checks the certificate): trust a private CA with DENO_CERT instead",
    );
  }
  const tls = {
    encrypt: env.SOURCE_MSSQL_ENCRYPT,
    trustServerCertificate: env.SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE,
  };
  const connectMssql: SqlSourceConnector = (options) => connectMssqlWith(options, tls);
  return {
    postgresql: connectPostgres,
    mysql: connectMysql,
    mssql: connectMssql,
    databrickssql: databricksConnector(databricks),
  };
}
