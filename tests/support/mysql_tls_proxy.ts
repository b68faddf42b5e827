/**
 * A TLS-terminating proxy in front of the local MariaDB, which itself has no TLS, for tests of verified
 * TLS. MySQL upgrades to TLS inside its handshake, so the proxy takes part in it:
 *
 * 1. it forwards the server's greeting with the `CLIENT_SSL` capability (0x800) set;
 * 2. the client answers with an SSLRequest (sequence id 1, 32 bytes) and starts TLS; the proxy is the TLS
 *    server, with a certificate of a throw-away CA (`makeTestCertificates()`);
 * 3. the client's HandshakeResponse (sequence id 2, inside TLS) goes to the server with `CLIENT_SSL`
 *    cleared and sequence id 1; until the server's OK or ERR ends the connection phase, sequence ids are
 *    shifted by one in both directions (client to server minus one, server to client plus one);
 * 4. after that, packets pass through unchanged.
 *
 * A client that answers the greeting without asking for TLS gets an ERR packet, as from a server with
 * `require_secure_transport`.
 *
 * @module
 */
import net from "node:net";
import type { Readable, Writable } from "node:stream";
import tls from "node:tls";
import { MYSQL } from "./services.ts";

/** What the proxy serves with. */
export interface MysqlTlsProxyOptions {
  /** The server certificate (chain) and key, PEM. */
  readonly cert: string;
  readonly key: string;
  /** Where the real server is; the local MariaDB by default. */
  readonly upstream?: { readonly host: string; readonly port: number };
}

/** One client connection the proxy accepted. */
export interface MysqlTlsProxyConnection {
  /** Whether the client asked for TLS. */
  askedForTls: boolean;
  /** The TLS protocol negotiated (`TLSv1.3`), or null while the handshake has not finished. */
  tls: string | null;
  /** The SNI name the client sent, or null. */
  serverName: string | null;
  /** Whether the server accepted the login (its OK ended the connection phase). */
  loggedIn: boolean;
}

/** A running proxy. */
export interface MysqlTlsProxy extends AsyncDisposable {
  readonly port: number;
  /** Every connection accepted, in order. */
  readonly connections: readonly MysqlTlsProxyConnection[];
  close(): Promise<void>;
}

/** The `CLIENT_SSL` capability flag. */
const CLIENT_SSL = 0x800;

/** One MySQL packet. */
interface Packet {
  readonly sequenceId: number;
  readonly payload: Buffer;
}

/** Starts the proxy on 127.0.0.1 and a free port. */
export async function startMysqlTlsProxy(options: MysqlTlsProxyOptions): Promise<MysqlTlsProxy> {
  const upstream = options.upstream ?? { host: MYSQL.host, port: MYSQL.port };
  const context = tls.createSecureContext({ cert: options.cert, key: options.key });
  const connections: MysqlTlsProxyConnection[] = [];
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    const info: MysqlTlsProxyConnection = {
      askedForTls: false,
      tls: null,
      serverName: null,
      loggedIn: false,
    };
    connections.push(info);
    const real = net.connect(upstream.port, upstream.host);
    track(real);
    const closeBoth = () => {
      client.destroy();
      real.destroy();
    };
    client.on("close", () => real.destroy());
    real.on("close", () => client.destroy());
    proxyConnection(client, real, context, info).catch(closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, connections, close, [Symbol.asyncDispose]: close };
}

/** Runs the connection phase as the module comment says, then pipes both ways. */
async function proxyConnection(
  client: net.Socket,
  real: net.Socket,
  context: tls.SecureContext,
  info: MysqlTlsProxyConnection,
): Promise<void> {
  const greeting = await readPacket(real);
  writePacket(client, greeting.sequenceId, withTlsOffered(greeting.payload));
  const request = await readPacket(client);
  if (request.payload.length !== 32 || (request.payload.readUInt32LE(0) & CLIENT_SSL) === 0) {
    writePacket(client, request.sequenceId + 1, errPacket("the test proxy accepts TLS only"));
    client.end();
    real.destroy();
    return;
  }
  info.askedForTls = true;
  const secure = new tls.TLSSocket(client, { isServer: true, secureContext: context });
  secure.on("error", () => client.destroy());
  client.on("close", () => secure.destroy());
  await new Promise<void>((resolve) => secure.once("secure", resolve));
  info.tls = secure.getProtocol() || null;
  const sni = (secure as tls.TLSSocket & { servername?: unknown }).servername;
  info.serverName = typeof sni === "string" ? sni : null;

  let connectionPhase = true;
  const fromClient = async () => {
    while (connectionPhase) {
      const packet = await readPacket(secure);
      if (!connectionPhase) {
        writePacket(real, packet.sequenceId, packet.payload);
        break;
      }
      const payload = Buffer.from(packet.payload);
      // The HandshakeResponse still says CLIENT_SSL; the real server has no TLS.
      if (packet.sequenceId === 2) payload.writeUInt32LE(payload.readUInt32LE(0) & ~CLIENT_SSL, 0);
      writePacket(real, packet.sequenceId - 1, payload);
    }
    secure.pipe(real);
  };
  const fromServer = async () => {
    while (connectionPhase) {
      const packet = await readPacket(real);
      const first = packet.payload[0];
      if (first === 0x00 || first === 0xff) {
        connectionPhase = false;
        info.loggedIn = first === 0x00;
      }
      writePacket(secure, packet.sequenceId + 1, packet.payload);
    }
    real.pipe(secure);
  };
  await Promise.all([fromClient(), fromServer()]);
}

/** The greeting's payload with `CLIENT_SSL` set in its lower capability flags. */
function withTlsOffered(greeting: Buffer): Buffer {
  const payload = Buffer.from(greeting);
  // protocol version (1), server version (NUL-terminated), connection id (4), scramble (8), filler (1)
  const flags = payload.indexOf(0, 1) + 1 + 4 + 8 + 1;
  payload.writeUInt16LE(payload.readUInt16LE(flags) | CLIENT_SSL, flags);
  return payload;
}

/** An ERR packet (`ER_SECURE_TRANSPORT_REQUIRED`). */
function errPacket(message: string): Buffer {
  const head = Buffer.alloc(3);
  head[0] = 0xff;
  head.writeUInt16LE(3159, 1);
  return Buffer.concat([head, Buffer.from(`#HY000${message}`)]);
}

async function readPacket(stream: Readable): Promise<Packet> {
  const header = await readExactly(stream, 4);
  const length = header.readUIntLE(0, 3);
  return {
    sequenceId: header[3]!,
    payload: length === 0 ? Buffer.alloc(0) : await readExactly(stream, length),
  };
}

function writePacket(stream: Writable, sequenceId: number, payload: Buffer): void {
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = sequenceId & 0xff;
  stream.write(Buffer.concat([header, payload]));
}

/** Reads exactly `n` bytes in paused mode, so whatever follows stays in the stream. */
function readExactly(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const chunk: Buffer | null = stream.read(n);
      if (chunk === null) return;
      done();
      if (chunk.length < n) reject(new Error("The stream ended in the middle of a packet"));
      else resolve(chunk);
    };
    const ended = () => {
      done();
      reject(new Error("The stream ended"));
    };
    const done = () => {
      stream.off("readable", attempt);
      stream.off("end", ended);
      stream.off("close", ended);
    };
    stream.on("readable", attempt);
    stream.on("end", ended);
    stream.on("close", ended);
    attempt();
  });
}
