/**
 * The SQL source connectors the metadata and publish services use, one per engine, configured from the
 * environment in one place.
 *
 * @module
 */
import { connectMssqlWith } from "../../adapters/mssql/mssql_source_database.ts";
import { connectMysql } from "../../adapters/mysql/mysql_source_database.ts";
import { connectPostgres } from "../../adapters/postgres/postgres_source_database.ts";
import type { SqlSourceConnector } from "../../ports/source_database.ts";
import type { SourceAccess } from "./source_access.ts";

/** TLS settings for SQL Server sources (`SOURCE_MSSQL_ENCRYPT`, `SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE`). */
export interface MssqlSettings {
  readonly encrypt: boolean | "strict";
  readonly trustServerCertificate: boolean;
}

/** PostgreSQL, MySQL/MariaDB and SQL Server; Databricks is not supported yet (501). */
export function sourceConnectors(mssql: MssqlSettings): SourceAccess["connectors"] {
  const connectMssql: SqlSourceConnector = (options) => connectMssqlWith(options, mssql);
  return { postgresql: connectPostgres, mysql: connectMysql, mssql: connectMssql };
}
