/**
 * The SQL Server adapter against a real SQL Server 2022 (`mcr.microsoft.com/mssql/server:2022-latest`),
 * started with testcontainers: the shared source contract with the standard fixture, W and EDGE built in
 * T-SQL, over TLS (the container's self-signed certificate, trusted explicitly).
 *
 * This is what checks the fake TDS server's claims (CONVERT styles, SWITCHOFFSET, PLP values): the W and
 * EDGE steps assert the same canonical strings against both. It runs only where Docker does (`docker
 * info` succeeds); elsewhere the test is registered as ignored, with a name that says why, and a line on
 * stderr says so too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  MSSQLServerContainer,
  type StartedMSSQLServerContainer,
} from "@testcontainers/mssqlserver";
import { Connection, type ConnectionConfiguration, Request, TYPES } from "tedious";
import { type LogicalType, parseBinary } from "../../domain/logical_type.ts";
import { connectMssqlWith } from "../../adapters/mssql/mssql_source_database.ts";
import { quoteMssqlIdentifier, sqlString } from "../../adapters/mssql/mssql_dialect.ts";
import {
  FIXTURE_ROWS,
  FIXTURE_SCHEMA_COMMENT,
  sourceDatabaseContract,
} from "../contracts/source_database_contract.ts";
import {
  EDGE_TABLE,
  edgeCasesFor,
  edgeColumnsFor,
  edgeMssqlColumns,
  edgeMssqlDdl,
  W_COLUMNS,
  W_TABLE,
  wExpectedRow,
  wMssqlDdl,
} from "../support/w_table.ts";

const IMAGE = "mcr.microsoft.com/mssql/server:2022-latest";
const DATABASE = "cr8tor_test";
const FIXTURE = "cr8_contract";
const TABLES = "cr8_tables";
const W_ROWS = 1_000;
const READER = "cr8_reader";

/** Whether a Docker engine answers (`docker info` exits 0). */
async function dockerAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("docker", {
      args: ["info"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false; // no docker binary
  }
}

const docker = await dockerAvailable();
const NAME = "MssqlSourceDatabase passes the SourceDatabase contract against SQL Server 2022";
if (!docker) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`Skipped "${NAME}": Docker is unavailable (docker info failed)\n`),
  );
}

Deno.test({
  name: docker ? `${NAME} (testcontainers)` : `${NAME} (skipped: Docker is unavailable)`,
  ignore: !docker,
  // testcontainers keeps its Docker connection and reaper open across tests.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const saPassword = `Sa-${crypto.randomUUID()}-9x!`;
    const readerPassword = `Rd-${crypto.randomUUID()}-9x!`;
    const container = await new MSSQLServerContainer(IMAGE).acceptLicense()
      .withPassword(saPassword).start();
    try {
      await buildFixture(container, readerPassword);
      const options = {
        host: container.getHost(),
        port: container.getPort(),
        database: DATABASE,
        username: READER,
        password: readerPassword,
        connectTimeoutMs: 30_000,
        statementTimeoutMs: 60_000,
      };
      // The container's certificate is self-signed: without trusting it, TLS must fail.
      await t.step("an unverified self-signed certificate is refused", async () => {
        await assert.rejects(connectMssqlWith(options, { encrypt: true }), /certificate/i);
      });
      await sourceDatabaseContract(t, {
        name: "MssqlSourceDatabase",
        engine: "mssql",
        setUp: () =>
          Promise.resolve({
            schema: FIXTURE,
            connect: () =>
              connectMssqlWith(options, { encrypt: true, trustServerCertificate: true }),
            cleanup: () => Promise.resolve(),
            wide: { schema: TABLES, table: W_TABLE, rows: W_ROWS },
            edge: { schema: TABLES, table: EDGE_TABLE, engine: "mssql" },
          }),
      });
    } finally {
      await container.stop();
    }
  },
});

/** A tedious connection as `sa`, for building the fixture. */
class Admin {
  readonly #connection: Connection;

  private constructor(connection: Connection) {
    this.#connection = connection;
  }

