/**
 * A fake SQL Server for testing the SQL Server adapter through the real `tedious` client, with no SQL
 * Server. It speaks TDS 7.4 (PRELOGIN, LOGIN7 with a password check, SQL batches, ATTENTION) and answers the
 * adapter's exact queries from an in-memory catalogue, matched by the SQL text. It tests our protocol
 * handling and type mapping, not T-SQL semantics: it is not "SQL Server testing" (that is
 * `tests/containers/mssql_container_test.ts`, against the real server, where Docker runs).
 *
 * **Values.** Tables hold values as SQL Server stores them for each column's declared type (see
 * {@link FakeValue}). For a data query the fake evaluates each select-list expression of the adapter itself
 * (`CONVERT` with its styles, `CAST`, `SWITCHOFFSET`, `LOWER`, and the value guard's `CASE WHEN ... > n
 * THEN ... ELSE ... END`, `DATALENGTH`, `N'...'`, `+`, `*` and `/`, with error 245 for a string that is
 * not an `int`) and sends the result with the TDS type SQL
 * Server would use for that expression: fixed-length integer/bit/float types for NOT NULL columns and their
 * nullable `…N` variants, `varchar(n)`/`char(n)` with a Latin1 collation for CONVERT results, `nvarchar`, and
 * PLP (partially length-prefixed, chunked) values for `varchar(max)`/`nvarchar(max)`. An expression or value
 * it does not emulate is an error, never a guess; a stored value that SQL Server would have rounded on
 * insert (seven fraction digits in a `datetime2(3)`, a scale-3 value in a `decimal(6,2)`) is refused too.
 *
 * **Streaming.** Rows are produced lazily from any iterable and sent in 4 KiB packets as the socket drains,
 * so a table can be millions of generated rows; an ATTENTION stops the stream and is acknowledged.
 *
 * **TLS.** `tls: { mode: "tds7" }` negotiates TLS the TDS 7.x way (the TLS handshake travels inside PRELOGIN
 * packets, then everything is TLS 1.2 on the bare connection), as SQL Server does for `encrypt: true`;
 * `mode: "strict"` is TDS 8.0 (TLS from the first byte, ALPN `tds/8.0`), as for `encrypt: "strict"`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import { Duplex, type Writable } from "node:stream";
import tls from "node:tls";
import { civilFromDays, daysFromCivil } from "../../domain/civil_date.ts";

/**
 * A stored value, by the column's declared type:
 *
 * - `tinyint`..`bigint`: a number, a bigint or a string of digits;
 * - `bit`: a boolean (or 0/1);
 * - `float`, `real`: a number (a `real` is rounded to 32 bits, as on insert);
 * - `decimal`/`numeric`/`money`/`smallmoney`: decimal text with at most the column's scale;
 * - `date` `YYYY-MM-DD`; `time` `HH:MM:SS[.f…]`; `datetime2`, `datetime`, `smalldatetime`
 *   `YYYY-MM-DD HH:MM:SS[.f…]`; `datetimeoffset` the same followed by an offset, `+00`, `+02`, `-05:30` or
 *   ` +05:30`;
 * - `uniqueidentifier`: 36 hex digits with hyphens, either case;
 * - `binary`/`varbinary`: bytes, or canonical `\x…` text;
 * - character types, `xml`, `json`, `sql_variant`: a string.
 */
export type FakeValue = string | number | bigint | boolean | Uint8Array | null;

/** A column of a fake table; its `INFORMATION_SCHEMA.COLUMNS` facts are derived from `type`. */
export interface FakeColumn {
  readonly name: string;
  /** The declared type as DDL writes it: `int`, `nvarchar(max)`, `decimal(38,10)`, `datetime2(7)`, ... */
  readonly type: string;
  readonly nullable: boolean;
  readonly description?: string;
}

/** A table or view of a fake schema. */
export interface FakeTable {
  readonly name: string;
  readonly kind: "BASE TABLE" | "VIEW";
  readonly description?: string;
  readonly primaryKey: readonly string[];
  readonly columns: readonly FakeColumn[];
  /**
   * Rows as stored, one value per column. Any iterable that can be iterated again (an array, or an object
   * whose `[Symbol.iterator]` makes a fresh generator), so large tables can be generated row by row.
   */
  readonly rows: Iterable<readonly FakeValue[]>;
}

/** A fake schema. */
export interface FakeSchema {
  readonly name: string;
  readonly description?: string;
  readonly tables: readonly FakeTable[];
}

/** How the fake encrypts connections. */
export interface FakeTdsTls {
  /**
   * `"tds7"`: TLS 1.2 negotiated after PRELOGIN (`encrypt: true` clients; others are told encryption is
   * required). `"strict"`: TDS 8.0, TLS from the first byte with ALPN `tds/8.0` (`encrypt: "strict"`).
   */
  readonly mode: "tds7" | "strict";
  /** The server certificate (chain), PEM. */
  readonly cert: string;
  /** Its private key, PEM. */
  readonly key: string;
}

/** What the fake server knows. */
export interface FakeTdsOptions {
  readonly userName: string;
  readonly password: string;
  readonly schemas: readonly FakeSchema[];
  /** Encryption; without it the fake answers PRELOGIN with "encryption not supported". */
  readonly tls?: FakeTdsTls;
  /** Bytes per PLP chunk of `(max)` values (default 8,000); odd sizes split UTF-16 code units. */
  readonly plpChunkBytes?: number;
}

/** What one client connection negotiated. */
export interface FakeTdsConnection {
  /** The TLS protocol (`TLSv1.2`, `TLSv1.3`), or null for a plain connection. */
  readonly tls: string | null;
  /** The ALPN protocol the client chose (`tds/8.0` in strict mode), or null. */
  readonly alpn: string | null;
  /** Whether LOGIN7 succeeded. */
  readonly loggedIn: boolean;
}

/** A running fake server. */
export interface FakeTdsServer extends AsyncDisposable {
  readonly port: number;
  /** Every SQL batch received, in order (tedious' own SET batch included). */
  readonly batches: string[];
  /** Every connection accepted, in order. */
  readonly connections: readonly FakeTdsConnection[];
  close(): Promise<void>;
}

/** A SQL Server error, sent as an ERROR token. */
class SqlError extends Error {
  constructor(readonly number: number, message: string, readonly severity = 16) {
    super(message);
  }
}

