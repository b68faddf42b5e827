/**
 * A TLS-terminating proxy in front of the local PostgreSQL, which itself has no TLS: tests of verified
 * TLS connect to the proxy, which answers the SSLRequest with `S`, does the TLS handshake as the server
 * with a certificate of a throw-away CA (`makeTestCertificates()`), and pipes the decrypted stream to
 * the real server in plain text. A client that does not ask for TLS gets PostgreSQL's refusal, as from a
 * server whose `pg_hba.conf` allows `hostssl` only.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { POSTGRES } from "./services.ts";

/** What the proxy serves with. */
export interface PostgresTlsProxyOptions {
  /** The server certificate (chain) and key, PEM. */
  readonly cert: string;
  readonly key: string;
  /** Where the real server is; the local PostgreSQL by default. */
  readonly upstream?: { readonly host: string; readonly port: number };
  /** Bytes sent straight after the `S` answer, in the same packet (a machine in the middle's trick). */
  readonly injectAfterAnswer?: Uint8Array;
}

/** One client connection the proxy accepted. */
export interface PostgresTlsProxyConnection {
  /** The TLS protocol negotiated (`TLSv1.3`), or null while the handshake has not finished. */
  tls: string | null;
  /** The SNI name the client sent, or null. */
  serverName: string | null;
  /** Whether the client asked for TLS at all. */
  askedForTls: boolean;
}

/** A running proxy. */
export interface PostgresTlsProxy extends AsyncDisposable {
  readonly port: number;
  /** Every connection accepted, in order. */
  readonly connections: readonly PostgresTlsProxyConnection[];
  close(): Promise<void>;
}

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;

/** Starts the proxy on 127.0.0.1 and a free port. */
export async function startPostgresTlsProxy(
  options: PostgresTlsProxyOptions,
): Promise<PostgresTlsProxy> {
  const upstream = options.upstream ?? { host: POSTGRES.host, port: POSTGRES.port };
  const context = tls.createSecureContext({ cert: options.cert, key: options.key });
  const connections: PostgresTlsProxyConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    const info: PostgresTlsProxyConnection = { tls: null, serverName: null, askedForTls: false };
    connections.push(info);
    readRequest(client, (code) => {
      if (code === GSSENC_REQUEST_CODE) return "again"; // answered "N", as by a server without GSSAPI
      if (code !== SSL_REQUEST_CODE) {
        client.end(fatal("28000", "the test proxy accepts TLS connections only"));
        return "done";
      }
      info.askedForTls = true;
      client.write(
        options.injectAfterAnswer === undefined
          ? "S"
          : Buffer.concat([Buffer.from("S"), options.injectAfterAnswer]),
      );
      const secure = new tls.TLSSocket(client, { isServer: true, secureContext: context });
      secure.on("error", () => client.destroy());
      secure.once("secure", () => {
        info.tls = secure.getProtocol() || null;
        const sni = (secure as tls.TLSSocket & { servername?: unknown }).servername;
        info.serverName = typeof sni === "string" ? sni : null;
        const server = net.connect(upstream.port, upstream.host);
        sockets.add(server);
        server.on("close", () => {
          sockets.delete(server);
          secure.destroy();
        });
        server.on("error", () => secure.destroy());
        secure.on("close", () => server.destroy());
        secure.pipe(server);
        server.pipe(secure);
      });
      return "done";
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, connections, close, [Symbol.asyncDispose]: close };
}

/**
 * Reads the client's first 8-byte request (length, code) and hands its code to `handle`; `"again"`
 * answers `N` and reads the next one. Anything after it stays in the socket for TLS to read.
 */
function readRequest(client: net.Socket, handle: (code: number) => "again" | "done"): void {
  const attempt = () => {
    const head: Buffer | null = client.read(8);
    if (head === null) return;
    client.off("readable", attempt);
    if (handle(head.readUInt32BE(4)) === "again") {
      client.write("N");
      readRequest(client, handle);
    }
  };
  client.on("readable", attempt);
  attempt();
}

/** A FATAL ErrorResponse message. */
function fatal(sqlstate: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${sqlstate}\0M${message}\0\0`);
  const header = Buffer.alloc(5);
  header.write("E", 0);
  header.writeUInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}
