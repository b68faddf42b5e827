/**
 * TLS for MySQL and MariaDB sources, in the words of MySQL's `--ssl-mode`, turned into mysql2's `ssl`
 * option.
 *
 * mysql2 (3.24.6, `client_handshake.js`) never falls back to plain text once `ssl` is set: a server whose
 * greeting does not offer TLS is refused with `HANDSHAKE_NO_SSL_SUPPORT`. Its `ssl: {}` checks the chain
 * but not the host name (`verifyIdentity` is off unless asked for), so every mode here says both. For a
 * host given as an IP address it checks the certificate against the name `localhost` (it sets no
 * `servername` and no `host` for Node's check), so `VERIFY_IDENTITY` refuses IP addresses instead of
 * checking the wrong name.
 *
 * @module
 */
import net from "node:net";
import type { SslOptions } from "mysql2/promise";

/**
 * The `ssl-mode` values a connection accepts, strongest first: `VERIFY_IDENTITY` (TLS, certificate
 * chained to a trusted CA and naming the host), `VERIFY_CA` (TLS, certificate chained to a trusted CA,
 * any name), `REQUIRED` (TLS, certificate not checked: encrypted, but open to a machine in the middle),
 * `DISABLED` (plain text, for test servers only). MySQL's `PREFERRED` does not exist here: it falls back
 * to plain text.
 */
export const MYSQL_SSL_MODES = ["VERIFY_IDENTITY", "VERIFY_CA", "REQUIRED", "DISABLED"] as const;

/** One of {@link MYSQL_SSL_MODES}. */
export type MysqlSslMode = typeof MYSQL_SSL_MODES[number];

/** How a MySQL connection is encrypted. */
export interface MysqlTlsOptions {
  /** See {@link MYSQL_SSL_MODES}. */
  readonly mode: MysqlSslMode;
  /**
   * CA certificates (PEM) the server's certificate may chain to, for this connection only. Deployments
   * leave it out and trust a private CA with `DENO_CERT`; tests pass their throw-away CA here.
   */
  readonly ca?: string | readonly string[];
}

/** The TLS settings of a connection that gives no others: TLS required, certificate and name checked. */
export const DEFAULT_MYSQL_TLS: MysqlTlsOptions = { mode: "VERIFY_IDENTITY" };

/**
 * mysql2's `ssl` option for a connection to `host`, or `undefined` for `DISABLED`.
 *
 * @throws {Error} for `VERIFY_IDENTITY` with an IP address, whose name mysql2 cannot check.
 */
export function mysqlSslOptions(host: string, options: MysqlTlsOptions): SslOptions | undefined {
  if (options.mode === "DISABLED") return undefined;
  if (options.mode === "VERIFY_IDENTITY" && net.isIP(host) !== 0) {
    throw new Error(
      `ssl-mode VERIFY_IDENTITY needs the server's host name, not the IP address ${host} (mysql2 ` +
        "would check the certificate against another name): list the source by its DNS name, or " +
        "use VERIFY_CA",
    );
  }
  const ca = options.ca === undefined
    ? {}
    : { ca: typeof options.ca === "string" ? options.ca : [...options.ca] };
  return options.mode === "REQUIRED"
    ? { rejectUnauthorized: false, verifyIdentity: false }
    : { ...ca, rejectUnauthorized: true, verifyIdentity: options.mode === "VERIFY_IDENTITY" };
}

/**
 * A clearer message for mysql2's TLS failures (`HANDSHAKE_NO_SSL_SUPPORT`, `HANDSHAKE_SSL_ERROR`), naming
 * the ssl-mode; `undefined` for any other error.
 */
export function describeMysqlTlsFailure(
  error: unknown,
  options: MysqlTlsOptions,
): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  const mode = `ssl-mode ${options.mode}`;
  if (code === "HANDSHAKE_NO_SSL_SUPPORT") {
    return `the server does not accept TLS connections, and ${mode} never falls back to plain text`;
  }
  if (code === "HANDSHAKE_SSL_ERROR") {
    return `TLS handshake failed (${mode}): ${(error as Error).message}`;
  }
  return undefined;
}