/** Starts a fake server on 127.0.0.1 and a free port. */
export async function startFakeTdsServer(options: FakeTdsOptions): Promise<FakeTdsServer> {
  const batches: string[] = [];
  const connections: FakeTdsConnection[] = [];
  const sockets = new Set<net.Socket>();
  const context = { options, batches };
  function track(socket: net.Socket): void {
    // Responses are written as whole packets; Nagle would only hold back the last one.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  }
  let server: net.Server;
  const tlsOptions = options.tls;
  if (tlsOptions?.mode === "strict") {
    server = tls.createServer(
      { key: tlsOptions.key, cert: tlsOptions.cert, ALPNProtocols: ["tds/8.0"] },
      (socket) => {
        const info = {
          tls: socket.getProtocol() ?? null,
          alpn: typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : null,
          loggedIn: false,
        };
        connections.push(info);
        track(socket);
        new Session(context, socket, info).start();
      },
    );
    // A client that refuses the certificate aborts the handshake; that is not the server's failure.
    server.on("tlsClientError", () => {});
  } else {
    server = net.createServer((socket) => {
      const info = { tls: null, alpn: null, loggedIn: false };
      connections.push(info);
      track(socket);
      new Session(context, socket, info).start();
    });
  }
  server.on("connection", (socket: net.Socket) => track(socket));

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return { port, batches, connections, close, [Symbol.asyncDispose]: close };
}

// ---------------------------------------------------------------------------------------------------------
// Connections

interface SessionContext {
  readonly options: FakeTdsOptions;
  readonly batches: string[];
}

const PACKET_SIZE = 4096;
const PAYLOAD_SIZE = PACKET_SIZE - 8;
/** Rows are encoded into a buffer and sent once it holds this much. */
const FLUSH_BYTES = 32 * 1024;

/** One client connection: packet reassembly, the TLS switch of TDS 7.x, and one request at a time. */
class Session {
  readonly #context: SessionContext;
  readonly #socket: net.Socket;
  readonly #info: { tls: string | null; alpn: string | null; loggedIn: boolean };
  /** Where responses go: the socket, or the cleartext side of TLS once negotiated. */
  #out: Writable;
  #pending: Buffer = Buffer.alloc(0);
  #message: Buffer[] = [];
  #work: Promise<void> = Promise.resolve();
  #streaming = false;
  #attention = false;
  #handshake: TlsHandshake | undefined;

  constructor(
    context: SessionContext,
    socket: net.Socket,
    info: { tls: string | null; alpn: string | null; loggedIn: boolean },
  ) {
    this.#context = context;
    this.#socket = socket;
    this.#info = info;
    this.#out = socket;
  }

  start(): void {
    this.#socket.on("data", (chunk: Buffer) => {
      if (this.#handshake?.raw === true) this.#handshake.fromClient(chunk);
      else this.#receive(chunk);
    });
  }

  /** Reassembles TDS packets into messages. */
  #receive(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 8) {
      const length = this.#pending.readUInt16BE(2);
      if (this.#pending.length < length) break;
      const type = this.#pending[0]!;
      const last = (this.#pending[1]! & 1) === 1;
      this.#message.push(this.#pending.subarray(8, length));
      this.#pending = this.#pending.subarray(length);
      if (!last) continue;
      const payload = Buffer.concat(this.#message);
      this.#message = [];
      this.#dispatch(type, payload);
    }
  }

  #dispatch(type: number, payload: Buffer): void {
    if (type === 0x06) { // ATTENTION: stop the stream in progress, or acknowledge at once
      if (this.#streaming) this.#attention = true;
      else this.#enqueue(() => this.#send(done(0, DONE_ATTN)));
      return;
    }
    if (type === 0x12 && this.#handshake !== undefined) {
      this.#handshake.fromClient(payload);
      return;
    }
    this.#enqueue(() => this.#handle(type, payload));
  }

  #enqueue(task: () => Promise<void>): void {
    this.#work = this.#work.then(task).catch(() => {
      this.#socket.destroy();
    });
  }

  async #handle(type: number, payload: Buffer): Promise<void> {
    const { options, batches } = this.#context;
    switch (type) {
      case 0x12: // PRELOGIN
        return await this.#prelogin(payload);
      case 0x10: { // LOGIN7
        const { userName, password } = parseLogin7(payload);
        if (userName !== options.userName || password !== options.password) {
          const error = new SqlError(18456, `Login failed for user '${userName}'.`, 14);
          return await this.#send(Buffer.concat([errorToken(error), done(0, DONE_ERROR)]));
        }
        this.#info.loggedIn = true;
        return await this.#send(Buffer.concat([loginAck(), done(0, 0)]));
      }
      case 0x01: { // SQL batch: skip ALL_HEADERS
        const sql = payload.subarray(payload.readUInt32LE(0)).toString("ucs2");
        batches.push(sql);
        let result: ResultSet | undefined;
        try {
          result = answer(options.schemas, sql);
        } catch (e) {
          return await this.#send(Buffer.concat([errorToken(asSqlError(e)), done(0, DONE_ERROR)]));
        }
        if (result === undefined) return await this.#send(done(0, 0));
        return await this.#stream(result);
      }
      default: {
        const error = new SqlError(
          50000,
          `The fake TDS server answers SQL batches only (type ${type})`,
        );
        return await this.#send(Buffer.concat([errorToken(error), done(0, DONE_ERROR)]));
      }
    }
  }

  async #prelogin(payload: Buffer): Promise<void> {
    const mode = this.#context.options.tls?.mode;
    // The client's ENCRYPTION option: ON (1) or REQ (3) means it wants TLS.
    const wants = [1, 3].includes(preloginOption(payload, 0x01)?.[0] ?? 2);
    let encryption = 0x02; // ENCRYPT_NOT_SUP
    if (mode === "tds7") encryption = wants ? 0x01 : 0x03; // ON, or REQ for a client that cannot
    if (mode === "strict") encryption = 0x00; // already inside TLS
    await this.#send(
      Buffer.from([0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xff, 16, 0, 0, 0, 0, 0, encryption]),
      0x04,
    );
    if (mode === "tds7" && wants) this.#startTls();
  }

  /** TDS 7.x: the TLS handshake travels in PRELOGIN packets, then TLS runs on the bare connection. */
  #startTls(): void {
    const { cert, key } = this.#context.options.tls!;
    const [encrypted, inner] = duplexPair();
    const secure = new tls.TLSSocket(inner, {
      isServer: true,
      secureContext: tls.createSecureContext({ cert, key, maxVersion: "TLSv1.2" }),
    });
    secure.on("error", () => this.#socket.destroy());
    const handshake = new TlsHandshake(encrypted, (flight, last, after) => {
      // One PRELOGIN message answers each PRELOGIN message of the client (tedious waits for it).
      const socket = this.#socket;
      this.#enqueue(() => this.#send(flight, 0x12, socket));
      if (last) {
        handshake.raw = true;
        this.#enqueue(() => {
          if (after.length > 0) socket.write(after);
          return Promise.resolve();
        });
        encrypted.on("data", (chunk: Buffer) => socket.write(chunk));
        // From now on TDS packets arrive inside TLS.
        this.#pending = Buffer.alloc(0);
        this.#out = secure;
        this.#info.tls = "TLSv1.2";
        secure.on("data", (chunk: Buffer) => this.#receive(chunk));
      }
    });
    this.#handshake = handshake;
    secure.on("secure", () => {
      this.#info.tls = secure.getProtocol() ?? this.#info.tls;
    });
  }

  /** Sends a whole message. */
  async #send(payload: Buffer, type = 0x04, out: Writable = this.#out): Promise<void> {
    const writer = new MessageWriter(out, type);
    writer.bytes(payload);
    await writer.end();
  }

  /** Streams a result set row by row; stops early on ATTENTION or a value it cannot send. */
  async #stream(result: ResultSet): Promise<void> {
    const writer = new MessageWriter(this.#out, 0x04);
    this.#streaming = true;
    try {
      writeColumnMetadata(writer, result.columns);
      let count = 0;
      let mark = writer.length;
      const chunk = this.#context.options.plpChunkBytes ?? 8000;
      try {
        for (const row of result.rows) {
          if (this.#attention || this.#socket.destroyed) break;
          mark = writer.length;
          writer.u8(0xd1);
          for (let i = 0; i < result.columns.length; i++) {
            writeValue(writer, result.columns[i]!.wire, row[i] ?? null, chunk);
          }
          count++;
          if (writer.length >= FLUSH_BYTES) await writer.flush();
        }
      } catch (e) {
        // SQL Server reports a conversion error in the middle of a result the same way.
        writer.truncate(mark);
        writer.bytes(Buffer.concat([errorToken(asSqlError(e)), done(count, DONE_ERROR)]));
        await writer.end();
        return;
      }
      if (this.#attention) {
        this.#attention = false;
        writer.bytes(done(0, DONE_ATTN));
      } else {
        writer.bytes(done(count, DONE_COUNT));
      }
      await writer.end();
    } finally {
      this.#streaming = false;
    }
    // An ATTENTION that arrived as the last rows went out is still owed its acknowledgement.
    if (this.#attention) {
      this.#attention = false;
      await this.#send(done(0, DONE_ATTN));
    }
  }
}

/**
 * The server side of a TDS 7.x TLS handshake: client records go into `encrypted`, and the server's
 * records come back out; they are forwarded one flight at a time, a flight being everything the server
 * says in answer to one client message (for TLS 1.2: ServerHello … ServerHelloDone, then ChangeCipherSpec
 * + Finished).
 */
class TlsHandshake {
  /** Set once the handshake is over: bytes are then TLS records on the bare connection. */
  raw = false;
  readonly #encrypted: Duplex;
  #records: Buffer = Buffer.alloc(0);
  #flight: Buffer[] = [];
  #handshakeBytes: Buffer = Buffer.alloc(0);
  #changedCipher = false;