  static async open(container: StartedMSSQLServerContainer, database?: string): Promise<Admin> {
    const config: ConnectionConfiguration = {
      server: container.getHost(),
      authentication: {
        type: "default",
        options: { userName: container.getUsername(), password: container.getPassword() },
      },
      options: {
        port: container.getPort(),
        ...(database === undefined ? {} : { database }),
        encrypt: true,
        trustServerCertificate: true,
        requestTimeout: 120_000,
      },
    };
    const connection = new Connection(config);
    await new Promise<void>((resolve, reject) => {
      connection.on("connect", (e?: Error) => e === undefined ? resolve() : reject(e));
      connection.connect();
    });
    return new Admin(connection);
  }

  /** Runs one batch, or one parameterised statement (`@p0`, `@p1`, ...). */
  exec(sql: string, params: readonly Param[] = []): Promise<void> {
    return new Promise((resolve, reject) => {
      const request = new Request(sql, (e) => e ? reject(e) : resolve());
      if (params.length === 0) {
        this.#connection.execSqlBatch(request);
        return;
      }
      params.forEach((p, i) => request.addParameter(`p${i}`, p.type, p.value));
      this.#connection.execSql(request);
    });
  }

  close(): void {
    this.#connection.close();
  }
}

interface Param {
  readonly type: (typeof TYPES)[keyof typeof TYPES];
  readonly value: unknown;
}

/**
 * A canonical value as a parameter and the T-SQL that turns it into the column's type: exact doubles as
 * `float` parameters, booleans as `bit`, bytes as `varbinary`, everything else as text converted on the
 * server (`datetime` and `smalldatetime` with an explicit style, as their text input depends on the
 * language otherwise; offsets written `+hh:mm`).
 */
function insertValue(
  type: string,
  logical: LogicalType,
  value: string | null,
  at: number,
): { sql: string; param: Param } {
  const p = `@p${at}`;
  const declared = type.toLowerCase();
  if (value === null) return { sql: `CAST(${p} AS ${declared})`, param: text(null) };
  switch (logical.kind) {
    case "boolean":
      return { sql: p, param: { type: TYPES.Bit, value: value === "true" } };
    case "double":
    case "real":
      return {
        sql: `CAST(${p} AS ${declared})`,
        param: { type: TYPES.Float, value: Number(value) },
      };
    case "binary":
      return { sql: p, param: { type: TYPES.VarBinary, value: Buffer.from(parseBinary(value)) } };
    case "timestamptz":
      return {
        sql: `CAST(${p} AS ${declared})`,
        param: text(value.replace(/ ?([+-]\d\d)(?::?(\d\d))?$/, (_, h, m) => ` ${h}:${m ?? "00"}`)),
      };
    default:
      if (declared === "datetime") {
        return { sql: `CONVERT(datetime, ${p}, 121)`, param: text(value) };
      }
      if (declared === "smalldatetime") {
        return { sql: `CONVERT(smalldatetime, ${p}, 120)`, param: text(value) };
      }
      return { sql: `CAST(${p} AS ${declared})`, param: text(value) };
  }
}

function text(value: string | null): Param {
  return { type: TYPES.NVarChar, value };
}

function comment(value: string, ...levels: string[]): string {
  const names = ["SCHEMA", "TABLE", "COLUMN"];
  const args = levels.map((name, i) => `N'${names[i]}', ${sqlString(name)}`).join(", ");
  return `EXEC sys.sp_addextendedproperty N'MS_Description', ${sqlString(value)}, ${args};`;
}

