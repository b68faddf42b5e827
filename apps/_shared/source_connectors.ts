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
import type { MysqlSslMode, MysqlTlsOptions } from "../../adapters/mysql/mysql_tls.ts";
import { connectPostgres } from "../../adapters/postgres/postgres_source_database.ts";
import type { PostgresSslMode, PostgresTlsOptions } from "../../adapters/postgres/postgres_tls.ts";
import type { SqlSourceConnector } from "../../ports/source_database.ts";
import type { z } from "zod";
import { ConfigError } from "./app_errors.ts";
import type { SourceEnv } from "./config.ts";
import type { Logger } from "./log.ts";
import { checkCaBundles } from "./secret_store_from_env.ts";
import type { SourceConnectors } from "./source_access.ts";

/** The TLS settings of the environment (`SourceEnv`) for every source engine. */
export type SourceTlsEnv = Pick<
  z.infer<typeof SourceEnv>,
  | "SOURCE_MSSQL_ENCRYPT"
  | "SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE"
  | "SOURCE_POSTGRES_SSLMODE"
  | "SOURCE_MYSQL_SSLMODE"
  | "DENO_CERT"
  | "NODE_EXTRA_CA_CERTS"
>;

/** What {@link sourceConnectors} needs besides the environment. */
export interface SourceConnectorOptions {
  /** Where weakened TLS settings are logged as warnings at startup. */
  readonly log?: Logger;
  readonly databricks?: DatabricksSettings;
}

/**
 * PostgreSQL, MySQL/MariaDB, SQL Server and Databricks, with the TLS settings of the environment: the one
 * place they are read. A weakened setting (`disable`, `require`, ...) is logged as a warning.
 *
 * @throws {ConfigError} for `SOURCE_MSSQL_ENCRYPT=strict` with `SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE=true`
 *   (TDS 8.0 always checks the certificate, so the setting would silently do nothing), and for a
 *   `DENO_CERT` or `NODE_EXTRA_CA_CERTS` that Deno would ignore (unreadable, or no certificate in it).
 */
export function sourceConnectors(
  env: SourceTlsEnv,
  options: SourceConnectorOptions = {},
): SourceConnectors {
  if (env.SOURCE_MSSQL_ENCRYPT === "strict" && env.SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE) {
    throw new ConfigError(
      "SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE=true has no effect with SOURCE_MSSQL_ENCRYPT=strict " +
        "(TDS 8.0 always checks the certificate): trust a private CA with DENO_CERT instead",
    );
  }
  checkCaBundles({ DENO_CERT: env.DENO_CERT, NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS });
  const tls = {
    encrypt: env.SOURCE_MSSQL_ENCRYPT,
    trustServerCertificate: env.SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE,
  };
  // The SQL Server and MySQL drivers are loaded on first use, as the Databricks driver is: a service
  // whose packages never read them does not hold them in memory (apps/publish/startup_modules_test.ts).
  const connectMssql: SqlSourceConnector = async (options) =>
    (await import("../../adapters/mssql/mssql_source_database.ts")).connectMssqlWith(options, tls);
  const { log, databricks = {} } = options;
  const postgresTls = postgresTlsOf("SOURCE_POSTGRES_SSLMODE", env.SOURCE_POSTGRES_SSLMODE, log);
  const mysqlTls = mysqlTlsOf("SOURCE_MYSQL_SSLMODE", env.SOURCE_MYSQL_SSLMODE, log);
  return {
    postgresql: (connection) => connectPostgres({ ...connection, tls: postgresTls }),
    mysql: async (connection) =>
      (await import("../../adapters/mysql/mysql_source_database.ts")).connectMysql({
        ...connection,
        tls: mysqlTls,
      }),
    mssql: connectMssql,
    databrickssql: databricksConnector(databricks),
  };
}

/**
 * The PostgreSQL TLS settings of an sslmode variable (`SOURCE_POSTGRES_SSLMODE`,
 * `DESTINATION_POSTGRESQL_SSLMODE`); `disable` and `require` are logged as warnings.
 */
export function postgresTlsOf(
  variable: string,
  mode: PostgresSslMode,
  log?: Logger,
): PostgresTlsOptions {
  if (mode === "disable") warnPlainText(variable, log);
  if (mode === "require") warnUnverified(variable, log);
  return { mode };
}

/** The MySQL TLS settings of `SOURCE_MYSQL_SSLMODE`; `DISABLED` and `REQUIRED` are logged as warnings. */
function mysqlTlsOf(variable: string, mode: MysqlSslMode, log?: Logger): MysqlTlsOptions {
  if (mode === "DISABLED") warnPlainText(variable, log);
  if (mode === "REQUIRED") warnUnverified(variable, log);
  return { mode };
}

function warnPlainText(variable: string, log: Logger | undefined): void {
  log?.warn("database_tls_disabled", {
    variable,
    hint: "credentials and rows travel in plain text: for test servers only",
  });
}

function warnUnverified(variable: string, log: Logger | undefined): void {
  log?.warn("database_tls_unverified", {
    variable,
    hint: "encrypted, but the certificate is not checked: a machine in the middle can read it all",
  });
}