  constructor(
    encrypted: Duplex,
    onFlight: (flight: Buffer, last: boolean, after: Buffer) => void,
  ) {
    this.#encrypted = encrypted;
    const onData = (chunk: Buffer) => {
      this.#records = Buffer.concat([this.#records, chunk]);
      while (this.#records.length >= 5) {
        const length = 5 + this.#records.readUInt16BE(3);
        if (this.#records.length < length) break;
        const record = this.#records.subarray(0, length);
        this.#records = this.#records.subarray(length);
        this.#flight.push(record);
        const end = this.#endsFlight(record);
        if (end === "none") continue;
        const flight = Buffer.concat(this.#flight);
        this.#flight = [];
        if (end === "last") {
          encrypted.off("data", onData);
          // Anything after the handshake (none in TLS 1.2) already belongs to the bare connection.
          onFlight(flight, true, this.#records);
          return;
        }
        onFlight(flight, false, Buffer.alloc(0));
      }
    };
    encrypted.on("data", onData);
  }

  fromClient(bytes: Buffer): void {
    this.#encrypted.write(bytes);
  }

  #endsFlight(record: Buffer): "none" | "flight" | "last" {
    const type = record[0];
    if (type === 0x15) return "last"; // an alert: the handshake failed
    if (type === 0x14) {
      this.#changedCipher = true;
      return "none";
    }
    if (type !== 0x16) return "none";
    if (this.#changedCipher) return "last"; // the encrypted Finished
    // Plain handshake messages: the first flight ends with ServerHelloDone (type 14).
    this.#handshakeBytes = Buffer.concat([this.#handshakeBytes, record.subarray(5)]);
    let ended = false;
    while (this.#handshakeBytes.length >= 4) {
      const length = 4 + this.#handshakeBytes.readUIntBE(1, 3);
      if (this.#handshakeBytes.length < length) break;
      if (this.#handshakeBytes[0] === 14) ended = true;
      this.#handshakeBytes = this.#handshakeBytes.subarray(length);
    }
    return ended ? "flight" : "none";
  }
}

/** Two connected in-memory duplex streams. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const end = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        other().push(chunk);
        callback();
      },
      final(callback) {
        other().push(null);
        callback();
      },
    });
  ends.push(end(() => ends[1]!), end(() => ends[0]!));
  return [ends[0]!, ends[1]!];
}

/** Builds one response message and sends it in packets, waiting while the socket is saturated. */
class MessageWriter {
  readonly #out: Writable;
  readonly #type: number;
  #buffer = Buffer.allocUnsafe(64 * 1024);
  #length = 0;
  #packetId = 1;

  constructor(out: Writable, type: number) {
    this.#out = out;
    this.#type = type;
  }

  get length(): number {
    return this.#length;
  }

  /** Drops what was written after `length` (a row that could not be finished). */
  truncate(length: number): void {
    this.#length = Math.min(this.#length, length);
  }

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#length + bytes));
    this.#buffer.copy(bigger, 0, 0, this.#length);
    this.#buffer = bigger;
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  u16(value: number): void {
    this.#reserve(2);
    this.#length = this.#buffer.writeUInt16LE(value, this.#length);
  }

  u32(value: number): void {
    this.#reserve(4);
    this.#length = this.#buffer.writeUInt32LE(value, this.#length);
  }

  u64(value: bigint): void {
    this.#reserve(8);
    this.#length = this.#buffer.writeBigUInt64LE(value, this.#length);
  }

  i8(value: number): void {
    this.#reserve(1);
    this.#length = this.#buffer.writeUInt8(value, this.#length);
  }

  i16(value: number): void {
    this.#reserve(2);
    this.#length = this.#buffer.writeInt16LE(value, this.#length);
  }

  i32(value: number): void {
    this.#reserve(4);
    this.#length = this.#buffer.writeInt32LE(value, this.#length);
  }

  i64(value: bigint): void {
    this.#reserve(8);
    this.#length = this.#buffer.writeBigInt64LE(value, this.#length);
  }

  f32(value: number): void {
    this.#reserve(4);
    this.#length = this.#buffer.writeFloatLE(value, this.#length);
  }

  f64(value: number): void {
    this.#reserve(8);
    this.#length = this.#buffer.writeDoubleLE(value, this.#length);
  }

  bytes(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#buffer.set(value, this.#length);
    this.#length += value.length;
  }

  /** UTF-16LE code units, two bytes each (unpaired surrogates included). */
  ucs2(value: string): void {
    this.#reserve(value.length * 2);
    const buffer = this.#buffer;
    let at = this.#length;
    // A plain loop: Deno's Buffer#write is several times slower for the short strings of a row.
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      buffer[at++] = code & 0xff;
      buffer[at++] = code >> 8;
    }
    this.#length = at;
  }

  /** One byte per character, refusing anything but ASCII (the fake's varchar code page agrees there). */
  ascii(value: string): void {
    this.#reserve(value.length);
    const buffer = this.#buffer;
    let at = this.#length;
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) {
        throw new SqlError(50000, "The fake TDS server sends only ASCII in varchar values");
      }
      buffer[at++] = code;
    }
    this.#length = at;
  }

  /**
   * A PLP value: the total length, then chunks of at most `chunk` bytes, then a zero-length chunk. The
   * bytes are written whole first, then moved apart for the chunk headers.
   */
  plp(value: string, wide: boolean, chunk: number): void {
    const bytes = wide ? value.length * 2 : value.length;
    const chunks = Math.ceil(bytes / chunk);
    this.#reserve(8 + bytes + chunks * 4 + 4);
    this.#length = this.#buffer.writeUInt32LE(bytes % 0x1_0000_0000, this.#length);
    this.#length = this.#buffer.writeUInt32LE(Math.floor(bytes / 0x1_0000_0000), this.#length);
    const start = this.#length;
    if (wide) this.ucs2(value);
    else this.ascii(value);
    // Move the chunks apart from the last one back, writing each header in front of its chunk.
    const end = start + bytes + chunks * 4;
    for (let c = chunks - 1; c >= 0; c--) {
      const from = start + c * chunk;
      const size = Math.min(chunk, bytes - c * chunk);
      const to = start + c * (chunk + 4) + 4;
      this.#buffer.copyWithin(to, from, from + size);
      this.#buffer.writeUInt32LE(size, to - 4);
    }
    this.#length = this.#buffer.writeUInt32LE(0, end);
  }

  /** Sends every full packet, keeping the rest. */
  async flush(): Promise<void> {
    const packets = Math.floor(this.#length / PAYLOAD_SIZE);
    if (packets > 0) await this.#write(packets, packets * PAYLOAD_SIZE, false);
  }

  /** Sends the rest, the last packet marked end-of-message. */
  async end(): Promise<void> {
    const packets = Math.max(1, Math.ceil(this.#length / PAYLOAD_SIZE));
    await this.#write(packets, this.#length, true);
  }

  async #write(packets: number, bytes: number, last: boolean): Promise<void> {
    const out = Buffer.allocUnsafe(packets * 8 + bytes);
    let at = 0;
    for (let p = 0, offset = 0; p < packets; p++, offset += PAYLOAD_SIZE) {
      const size = Math.min(PAYLOAD_SIZE, bytes - offset);
      out[at] = this.#type;
      out[at + 1] = last && p === packets - 1 ? 1 : 0;
      out.writeUInt16BE(size + 8, at + 2);
      out.writeUInt16BE(0, at + 4);
      out[at + 6] = this.#packetId++ & 0xff;
      out[at + 7] = 0;
      this.#buffer.copy(out, at + 8, offset, offset + size);
      at += size + 8;
    }
    this.#buffer.copy(this.#buffer, 0, bytes, this.#length);
    this.#length -= bytes;
    if (this.#out.destroyed) return;
    if (!this.#out.write(out)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#out.off("drain", done);
          this.#out.off("close", done);
          resolve();
        };
        this.#out.on("drain", done);
        this.#out.on("close", done);
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Queries

/** How a result column travels. */
type Wire =
  | { readonly kind: "int"; readonly size: 1 | 2 | 4 | 8; readonly nullable: boolean }
  | { readonly kind: "bit"; readonly nullable: boolean }
  | { readonly kind: "float"; readonly size: 4 | 8; readonly nullable: boolean }
  /** `varchar`/`char` (Latin1 collation) or `nvarchar`/`nchar`; `max` is PLP. */
  | {
    readonly kind: "varchar" | "nvarchar";
    readonly length: number | "max";
    readonly fixed: boolean;
    readonly nullable: boolean;
  };

interface ResultColumn {
  readonly name: string;
  readonly wire: Wire;
}

interface ResultSet {
  readonly columns: readonly ResultColumn[];
  readonly rows: Iterable<readonly FakeValue[]>;
}

const INT4: Wire = { kind: "int", size: 4, nullable: true };
const NVARCHAR: Wire = { kind: "nvarchar", length: 4000, fixed: false, nullable: true };

/** The answer to one SQL batch, from the adapter's known query shapes. */
function answer(schemas: readonly FakeSchema[], sql: string): ResultSet | undefined {
  if (/^\s*set /i.test(sql)) return undefined; // tedious' session settings
  if (sql === "SELECT 1 AS ok") {
    return { columns: [{ name: "ok", wire: { ...INT4, nullable: false } }], rows: [[1]] };
  }
  const literal = /N'((?:[^']|'')*)'\s*(?:AND t\.TABLE_TYPE|ORDER BY|$)/.exec(sql)?.[1]
    ?.replaceAll("''", "'");
  // The catalogue's collation is case-insensitive, like SQL Server's default one.
  const schema = literal === undefined
    ? undefined
    : schemas.find((s) => s.name.toLowerCase() === literal.toLowerCase());
  const nv = (name: string): ResultColumn => ({ name, wire: NVARCHAR });
  const int = (name: string): ResultColumn => ({ name, wire: INT4 });
  if (sql.includes("FROM sys.partitions")) return rowEstimates(schemas, sql);
  if (sql.includes("FROM sys.schemas")) {
    return {
      columns: [nv("name"), nv("description")],
      rows: schema === undefined ? [] : [[schema.name, schema.description ?? null]],
    };
  }
  const tables = schema?.tables ?? [];
  if (sql.includes("FROM INFORMATION_SCHEMA.TABLES")) {
    return {
      columns: [nv("TABLE_NAME"), nv("TABLE_TYPE"), nv("description")],
      rows: tables.map((t) => [t.name, t.kind, t.description ?? null]),
    };
  }
  if (sql.includes("FROM INFORMATION_SCHEMA.COLUMNS")) {
    return {
      columns: [
        nv("TABLE_NAME"),
        nv("COLUMN_NAME"),
        nv("DATA_TYPE"),
        nv("IS_NULLABLE"),
        int("CHARACTER_MAXIMUM_LENGTH"),
        int("NUMERIC_PRECISION"),
        int("NUMERIC_SCALE"),
        int("DATETIME_PRECISION"),
        nv("description"),
      ],
      rows: [...tables].sort((a, b) => a.name < b.name ? -1 : 1).flatMap((t) =>
        t.columns.map((c) => {
          const facts = informationSchema(parseType(c.type));
          return [
            t.name,
            c.name,
            facts.dataType,
            c.nullable ? "YES" : "NO",
            facts.maxLength,
            facts.precision,
            facts.scale,
            facts.datetimePrecision,
            c.description ?? null,
          ];
        })
      ),
    };
  }
  if (sql.includes("INFORMATION_SCHEMA.TABLE_CONSTRAINTS")) {
    return {
      columns: [nv("TABLE_NAME"), nv("COLUMN_NAME")],
      rows: tables.flatMap((t) => t.primaryKey.map((k) => [t.name, k])),
    };
  }
  const select = /^SELECT (.*) FROM \[((?:[^\]]|\]\])*)\]\.\[((?:[^\]]|\]\])*)\]$/s.exec(sql);
  if (select !== null) {
    const [, list = "", s = "", t = ""] = select;
    const schemaName = s.replaceAll("]]", "]");
    const tableName = t.replaceAll("]]", "]");
    const table = schemas.find((x) => x.name.toLowerCase() === schemaName.toLowerCase())
      ?.tables.find((x) => x.name.toLowerCase() === tableName.toLowerCase());
    if (table === undefined) {
      throw new SqlError(208, `Invalid object name '${schemaName}.${tableName}'.`);
    }
    return selectFrom(table, list);
  }
  throw new SqlError(102, `Incorrect syntax near '${sql.slice(0, 20)}'.`, 15);
}