/** The standard fixture, W and EDGE, and a login that may only read them. */
async function buildFixture(
  container: StartedMSSQLServerContainer,
  readerPassword: string,
): Promise<void> {
  const master = await Admin.open(container);
  try {
    await master.exec(`CREATE DATABASE ${quoteMssqlIdentifier(DATABASE)}`);
    await master.exec(
      `CREATE LOGIN ${quoteMssqlIdentifier(READER)} WITH PASSWORD = ${sqlString(readerPassword)}`,
    );
  } finally {
    master.close();
  }
  const db = await Admin.open(container, DATABASE);
  try {
    const f = quoteMssqlIdentifier(FIXTURE);
    await db.exec(`CREATE SCHEMA ${f}`);
    await db.exec(`CREATE SCHEMA ${quoteMssqlIdentifier(TABLES)}`);
    await db.exec(`
      ${comment(FIXTURE_SCHEMA_COMMENT, FIXTURE)}
      CREATE TABLE ${f}.patients (id int NOT NULL PRIMARY KEY, nhs_number nvarchar(10) NOT NULL,
        birth_date date NULL, weight decimal(6,2) NULL);
      ${comment("One row per patient", FIXTURE, "patients")}
      ${comment("NHS number", FIXTURE, "patients", "nhs_number")}
      CREATE TABLE ${f}.visits (visit_no int NOT NULL, patient_id int NOT NULL,
        visited_on date NOT NULL, notes nvarchar(max) NULL,
        CONSTRAINT pk_visits PRIMARY KEY (patient_id, visit_no));
      ${comment("Free text", FIXTURE, "visits", "notes")}
      CREATE TABLE ${f}.audit_log (event varchar(100) NOT NULL, logged_at datetime2(7) NULL);`);
    await db.exec(`CREATE VIEW ${f}.patient_names AS SELECT id, nhs_number FROM ${f}.patients`);
    const fixtureTypes: Record<string, [string, LogicalType][]> = {
      patients: [["int", { kind: "integer" }], ["nvarchar(10)", { kind: "text" }], ["date", {
        kind: "date",
      }], ["decimal(6,2)", { kind: "decimal", precision: 6, scale: 2 }]],
      visits: [["int", { kind: "integer" }], ["int", { kind: "integer" }], ["date", {
        kind: "date",
      }], ["nvarchar(max)", { kind: "text" }]],
      audit_log: [["varchar(100)", { kind: "text" }], ["datetime2(7)", { kind: "timestamp" }]],
    };
    for (const [table, types] of Object.entries(fixtureTypes)) {
      for (const row of FIXTURE_ROWS[table as keyof typeof FIXTURE_ROWS]) {
        await insertRow(db, `${f}.${quoteMssqlIdentifier(table)}`, types, row);
      }
    }

    const s = quoteMssqlIdentifier(TABLES);
    await db.exec(wMssqlDdl().replace("$s", s));
    const wTypes = W_COLUMNS.map((c): [string, LogicalType] => [c.mssql, c.logicalType]);
    // 2,100 parameters at most per statement: 100 rows of 13.
    for (let start = 1; start <= W_ROWS; start += 100) {
      const rows = Array.from(
        { length: Math.min(100, W_ROWS - start + 1) },
        (_, i) => wExpectedRow(start + i),
      );
      await insertRows(db, `${s}.${quoteMssqlIdentifier(W_TABLE)}`, wTypes, rows);
    }

    await db.exec(edgeMssqlDdl().replace("$s", s));
    const columns = edgeColumnsFor("mssql");
    const types = edgeMssqlColumns();
    for (const c of edgeCasesFor("mssql")) {
      const at = columns.findIndex((column) => column.name === c.column);
      const value = insertValue(
        types[at]!.type,
        columns[at]!.logicalType,
        c.input ?? c.expected,
        1,
      );
      await db.exec(
        `INSERT INTO ${s}.${quoteMssqlIdentifier(EDGE_TABLE)} (id, ${
          quoteMssqlIdentifier(c.column)
        }) VALUES (@p0, ${value.sql})`,
        [{ type: TYPES.Int, value: c.id }, value.param],
      );
    }

    const reader = quoteMssqlIdentifier(READER);
    await db.exec(`CREATE USER ${reader} FOR LOGIN ${reader};
      GRANT SELECT ON SCHEMA::${f} TO ${reader};
      GRANT SELECT ON SCHEMA::${s} TO ${reader};`);
  } finally {
    db.close();
  }
}

async function insertRow(
  db: Admin,
  table: string,
  types: readonly [string, LogicalType][],
  row: readonly (string | null)[],
): Promise<void> {
  await insertRows(db, table, types, [row]);
}

async function insertRows(
  db: Admin,
  table: string,
  types: readonly [string, LogicalType][],
  rows: readonly (readonly (string | null)[])[],
): Promise<void> {
  const params: Param[] = [];
  const tuples = rows.map((row) =>
    `(${
      row.map((value, i) => {
        const [type, logical] = types[i]!;
        const made = insertValue(type, logical, value, params.length);
        params.push(made.param);
        return made.sql;
      }).join(", ")
    })`
  );
  await db.exec(`INSERT INTO ${table} VALUES ${tuples.join(", ")}`, params);
}
