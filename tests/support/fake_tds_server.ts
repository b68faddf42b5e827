/**
 * A fake TDS 7.4 server for testing the SQL Server adapter through the real `tedious` client, with no
 * SQL Server. It speaks the protocol (PRELOGIN without encryption, LOGIN7 with a password check, SQL
 * batches, ATTENTION) and answers the adapter's exact queries from a small in-memory catalogue, matched
 * by the SQL text. It tests our protocol handling and type mapping, not T-SQL semantics: it is not
 * "SQL Server testing".
 *
 * @module
 */
import net from "node:net";
import { Buffer } from "node:buffer";

/** How a value travels on the wire (after any server-side CONVERT in the adapter's SELECT list). */
export type FakeWireType = "int" | "bigint" | "bit" | "nvarchar" | "float";

/** One value on the wire: numbers for int/float, strings for bigint/nvarchar, booleans for bit. */
export type FakeValue = string | number | boolean | null;

/** A column of a fake table, with its `INFORMATION_SCHEMA.COLUMNS` facts. */
export interface FakeColumn {
  readonly name: string;
  readonly dataType: string;
  readonly nullable: boolean;
  readonly maxLength?: number;
  readonly precision?: number;
  readonly scale?: number;
  readonly datetimePrecision?: number;
  readonly description?: string;
  /** The TDS type the server sends for the adapter's select expression of this column. */
  readonly wire: FakeWireType;
}

/** A table or view of a fake schema. */
export interface FakeTable {
  readonly name: string;
  readonly kind: "BASE TABLE" | "VIEW";
  readonly description?: string;
  readonly primaryKey: readonly string[];
  readonly columns: readonly FakeColumn[];
  /** Rows as the wire carries them, one value per column. */
  readonly rows: readonly (readonly FakeValue[])[];
}

/** A fake schema. */
export interface FakeSchema {
  readonly name: string;
  readonly description?: string;
  readonly tables: readonly FakeTable[];
}

/** What the fake server knows. */
export interface FakeTdsOptions {
  readonly userName: string;
  readonly password: string;
  readonly schemas: readonly FakeSchema[];
}

/** A running fake server. */
export interface FakeTdsServer extends AsyncDisposable {
  readonly port: number;
  /** Every SQL batch received, in order (tedious' own SET batch included). */
  readonly batches: string[];
  close(): Promise<void>;
}

interface ResultSet {
  readonly columns: readonly { name: string; wire: FakeWireType }[];
  readonly rows: readonly (readonly FakeValue[])[];
}

class SqlError extends Error {
  constructor(readonly number: number, message: string, readonly severity = 16) {
    super(message);
  }
}

/** Starts a fake server on 127.0.0.1 and a free port. */
export async function startFakeTdsServer(options: FakeTdsOptions): Promise<FakeTdsServer> {
  const batches: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let pending = Buffer.alloc(0);
    let message: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 8) {
        const length = pending.readUInt16BE(2);
        if (pending.length < length) break;
        const type = pending[0]!;
        const last = (pending[1]! & 1) === 1;
        message.push(pending.subarray(8, length));
        pending = pending.subarray(length);
        if (!last) continue;
        const payload = Buffer.concat(message);
        message = [];
        handle(socket, type, payload);
      }
    });
  });

  function handle(socket: net.Socket, type: number, payload: Buffer): void {
    switch (type) {
      case 0x12: // PRELOGIN: VERSION, ENCRYPTION = NOT_SUP
        send(
          socket,
          Buffer.from([0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xff, 16, 0, 0, 0, 0, 0, 0x02]),
        );
        return;
      case 0x10: { // LOGIN7
        const { userName, password } = parseLogin7(payload);
        if (userName !== options.userName || password !== options.password) {
          send(
            socket,
            Buffer.concat([
              errorToken(new SqlError(18456, `Login failed for user '${userName}'.`, 14)),
              done(0, 0x02),
            ]),
          );
          return;
        }
        send(socket, Buffer.concat([loginAck(), done(0)]));
        return;
      }
      case 0x01: { // SQL batch: skip ALL_HEADERS
        const sql = payload.subarray(payload.readUInt32LE(0)).toString("ucs2");
        batches.push(sql);
        let reply: Buffer;
        try {
          const result = answer(options.schemas, sql);
          reply = result === undefined
            ? done(0)
            : Buffer.concat([resultSet(result), done(result.rows.length, 0x10)]);
        } catch (e) {
          const error = e instanceof SqlError ? e : new SqlError(50000, String(e));
          reply = Buffer.concat([errorToken(error), done(0, 0x02)]);
        }
        send(socket, reply);
        return;
      }
      case 0x06: // ATTENTION: acknowledge
        send(socket, done(0, 0x20));
        return;
      default:
        socket.destroy();
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return { port, batches, close, [Symbol.asyncDispose]: close };
}

/** The answer to one SQL batch, from the adapter's known query shapes. */
function answer(schemas: readonly FakeSchema[], sql: string): ResultSet | undefined {
  if (/^\s*set /i.test(sql)) return undefined; // tedious' session settings
  if (sql === "SELECT 1 AS ok") return { columns: [{ name: "ok", wire: "int" }], rows: [[1]] };
  const literal = /N'((?:[^']|'')*)'\s*(?:AND t\.TABLE_TYPE|ORDER BY|$)/.exec(sql)?.[1]
    ?.replaceAll("''", "'");
  // The catalogue's collation is case-insensitive, like SQL Server's default one.
  const schema = literal === undefined
    ? undefined
    : schemas.find((s) => s.name.toLowerCase() === literal.toLowerCase());
  const nv = (name: string) => ({ name, wire: "nvarchar" as const });
  const int = (name: string) => ({ name, wire: "int" as const });
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
        t.columns.map((c) => [
          t.name,
          c.name,
          c.dataType,
          c.nullable ? "YES" : "NO",
          c.maxLength ?? null,
          c.precision ?? null,
          c.scale ?? null,
          c.datetimePrecision ?? null,
          c.description ?? null,
        ])
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
    const expressions = list.split(/ AS \[c\d+\](?:, |$)/).filter((e) => e !== "");
    const picked = expressions.map((expression) => {
      const index = table.columns.findIndex((c) =>
        expression.includes(`[${c.name.replaceAll("]", "]]")}]`)
      );
      const column = table.columns[index];
      if (column === undefined) throw new SqlError(207, `Invalid column name in '${expression}'.`);
      return { index, column };
    });
    return {
      columns: picked.map(({ column }, i) => ({ name: `c${i}`, wire: column.wire })),
      rows: table.rows.map((row) => picked.map(({ index }) => row[index] ?? null)),
    };
  }
  throw new SqlError(102, `Incorrect syntax near '${sql.slice(0, 20)}'.`, 15);
}