/**
 * The answer to `estimateRows`' query: each named base table's exact row count (a real server's
 * `sys.partitions` is exact too once no transaction is open). Names compare case-insensitively, as in
 * SQL Server's default collation; views have no partitions in `sys.tables`.
 */
function rowEstimates(schemas: readonly FakeSchema[], sql: string): ResultSet {
  const literals = (text: string) =>
    [...text.matchAll(/N'((?:[^']|'')*)'/g)].map((m) => m[1]!.replaceAll("''", "'").toLowerCase());
  const [schemaName] = literals(/s\.name = (N'(?:[^']|'')*')/.exec(sql)?.[1] ?? "");
  const names = new Set(literals(/t\.name IN \((.*)\) GROUP BY/s.exec(sql)?.[1] ?? ""));
  const schema = schemas.find((s) => s.name.toLowerCase() === schemaName);
  const tables = (schema?.tables ?? []).filter((t) =>
    t.kind === "BASE TABLE" && names.has(t.name.toLowerCase())
  );
  const count = (rows: Iterable<unknown>) => {
    let n = 0;
    for (const _ of rows) n++;
    return n;
  };
  return {
    columns: [
      { name: "name", wire: NVARCHAR },
      { name: "name", wire: NVARCHAR },
      { name: "row_count", wire: { kind: "int", size: 8, nullable: true } },
    ],
    rows: tables.map((t) => [schema!.name, t.name, BigInt(count(t.rows))]),
  };
}

/** Evaluates the select list `expr AS [c0], expr AS [c1], ...` over a table's rows, lazily. */
function selectFrom(table: FakeTable, list: string): ResultSet {
  const items: { name: string; expression: Compiled; index: number }[] = [];
  const parser = new ExpressionParser(list);
  for (;;) {
    const ast = parser.expression();
    const alias = parser.alias();
    const expression = compile(ast, table);
    items.push({ name: alias, expression, index: expression.column });
    if (!parser.comma()) break;
  }
  parser.end();
  const columns = items.map((item) => ({ name: item.name, wire: item.expression.wire }));
  const convert = items.map((item) => item.expression.evaluate);
  const indexes = items.map((item) => item.index);
  const rows: Iterable<readonly FakeValue[]> = {
    *[Symbol.iterator]() {
      for (const row of table.rows) {
        const out: FakeValue[] = new Array(convert.length);
        for (let i = 0; i < convert.length; i++) {
          const value = row[indexes[i]!] ?? null;
          out[i] = value === null ? null : convert[i]!(value);
        }
        yield out;
      }
    },
  };
  return { columns, rows };
}

// ---------------------------------------------------------------------------------------------------------
// T-SQL types and the expressions the adapter writes

/** A parsed SQL Server type. */
interface SqlType {
  /** Lower-case name; `float(n≤24)` is `real`. */
  readonly name: string;
  /** Length of character and binary types; `max` for `(max)`. */
  readonly length?: number | "max";
  readonly precision?: number;
  readonly scale?: number;
}

