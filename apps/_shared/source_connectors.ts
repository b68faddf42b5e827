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
import type { SourceConnectors } from "./source_access.ts";

/** TLS settings for SQL Server sources (`SOURCE_MSSQL_ENCRYPT`, `SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE`). */
export interface MssqlSettings {
  readonly encrypt: boolean | "strict";
  readonly trustServerCertificate: boolean;
}

/** PostgreSQL, MySQL/MariaDB, SQL Server and Databricks. */
export function sourceConnectors(
  mssql: MssqlSettings,
  databricks: DatabricksSettings = {},
): SourceConnectors {
  const connectMssql: SqlSourceConnector = (options) => connectMssqlWith(options, mssql);
  return {
    postgresql: connectPostgres,
    mysql: connectMysql,
    mssql: connectMssql,
    databrickssql: databricksConnector(databricks),
  };
}