function send(socket: net.Socket, payload: Buffer, type = 0x04): void {
  for (let offset = 0, id = 1;; offset += 4088) {
    const part = payload.subarray(offset, offset + 4088);
    const last = offset + 4088 >= payload.length;
    const header = Buffer.alloc(8);
    header[0] = type;
    header[1] = last ? 1 : 0;
    header.writeUInt16BE(part.length + 8, 2);
    header[6] = id++ & 0xff;
    socket.write(Buffer.concat([header, part]));
    if (last) break;
  }
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

function done(rows: number, status = 0x10, token = 0xfd): Buffer {
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

const COLLATION = Buffer.from([0x09, 0x04, 0xd0, 0x00, 0x34]); // Latin1_General_CI_AS

function typeInfo(wire: FakeWireType): Buffer {
  switch (wire) {
    case "int":
      return Buffer.from([0x26, 4]);
    case "bigint":
      return Buffer.from([0x26, 8]);
    case "bit":
      return Buffer.from([0x68, 1]);
    case "float":
      return Buffer.from([0x6d, 8]);
    case "nvarchar":
      return Buffer.concat([Buffer.from([0xe7, 0x40, 0x1f]), COLLATION]); // nvarchar(4000)
  }
}

function resultSet(result: ResultSet): Buffer {
  const parts: Buffer[] = [
    Buffer.from([0x81, result.columns.length & 0xff, result.columns.length >> 8]),
  ];
  for (const column of result.columns) {
    parts.push(Buffer.from([0, 0, 0, 0, 0x09, 0x00]), typeInfo(column.wire), bVarchar(column.name));
  }
  for (const row of result.rows) {
    parts.push(Buffer.from([0xd1]));
    result.columns.forEach((column, i) => parts.push(value(column.wire, row[i] ?? null)));
  }
  return Buffer.concat(parts);
}

function value(wire: FakeWireType, v: FakeValue): Buffer {
  if (wire === "nvarchar") {
    if (v === null) return Buffer.from([0xff, 0xff]);
    const bytes = ucs2(String(v));
    if (bytes.length > 8000) throw new Error("The fake sends at most 4000 characters");
    const length = Buffer.alloc(2);
    length.writeUInt16LE(bytes.length);
    return Buffer.concat([length, bytes]);
  }
  if (v === null) return Buffer.from([0]);
  switch (wire) {
    case "int": {
      const b = Buffer.alloc(5);
      b[0] = 4;
      b.writeInt32LE(Number(v), 1);
      return b;
    }
    case "bigint": {
      const b = Buffer.alloc(9);
      b[0] = 8;
      b.writeBigInt64LE(BigInt(v as string), 1);
      return b;
    }
    case "bit":
      return Buffer.from([1, v === true || v === 1 ? 1 : 0]);
    case "float": {
      const b = Buffer.alloc(9);
      b[0] = 8;
      b.writeDoubleLE(Number(v), 1);
      return b;
    }
  }
}
