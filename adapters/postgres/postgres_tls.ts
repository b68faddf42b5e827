/**
 * TLS for PostgreSQL connections (the sources and the destination), in libpq's `sslmode` words.
 *
 * The negotiation is done here rather than by postgres.js, for three reasons found in its source
 * (3.4.9, `connection.js` `secure()`): after a server answers the SSLRequest with `N` it starts the TLS
 * handshake anyway, so the server drops the connection and the only error is "Client network socket
 * disconnected before secure TLS connection was established"; for a host given as an IP address it sets
 * neither `servername` nor `host`, so Node checks the certificate against the name `localhost`; and it
 * ignores anything the server sends after `S` in the same packet without saying so. Here, a
 * server that will not speak TLS is a clear error, the certificate is checked against the host connected
 * to (its IP address included), and bytes injected before the handshake stop the connection.
 *
 * There is never a fallback to plain text: `prefer` and `allow` do not exist here.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";

/**
 * The `sslmode` values a connection accepts, strongest first: `verify-full` (TLS, certificate chained to
 * a trusted CA and naming the host), `verify-ca` (TLS, certificate chained to a trusted CA, any name),
 * `require` (TLS, certificate not checked: encrypted, but open to a machine in the middle), `disable`
 * (plain text, for test servers only).
 */
export const POSTGRES_SSL_MODES = ["verify-full", "verify-ca", "require", "disable"] as const;

/** One of {@link POSTGRES_SSL_MODES}. */
export type PostgresSslMode = typeof POSTGRES_SSL_MODES[number];

/** How a PostgreSQL connection is encrypted. */
export interface PostgresTlsOptions {
  /** See {@link POSTGRES_SSL_MODES}. */
  readonly mode: PostgresSslMode;
  /**
   * CA certificates (PEM) the server's certificate may chain to, for this connection only. Deployments
   * leave it out and trust a private CA with `DENO_CERT`, which adds to the root store every connection
   * uses; tests pass their throw-away CA here.
   */
  readonly ca?: string | readonly string[];
  /**
   * The name the certificate must carry when it differs from the host connected to (a connection by IP
   * address to a server whose certificate names its DNS name). Also sent as SNI.
   */
  readonly serverName?: string;
}

/** The TLS settings of a connection that gives no others: TLS required, certificate and name checked. */
export const DEFAULT_POSTGRES_TLS: PostgresTlsOptions = { mode: "verify-full" };

/** The SSLRequest message: length 8, then the request code 80877103. */
const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

const WILL_SPEAK_TLS = 0x53; // "S"
const WILL_NOT_SPEAK_TLS = 0x4e; // "N"

/** Where to connect, and how long to try. */
export interface PostgresEndpoint {
  readonly host: string;
  readonly port: number;
  /** Gives up on the TCP connection, the SSLRequest and the TLS handshake together after this long. */
  readonly connectTimeoutMs: number;
}

/**
 * Opens a TCP connection, asks the server for TLS, and returns the socket once the handshake has checked
 * the certificate as `tls.mode` says. postgres.js then speaks the protocol over it (its `socket` option).
 *
 * @throws {Error} when the server refuses TLS, the certificate fails the check, or the time runs out; the
 *   message says which, and names the sslmode.
 */
export function openPostgresTlsSocket(
  endpoint: PostgresEndpoint,
  options: PostgresTlsOptions,
): Promise<tls.TLSSocket> {
  if (options.mode === "disable") {
    return Promise.reject(new RangeError('Cannot open a TLS socket with sslmode "disable"'));
  }
  const { promise, resolve, reject } = Promise.withResolvers<tls.TLSSocket>();
  const mode = `sslmode ${options.mode}`;
  const raw = net.connect({ host: endpoint.host, port: endpoint.port });
  let secure: tls.TLSSocket | undefined;
  const fail = (message: string, cause?: unknown) => {
    clearTimeout(timer);
    raw.off("error", onRawError).off("close", onRawClose).off("data", onAnswer);
    (secure ?? raw).destroy();
    reject(new Error(message, cause === undefined ? undefined : { cause }));
  };
  const timer = setTimeout(
    () => fail(`TLS negotiation timed out after ${endpoint.connectTimeoutMs} ms (${mode})`),
    endpoint.connectTimeoutMs,
  );
  const onRawError = (e: Error) => fail(e.message, e);
  const onRawClose = () => fail(`the server closed the connection before TLS was set up (${mode})`);
  const onAnswer = (answer: Uint8Array) => {
    raw.off("data", onAnswer);
    if (answer[0] === WILL_NOT_SPEAK_TLS) {
      return fail(
        `the server does not accept TLS connections (it answered the SSLRequest with "N"), and ` +
          `${mode} never falls back to plain text`,
      );
    }
    if (answer[0] !== WILL_SPEAK_TLS) {
      return fail(`the server did not answer the SSLRequest (${mode}); is this PostgreSQL?`);
    }
    if (answer.length > 1) {
      // CVE-2021-23222: plain text slipped in before the handshake would be read as the server's.
      return fail(`the server sent unencrypted data before the TLS handshake (${mode})`);
    }
    const socket = tls.connect({ socket: raw, ...checksOf(endpoint.host, options) });
    secure = socket;
    const onHandshakeError = (e: Error) => fail(`TLS handshake failed (${mode}): ${e.message}`, e);
    socket.once("error", onHandshakeError);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      raw.off("error", onRawError).off("close", onRawClose);
      socket.off("error", onHandshakeError);
      resolve(socket);
    });
  };
  raw.once("error", onRawError);
  raw.once("close", onRawClose);
  raw.once("connect", () => raw.write(SSL_REQUEST));
  raw.on("data", onAnswer);
  return promise;
}

/** The `tls.connect` options that check the certificate as the mode says. */
function checksOf(host: string, options: PostgresTlsOptions): tls.ConnectionOptions {
  const name = options.serverName ?? host;
  // SNI carries host names only; the identity check below uses `host` for an IP address.
  const sni = net.isIP(name) === 0 ? { servername: name } : {};
  const ca = options.ca === undefined
    ? {}
    : { ca: typeof options.ca === "string" ? options.ca : [...options.ca] };
  switch (options.mode) {
    case "verify-full":
      return { ...sni, host: name, ...ca, rejectUnauthorized: true };
    case "verify-ca":
      return { ...sni, ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    default:
      return { ...sni, rejectUnauthorized: false };
  }
}