function parseType(text: string): SqlType {
  const match = /^\s*([a-z0-9_]+)\s*(?:\(\s*(max|\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$/i.exec(text);
  if (match === null) {
    throw new SqlError(2715, `Column, parameter, or variable: cannot find data type ${text}.`);
  }
  const name = match[1]!.toLowerCase();
  const first = match[2];
  const second = match[3] === undefined ? undefined : Number(match[3]);
  switch (name) {
    case "char":
    case "varchar":
    case "nchar":
    case "nvarchar":
    case "binary":
    case "varbinary":
      return {
        name,
        length: first === undefined ? 1 : first.toLowerCase() === "max" ? "max" : Number(first),
      };
    case "decimal":
    case "numeric":
      return { name, precision: first === undefined ? 18 : Number(first), scale: second ?? 0 };
    case "money":
      return { name, precision: 19, scale: 4 };
    case "smallmoney":
      return { name, precision: 10, scale: 4 };
    case "float":
      return first !== undefined && Number(first) <= 24 ? { name: "real" } : { name };
    case "time":
    case "datetime2":
    case "datetimeoffset":
      return { name, scale: first === undefined ? 7 : Number(first) };
    default:
      return { name };
  }
}

/** What `INFORMATION_SCHEMA.COLUMNS` says about a type. */
function informationSchema(type: SqlType): {
  dataType: string;
  maxLength: number | null;
  precision: number | null;
  scale: number | null;
  datetimePrecision: number | null;
} {
  const facts = {
    dataType: type.name,
    maxLength: null as number | null,
    precision: null as number | null,
    scale: null as number | null,
    datetimePrecision: null as number | null,
  };
  const integer: Record<string, number> = { tinyint: 3, smallint: 5, int: 10, bigint: 19 };
  if (type.length !== undefined) facts.maxLength = type.length === "max" ? -1 : type.length;
  else if (type.name in integer) [facts.precision, facts.scale] = [integer[type.name]!, 0];
  else if (type.precision !== undefined) {
    [facts.precision, facts.scale] = [type.precision, type.scale ?? 0];
  } else if (type.name === "float") facts.precision = 53;
  else if (type.name === "real") facts.precision = 24;
  else if (type.name === "date" || type.name === "smalldatetime") facts.datetimePrecision = 0;
  else if (type.name === "datetime") facts.datetimePrecision = 3;
  else if (type.scale !== undefined) facts.datetimePrecision = type.scale;
  return facts;
}

/** The expressions `mssqlSelectExpression` and the value guards of `mssqlReadQuery` write, parsed. */
type Ast =
  | { readonly op: "column"; readonly name: string }
  | { readonly op: "literal"; readonly text: string; readonly unicode?: boolean }
  | {
    readonly op: "binary";
    readonly operator: "+" | "*" | "/";
    readonly left: Ast;
    readonly right: Ast;
  }
  | {
    readonly op: "case";
    readonly when: Ast;
    readonly above: number;
    readonly then: Ast;
    readonly otherwise: Ast;
  }
  | { readonly op: "number"; readonly value: number }
  | { readonly op: "type"; readonly type: SqlType }
  | { readonly op: "call"; readonly fn: string; readonly args: readonly Ast[] }
  | { readonly op: "cast"; readonly value: Ast; readonly type: SqlType }
  | { readonly op: "method"; readonly target: Ast; readonly method: string };

/** A recursive-descent parser for the select-list subset the adapter uses. */
class ExpressionParser {
  readonly #text: string;
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  /** `term (+ term)*`, where a term is `primary ((* | /) primary)*`: the arithmetic of the guards. */
  expression(): Ast {
    let ast = this.#term();
    while (this.#operator("+")) {
      ast = { op: "binary", operator: "+", left: ast, right: this.#term() };
    }
    return ast;
  }

  #term(): Ast {
    let ast = this.#primary();
    for (;;) {
      if (this.#operator("*")) {
        ast = { op: "binary", operator: "*", left: ast, right: this.#primary() };
      } else if (this.#operator("/")) {
        ast = { op: "binary", operator: "/", left: ast, right: this.#primary() };
      } else return ast;
    }
  }

  #operator(char: string): boolean {
    this.#space();
    if (this.#text[this.#at] !== char) return false;
    this.#at++;
    return true;
  }

  /** `CASE WHEN <expression> > <number> THEN <expression> ELSE <expression> END`, after `CASE`. */
  #case(): Ast {
    this.#keyword("WHEN");
    const when = this.expression();
    if (!this.#operator(">")) this.#fail();
    this.#space();
    const above = this.#primary();
    if (above.op !== "number") this.#fail();
    this.#keyword("THEN");
    const then = this.expression();
    this.#keyword("ELSE");
    const otherwise = this.expression();
    this.#keyword("END");
    return { op: "case", when, above: above.value, then, otherwise };
  }

  #keyword(word: string): void {
    this.#space();
    if (this.#word().toUpperCase() !== word) this.#fail();
  }

  #primary(): Ast {
    this.#space();
    let ast: Ast;
    const unicode = this.#text.startsWith("N'", this.#at);
    if (unicode) this.#at++;
    if (/^CASE\b/i.test(this.#text.slice(this.#at, this.#at + 5))) {
      this.#word();
      return this.#case();
    }
    if (this.#text[this.#at] === "[") {
      ast = { op: "column", name: this.#identifier() };
    } else if (this.#text[this.#at] === "'") {
      const end = this.#text.indexOf("'", this.#at + 1);
      if (end < 0) this.#fail();
      ast = { op: "literal", text: this.#text.slice(this.#at + 1, end), unicode };
      this.#at = end + 1;
    } else if (/[0-9]/.test(this.#text[this.#at] ?? "")) {
      const digits = /^[0-9]+/.exec(this.#text.slice(this.#at))![0];
      this.#at += digits.length;
      ast = { op: "number", value: Number(digits) };
    } else {
      const fn = this.#word().toUpperCase();
      this.#expect("(");
      if (fn === "CAST") {
        const value = this.expression();
        this.#space();
        if (this.#word().toUpperCase() !== "AS") this.#fail();
        ast = { op: "cast", value, type: this.#type() };
      } else if (fn === "CONVERT") {
        const type: Ast = { op: "type", type: this.#type() };
        const args: Ast[] = [type];
        while (this.comma()) args.push(this.expression());
        ast = { op: "call", fn, args };
      } else {
        const args = [this.expression()];
        while (this.comma()) args.push(this.expression());
        ast = { op: "call", fn, args };
      }
      this.#expect(")");
    }
    while (this.#text[this.#at] === ".") {
      this.#at++;
      const method = this.#word();
      this.#expect("(");
      this.#expect(")");
      ast = { op: "method", target: ast, method };
    }
    return ast;
  }

  /** ` AS [cN]`. */
  alias(): string {
    this.#space();
    if (this.#word().toUpperCase() !== "AS") this.#fail();
    this.#space();
    return this.#identifier();
  }

  comma(): boolean {
    this.#space();
    if (this.#text[this.#at] !== ",") return false;
    this.#at++;
    return true;
  }

  end(): void {
    this.#space();
    if (this.#at !== this.#text.length) this.#fail();
  }

  #identifier(): string {
    let name = "";
    let at = this.#at + 1;
    for (;;) {
      const close = this.#text.indexOf("]", at);
      if (close < 0) this.#fail();
      name += this.#text.slice(at, close);
      if (this.#text[close + 1] === "]") {
        name += "]";
        at = close + 2;
        continue;
      }
      this.#at = close + 1;
      return name;
    }
  }

  #type(): SqlType {
    this.#space();
    const match = /^[a-z0-9_]+(?:\((?:max|\d+)(?:,\s*\d+)?\))?/i.exec(this.#text.slice(this.#at));
    if (match === null) this.#fail();
    this.#at += match[0].length;
    return parseType(match[0]);
  }

  #word(): string {
    const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.#text.slice(this.#at));
    if (match === null) this.#fail();
    this.#at += match[0].length;
    return match[0];
  }

  #expect(char: string): void {
    this.#space();
    if (this.#text[this.#at] !== char) this.#fail();
    this.#at++;
  }

  #space(): void {
    while (this.#text[this.#at] === " ") this.#at++;
  }

  #fail(): never {
    throw new SqlError(
      102,
      `Incorrect syntax near '${this.#text.slice(this.#at, this.#at + 20)}'.`,
      15,
    );
  }
}

/** A compiled select-list item: the column it reads, and the value and type it produces. */
interface Compiled {
  readonly column: number;
  readonly wire: Wire;
  readonly evaluate: (value: Exclude<FakeValue, null>) => FakeValue;
}

/** An expression's type and its non-null evaluation. */
interface Typed {
  readonly column: number;
  readonly type: SqlType;
  readonly nullable: boolean;
  readonly evaluate: (value: Exclude<FakeValue, null>) => Value;
}

/** A `datetimeoffset`: the local date and time as SQL Server prints it, and minutes east of UTC. */
interface Dto {
  readonly local: string;
  readonly minutes: number;
}

/** Values while an expression is evaluated (strings for character, date and time types). */
type Value = string | number | bigint | boolean | Uint8Array | Dto;

const DATETIMEOFFSET = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,7})?) ?([+-]\d\d(?::?\d\d)?)$/;

function unsupported(what: string): never {
  throw new SqlError(50000, `The fake TDS server does not emulate ${what}`);
}

function compile(ast: Ast, table: FakeTable): Compiled {
  const typed = typeOf(ast, table);
  return {
    column: typed.column,
    wire: wireOf(typed.type, typed.nullable),
    evaluate: typed.evaluate as (value: Exclude<FakeValue, null>) => FakeValue,
  };
}

function typeOf(ast: Ast, table: FakeTable): Typed {
  switch (ast.op) {
    case "column": {
      const column = table.columns.findIndex((c) =>
        c.name.toLowerCase() === ast.name.toLowerCase()
      );
      const found = table.columns[column];
      if (found === undefined) throw new SqlError(207, `Invalid column name '${ast.name}'.`);
      const type = parseType(found.type);
      return { column, type, nullable: found.nullable, evaluate: stored(type, found.name) };
    }
    case "cast":
      return converted(typeOf(ast.value, table), ast.type, undefined);
    case "literal": {
      const text = ast.text;
      const type = { name: ast.unicode === true ? "nvarchar" : "varchar", length: text.length };
      return { column: -1, type, nullable: false, evaluate: () => text };
    }
    case "number": {
      const value = ast.value;
      return { column: -1, type: { name: "int" }, nullable: false, evaluate: () => value };
    }
    case "binary":
      return arithmetic(ast.operator, typeOf(ast.left, table), typeOf(ast.right, table));
    case "case": {
      const when = typeOf(ast.when, table);
      const then = typeOf(ast.then, table);
      const otherwise = typeOf(ast.otherwise, table);
      if (!isCharacter(then.type) || !isCharacter(otherwise.type)) {
        return unsupported("a CASE whose branches are not both character types");
      }
      const above = ast.above;
      return {
        column: sameColumn(sameColumn(when.column, then.column), otherwise.column),
        type: characterUnion(then.type, otherwise.type),
        nullable: otherwise.nullable,
        evaluate: (v) =>
          Number(when.evaluate(v)) > above ? then.evaluate(v) : otherwise.evaluate(v),
      };
    }
    case "call": {
      if (ast.fn === "CONVERT") {
        const [target, value, style] = ast.args;
        if (target?.op !== "type" || value === undefined) return unsupported("this CONVERT");
        if (style !== undefined && style.op !== "number") return unsupported("this CONVERT style");
        return converted(typeOf(value, table), target.type, style?.value);
      }
      if (ast.fn === "DATALENGTH" && ast.args.length === 1) {
        const inner = typeOf(ast.args[0]!, table);
        return {
          ...inner,
          type: { name: inner.type.length === "max" ? "bigint" : "int" },
          evaluate: (v) => dataLength(inner.type, inner.evaluate(v)),
        };
      }
      if (ast.fn === "LOWER" && ast.args.length === 1) {
        const inner = typeOf(ast.args[0]!, table);
        if (!isCharacter(inner.type)) return unsupported(`LOWER of ${inner.type.name}`);
        return { ...inner, evaluate: (v) => (inner.evaluate(v) as string).toLowerCase() };
      }
      if (ast.fn === "SWITCHOFFSET" && ast.args.length === 2) {
        const inner = typeOf(ast.args[0]!, table);
        const offset = ast.args[1];
        if (inner.type.name !== "datetimeoffset" || offset?.op !== "literal") {
          return unsupported("this SWITCHOFFSET");
        }
        const minutes = offsetMinutes(offset.text);
        return { ...inner, evaluate: (v) => switchOffset(inner.evaluate(v) as Dto, minutes) };
      }
      return unsupported(`the function ${ast.fn}`);
    }
    default:
      return unsupported(`the expression ${ast.op}`);
  }
}

/** The column an expression over two operands reads: one of them reads none (-1), or both the same. */
function sameColumn(a: number, b: number): number {
  if (a >= 0 && b >= 0 && a !== b) return unsupported("an expression over two columns");
  return a >= 0 ? a : b;
}

/** `+` of two character values concatenates; `+`, `*` and `/` of integers compute, `/` truncating. */
function arithmetic(operator: "+" | "*" | "/", left: Typed, right: Typed): Typed {
  const column = sameColumn(left.column, right.column);
  const nullable = left.nullable || right.nullable;
  if (isCharacter(left.type) && isCharacter(right.type)) {
    if (operator !== "+") return unsupported(`${operator} of character values`);
    return {
      column,
      nullable,
      type: characterUnion(left.type, right.type, true),
      evaluate: (v) => String(left.evaluate(v)) + String(right.evaluate(v)),
    };
  }
  const integers = ["tinyint", "smallint", "int", "bigint"];
  if (!integers.includes(left.type.name) || !integers.includes(right.type.name)) {
    return unsupported(`${operator} of ${left.type.name} and ${right.type.name}`);
  }
  const big = left.type.name === "bigint" || right.type.name === "bigint";
  const compute = {
    "+": (a: number, b: number) => a + b,
    "*": (a: number, b: number) => a * b,
    "/": (a: number, b: number) => Math.trunc(a / b),
  }[operator];
  return {
    column,
    nullable,
    type: { name: big ? "bigint" : "int" },
    evaluate: (v) => compute(Number(left.evaluate(v)), Number(right.evaluate(v))),
  };
}

/**
 * The type of a CASE over two character types, or of their concatenation (lengths added): Unicode when
 * either is, the longer (or summed) length, `max` when either is.
 */
function characterUnion(a: SqlType, b: SqlType, concatenate = false): SqlType {
  const unicode = a.name.startsWith("n") || b.name.startsWith("n");
  const [x, y] = [a.length ?? 1, b.length ?? 1];
  const length = x === "max" || y === "max"
    ? "max"
    : concatenate
    ? Math.min(x + y, unicode ? 4000 : 8000)
    : Math.max(x, y);
  return { name: unicode ? "nvarchar" : "varchar", length };
}

/** `DATALENGTH`: bytes as SQL Server stores the value (UTF-16 for Unicode text). */
function dataLength(type: SqlType, value: Value): number {
  if (value instanceof Uint8Array) return value.length;
  if (typeof value !== "string") return unsupported(`DATALENGTH of ${type.name}`);
  const utf16 = ["nchar", "nvarchar", "ntext", "xml", "json", "sql_variant"];
  return utf16.includes(type.name) ? 2 * value.length : value.length;
}

const CHARACTER = new Set(["char", "varchar", "nchar", "nvarchar"]);

function isCharacter(type: SqlType): boolean {
  return CHARACTER.has(type.name);
}

/** The wire type of a result of this SQL type. */
function wireOf(type: SqlType, nullable: boolean): Wire {
  switch (type.name) {
    case "tinyint":
      return { kind: "int", size: 1, nullable };
    case "smallint":
      return { kind: "int", size: 2, nullable };
    case "int":
      return { kind: "int", size: 4, nullable };
    case "bigint":
      return { kind: "int", size: 8, nullable };
    case "bit":
      return { kind: "bit", nullable };
    case "float":
      return { kind: "float", size: 8, nullable };
    case "real":
      return { kind: "float", size: 4, nullable };
    case "char":
    case "varchar":
    case "nchar":
    case "nvarchar":
      return {
        kind: type.name.startsWith("n") ? "nvarchar" : "varchar",
        length: type.length ?? 1,
        fixed: type.name.endsWith("char") && !type.name.includes("var"),
        nullable,
      };
    default:
      // The adapter converts every other type to text on the server, so the fake never sends it.
      return unsupported(`sending ${type.name} values (the adapter converts them in its SELECT)`);
  }
}

/**
 * Reads a stored value of the declared type, checking that SQL Server would hold it exactly as given;
 * returns the evaluation form (strings in SQL Server's own text layout for dates and times).
 */
function stored(type: SqlType, column: string): (value: Exclude<FakeValue, null>) => Value {
  const refuse = (why: string): never => {
    throw new SqlError(50000, `Fake column "${column}" (${type.name}): ${why}`);
  };
  const scale = type.scale ?? 0;
  switch (type.name) {
    case "tinyint":
    case "smallint":
    case "int":
    case "bigint": {
      const bits = { tinyint: 8, smallint: 16, int: 32, bigint: 64 }[type.name]!;
      const min = type.name === "tinyint" ? 0n : -(2n ** BigInt(bits - 1));
      const max = type.name === "tinyint" ? 255n : 2n ** BigInt(bits - 1) - 1n;
      const [low, high] = [Number(min), Number(max)];
      return (v) => {
        if (bits < 64 && (typeof v === "number" || typeof v === "string")) {
          const n = Number(v);
          if (!Number.isInteger(n) || (typeof v === "string" && !/^-?\d+$/.test(v))) {
            refuse("not an integer");
          }
          if (n < low || n > high) refuse("out of range");
          return n;
        }
        const big = typeof v === "bigint" ? v : BigInt(String(v));
        if (big < min || big > max) refuse("out of range");
        return bits < 64 ? Number(big) : big;
      };
    }
    case "bit":
      return (v) =>
        v === true || v === 1 ? true : v === false || v === 0 ? false : refuse("not a bit");
    case "float":
    case "real":
      return (v) => {
        const n = Number(v);
        // SQL Server's float holds no NaN or infinities.
        if (!Number.isFinite(n)) refuse("SQL Server holds no NaN or infinities");
        return type.name === "real" ? Math.fround(n) : n;
      };
    case "decimal":
    case "numeric":
    case "money":
    case "smallmoney": {
      const whole = (type.precision ?? 18) - scale;
      return (v) => {
        const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(v));
        if (match === null) return refuse("not a decimal");
        const [, sign = "", digits = "", fraction = ""] = match;
        if (fraction.length > scale) refuse(`more than ${scale} fraction digits would be rounded`);
        const integer = digits.replace(/^0+(?=\d)/, "");
        if (integer !== "0" && integer.length > whole) refuse("out of range");
        if (type.name === "money" || type.name === "smallmoney") {
          const units = BigInt(`${sign}${integer}${fraction.padEnd(4, "0")}`);
          const limit = type.name === "money" ? 2n ** 63n : 2n ** 31n;
          if (units < -limit || units >= limit) refuse("out of range");
        }
        const padded = fraction.padEnd(scale, "0");
        const zero = /^0*$/.test(integer + padded);
        return `${zero ? "" : sign}${integer}${scale > 0 ? `.${padded}` : ""}`;
      };
    }
    case "date":
      return (v) => {
        const text = String(v);
        if (!/^\d{4}-\d\d-\d\d$/.test(text) || !validDate(text)) refuse("not a date");
        return text;
      };
    case "time":
      return (v) => {
        const match = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?$/.exec(String(v));
        if (
          match === null || Number(match[1]) > 23 || Number(match[2]) > 59 || Number(match[3]) > 59
        ) {
          return refuse("not a time");
        }
        return `${match[1]}:${match[2]}:${match[3]}${fractionOf(match[4] ?? "", scale, refuse)}`;
      };
    case "datetime2":
    case "datetime":
    case "smalldatetime":
      return (v) => {
        const { date, time, fraction } = splitDateTime(String(v), refuse);
        if (type.name === "datetime") {
          // datetime counts 1/300 s: its milliseconds always end in 0, 3 or 7.
          const ms = fraction.padEnd(3, "0");
          if (fraction.length > 3 || !"037".includes(ms[2]!)) refuse("not a 1/300 s datetime tick");
          if (date < "1753-01-01") refuse("out of range");
          return `${date} ${time}.${ms}`;
        }
        if (type.name === "smalldatetime") {
          if (fraction !== "" || !time.endsWith(":00")) refuse("smalldatetime holds whole minutes");
          if (date < "1900-01-01" || `${date} ${time}` > "2079-06-06 23:59:00") {
            refuse("out of range");
          }
          return `${date} ${time}`;
        }
        return `${date} ${time}${fractionOf(fraction, scale, refuse)}`;
      };
    case "datetimeoffset":
      return (v): Dto => {
        const match = DATETIMEOFFSET.exec(String(v));
        if (match === null) return refuse("not a date and time with a UTC offset");
        const { date, time, fraction } = splitDateTime(match[1]!, refuse);
        return {
          local: `${date} ${time}${fractionOf(fraction, scale, refuse)}`,
          minutes: offsetMinutes(match[2]!),
        };
      };
    case "uniqueidentifier":
      return (v) => {
        const text = String(v);
        if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text)) {
          refuse("not a uniqueidentifier");
        }
        return text;
      };
    case "binary":
    case "varbinary":
    case "image":
      return (v) => {
        let bytes: Uint8Array;
        if (v instanceof Uint8Array) bytes = v;
        else if (typeof v === "string" && /^\\x(?:[0-9a-f]{2})*$/i.test(v)) {
          bytes = Buffer.from(v.slice(2), "hex");
        } else return refuse("not bytes");
        if (typeof type.length === "number" && bytes.length > type.length) refuse("too long");
        return bytes;
      };
    case "char":
    case "varchar":
    case "nchar":
    case "nvarchar":
      return (v) => {
        const text = String(v);
        if (typeof type.length === "number" && text.length > type.length) refuse("too long");
        // char(n) and nchar(n) are padded with spaces.
        return type.name.endsWith("char") && !type.name.includes("var")
          ? text.padEnd(type.length as number, " ")
          : text;
      };
    case "text":
    case "ntext":
    case "xml":
    case "json":
    case "sql_variant":
      return (v) => String(v);
    default:
      return unsupported(`the type ${type.name}`);
  }
}

/**
 * `CAST`/`CONVERT` to `target` with an optional style, as T-SQL does it for the conversions the adapter
 * writes (anything else is refused):
 *
 * - `decimal`/`numeric` → character, no style: every digit with the declared scale (`12.30`, `0.05`,
 *   `-0.05`, no leading `.`);
 * - `money`/`smallmoney` → character, style 2: no thousands separators, four decimals;
 * - `datetime2(n)` → character, style 121: `yyyy-mm-dd hh:mi:ss` and `.` plus exactly n digits (none for
 *   n = 0); `datetime`: always three digits; `smalldatetime`, style 120: `yyyy-mm-dd hh:mi:ss`;
 * - `date` → character, style 23: `yyyy-mm-dd`; `time(n)` → character, default style: `hh:mi:ss` and n
 *   digits;
 * - `datetimeoffset(n)` → `datetime2(7)`: the local date and time, the offset dropped, 7 digits;
 * - `uniqueidentifier` → `char(36)`: upper-case hex;
 * - binary → `varbinary(max)`: the same bytes; `varbinary` → character, style 2: upper-case hex without
 *   `0x`;
 * - `xml`, `json`, `sql_variant`, character types → `nvarchar(max)`: the text.
 *
 * A result longer than the target's length fails as SQL Server fails it (error 8115 for numbers and dates).
 */
function converted(inner: Typed, target: SqlType, style: number | undefined): Typed {
  const from = inner.type.name;
  const to = target.name;
  const result = (evaluate: (v: Value) => Value): Typed => ({
    column: inner.column,
    type: target,
    nullable: inner.nullable,
    evaluate: (v) => evaluate(inner.evaluate(v)),
  });
  const fits = (text: string): string => {
    if (typeof target.length === "number" && text.length > target.length) {
      throw new SqlError(8115, `Arithmetic overflow error converting ${from} to data type ${to}.`);
    }
    return text;
  };
  if (isCharacter(target)) {
    const styled = (allowed: readonly (number | undefined)[]) => {
      if (!allowed.includes(style)) unsupported(`CONVERT from ${from} with style ${style}`);
    };
    switch (from) {
      case "decimal":
      case "numeric":
        styled([undefined, 0]);
        return result((v) => fits(v as string));
      case "money":
      case "smallmoney":
        styled([2]);
        return result((v) => fits(v as string));
      case "datetime2":
      case "datetime":
        styled([121]);
        return result((v) => fits(v as string));
      case "smalldatetime":
        styled([120]);
        return result((v) => fits(v as string));
      case "date":
        styled([23]);
        return result((v) => fits(v as string));
      case "time":
        styled([undefined]);
        return result((v) => fits(v as string));
      case "uniqueidentifier":
        styled([undefined]);
        return result((v) => fits((v as string).toUpperCase()));
      case "varbinary":
      case "binary":
        styled([2]);
        return result((v) => fits(Buffer.from(v as Uint8Array).toString("hex").toUpperCase()));
      case "xml":
      case "json":
      case "sql_variant":
      case "text":
      case "ntext":
      case "char":
      case "varchar":
      case "nchar":
      case "nvarchar":
      case "tinyint":
      case "smallint":
      case "int":
      case "bigint":
        styled([undefined]);
        return result((v) => fits(String(v)));
    }
  }
  if (to === "bigint" && ["tinyint", "smallint", "int", "bigint"].includes(from)) {
    return result((v) => v);
  }
  if (to === "int" && isCharacter(inner.type) && style === undefined) {
    return result((v) => {
      const text = String(v);
      const n = /^\s*[-+]?\d+\s*$/.test(text) ? Number(text) : NaN;
      if (Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31) return n;
      throw new SqlError(
        245,
        `Conversion failed when converting the ${from} value '${text}' to data type int.`,
      );
    });
  }
  if (
    to === "varbinary" && ["binary", "varbinary", "image"].includes(from) && style === undefined
  ) {
    return result((v) => v);
  }
  if (to === "datetime2" && from === "datetimeoffset" && style === undefined) {
    const digits = target.scale ?? 7;
    return result((v) => {
      const local = (v as Dto).local;
      const dot = local.indexOf(".");
      const head = dot < 0 ? local : local.slice(0, dot);
      const fraction = dot < 0 ? "" : local.slice(dot + 1);
      if (fraction.length > digits && /[1-9]/.test(fraction.slice(digits))) {
        unsupported("rounding a datetimeoffset into a shorter datetime2");
      }
      return digits === 0 ? head : `${head}.${fraction.padEnd(digits, "0").slice(0, digits)}`;
    });
  }
  return unsupported(`CONVERT from ${from} to ${to}`);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function validDate(text: string): boolean {
  const year = Number(text.slice(0, 4));
  const month = Number(text.slice(5, 7));
  const day = Number(text.slice(8, 10));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 &&
    day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!);
}

function splitDateTime(
  text: string,
  refuse: (why: string) => never,
): { date: string; time: string; fraction: string } {
  const match = /^(\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?$/.exec(text);
  if (
    match === null || !validDate(match[1]!) || Number(match[2]) > 23 || Number(match[3]) > 59 ||
    Number(match[4]) > 59
  ) {
    return refuse("not a date and time");
  }
  return { date: match[1]!, time: `${match[2]}:${match[3]}:${match[4]}`, fraction: match[5] ?? "" };
}

/** `.` and exactly `scale` digits (nothing for scale 0), as SQL Server prints a value of that scale. */
function fractionOf(fraction: string, scale: number, refuse: (why: string) => never): string {
  if (fraction.length > scale && /[1-9]/.test(fraction.slice(scale))) {
    refuse(`more than ${scale} fraction digits would be rounded`);
  }
  return scale === 0 ? "" : `.${fraction.padEnd(scale, "0").slice(0, scale)}`;
}

/** `+00`, `+02`, `-05:30`, `+0530` as minutes east of UTC. */
function offsetMinutes(text: string): number {
  const match = /^([+-])(\d\d)(?::?(\d\d))?$/.exec(text.trim());
  if (match === null) throw new SqlError(241, `Conversion failed for the offset '${text}'.`);
  const minutes = Number(match[2]) * 60 + Number(match[3] ?? 0);
  if (minutes > 14 * 60) throw new SqlError(241, `The offset '${text}' is outside ±14:00.`);
  return match[1] === "-" ? -minutes : minutes;
}

/** SWITCHOFFSET: the same instant at another offset. */
function switchOffset(value: Dto, minutes: number): Dto {
  if (value.minutes === minutes) return value;
  const [head = "", fraction] = value.local.split(".");
  const days = daysFromCivil(
    Number(head.slice(0, 4)),
    Number(head.slice(5, 7)),
    Number(head.slice(8, 10)),
  );
  const seconds = days * 86_400 + Number(head.slice(11, 13)) * 3600 +
    Number(head.slice(14, 16)) * 60 + Number(head.slice(17, 19)) + (minutes - value.minutes) * 60;
  const day = Math.floor(seconds / 86_400);
  const second = seconds - day * 86_400;
  const [y, m, d] = civilFromDays(day);
  if (y < 1 || y > 9999) {
    throw new SqlError(517, "Adding a value to a 'datetimeoffset' column caused an overflow.");
  }
  const two = (n: number) => String(n).padStart(2, "0");
  const time = `${two(Math.floor(second / 3600))}:${two(Math.floor(second / 60) % 60)}:${
    two(second % 60)
  }`;
  const local = `${String(y).padStart(4, "0")}-${two(m)}-${two(d)} ${time}${
    fraction === undefined ? "" : `.${fraction}`
  }`;
  return { local, minutes };
}

// ---------------------------------------------------------------------------------------------------------
// Tokens

const DONE_ERROR = 0x02;
const DONE_COUNT = 0x10;
const DONE_ATTN = 0x20;

function asSqlError(e: unknown): SqlError {
  return e instanceof SqlError
    ? e
    : new SqlError(50000, e instanceof Error ? e.message : String(e));
}

/** The data of one PRELOGIN option, if the client sent it. */
function preloginOption(payload: Buffer, token: number): Buffer | undefined {
  for (let at = 0; at + 5 <= payload.length && payload[at] !== 0xff; at += 5) {
    if (payload[at] === token) {
      const offset = payload.readUInt16BE(at + 1);
      return payload.subarray(offset, offset + payload.readUInt16BE(at + 3));
    }
  }
  return undefined;
}

function parseLogin7(payload: Buffer): { userName: string; password: string } {
  const field = (at: number) => {
    const offset = payload.readUInt16LE(at);
    const chars = payload.readUInt16LE(at + 2);
    return Buffer.from(payload.subarray(offset, offset + chars * 2));
  };
  const password = field(44);
  for (let i = 0; i < password.length; i++) {
    const b = password[i]! ^ 0xa5;
    password[i] = ((b & 0x0f) << 4) | (b >> 4);
  }
  return { userName: field(40).toString("ucs2"), password: password.toString("ucs2") };
}

const ucs2 = (s: string) => Buffer.from(s, "ucs2");
const bVarchar = (s: string) => Buffer.concat([Buffer.from([s.length]), ucs2(s)]);
const usVarchar = (s: string) => {
  const length = Buffer.alloc(2);
  length.writeUInt16LE(s.length);
  return Buffer.concat([length, ucs2(s)]);
};

function withLength(token: number, body: Buffer): Buffer {
  const header = Buffer.alloc(3);
  header[0] = token;
  header.writeUInt16LE(body.length, 1);
  return Buffer.concat([header, body]);
}

function loginAck(): Buffer {
  return withLength(
    0xad,
    Buffer.concat([Buffer.from([1, 0x74, 0, 0, 4]), bVarchar("Fake"), Buffer.from([16, 0, 0, 1])]),
  );
}

function done(rows: number, status: number, token = 0xfd): Buffer {
  const b = Buffer.alloc(13);
  b[0] = token;
  b.writeUInt16LE(status, 1);
  b.writeUInt16LE(0xc1, 3);
  b.writeBigUInt64LE(BigInt(rows), 5);
  return b;
}

function errorToken(error: SqlError): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32LE(error.number, 0);
  head[4] = 1; // state
  head[5] = error.severity;
  return withLength(
    0xaa,
    Buffer.concat([
      head,
      usVarchar(error.message),
      bVarchar("fake"),
      bVarchar(""),
      Buffer.alloc(4),
    ]),
  );
}

/** SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, sort id 52 (code page 1252). */
const COLLATION = Buffer.from([0x09, 0x04, 0xd0, 0x00, 0x34]);

/** COLMETADATA: user type, flags (nullable), TYPE_INFO and name per column. */
function writeColumnMetadata(writer: MessageWriter, columns: readonly ResultColumn[]): void {
  writer.u8(0x81);
  writer.u16(columns.length);
  for (const { name, wire } of columns) {
    writer.u32(0);
    writer.u16(wire.nullable ? 0x09 : 0x08);
    switch (wire.kind) {
      case "int": // INT1/INT2/INT4/INT8 for NOT NULL, INTN otherwise
        if (wire.nullable) writer.bytes(Buffer.from([0x26, wire.size]));
        else writer.u8({ 1: 0x30, 2: 0x34, 4: 0x38, 8: 0x7f }[wire.size]);
        break;
      case "bit":
        if (wire.nullable) writer.bytes(Buffer.from([0x68, 1]));
        else writer.u8(0x32);
        break;
      case "float":
        if (wire.nullable) writer.bytes(Buffer.from([0x6d, wire.size]));
        else writer.u8(wire.size === 8 ? 0x3e : 0x3b);
        break;
      case "varchar":
      case "nvarchar": {
        const type = wire.kind === "varchar"
          ? (wire.fixed ? 0xaf : 0xa7)
          : (wire.fixed ? 0xef : 0xe7);
        writer.u8(type);
        const bytes = wire.length === "max"
          ? 0xffff
          : wire.length * (wire.kind === "nvarchar" ? 2 : 1);
        writer.u16(bytes);
        writer.bytes(COLLATION);
        break;
      }
    }
    writer.bytes(bVarchar(name));
  }
}

const PLP_NULL = 0xffffffffffffffffn;

function writeValue(writer: MessageWriter, wire: Wire, value: FakeValue, plpChunk: number): void {
  if (wire.kind === "varchar" || wire.kind === "nvarchar") {
    if (wire.length === "max") {
      if (value === null) return writer.u64(PLP_NULL);
      return writer.plp(String(value), wire.kind === "nvarchar", plpChunk);
    }
    if (value === null) return writer.u16(0xffff);
    const text = String(value);
    if (wire.kind === "nvarchar") {
      writer.u16(text.length * 2);
      return writer.ucs2(text);
    }
    writer.u16(text.length);
    return writer.ascii(text);
  }
  if (value === null) {
    if (!wire.nullable) throw new SqlError(50000, "A NULL in a NOT NULL column");
    return writer.u8(0);
  }
  if (wire.nullable) writer.u8(wire.kind === "bit" ? 1 : (wire as { size: number }).size);
  switch (wire.kind) {
    case "int":
      switch (wire.size) {
        case 1:
          return writer.i8(Number(value));
        case 2:
          return writer.i16(Number(value));
        case 4:
          return writer.i32(Number(value));
        case 8:
          return writer.i64(typeof value === "bigint" ? value : BigInt(value as string | number));
      }
      return;
    case "bit":
      return writer.u8(value === true ? 1 : 0);
    case "float":
      return wire.size === 8 ? writer.f64(Number(value)) : writer.f32(Number(value));
  }
}
