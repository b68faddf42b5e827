/**
 * The W and EDGE tables of `w_table.ts` as the fake TDS server serves them, with SQL Server's types, and
 * the fake as a process of its own serving W, whose rows are generated as they are read (nothing is kept
 * in memory). The benchmark runs the process so that the fake's CPU is counted apart from the client's.
 *
 * `deno run --allow-net=127.0.0.1 tests/support/fake_tds_w_process.ts <rows> <user> <password>` prints one
 * line, `{"port": <port>}`, once it listens, and serves until it is killed. The schema is `dbo`
 * ({@link FAKE_W_SCHEMA}), the tables `wide` and `edge`.
 *
 * @module
 */
import { type FakeSchema, startFakeTdsServer } from "./fake_tds_server.ts";
import {
  EDGE_TABLE,
  edgeMssqlColumns,
  edgeMssqlRows,
  W_COLUMNS,
  W_TABLE,
  wMssqlRow,
} from "./w_table.ts";

/** The schema the process serves the tables in. */
export const FAKE_W_SCHEMA = "dbo";

/** A schema holding W (rows 1..`wRows`, made as they are read) and EDGE, as SQL Server stores them. */
export function mssqlTablesSchema(name: string, wRows: number): FakeSchema {
  return {
    name,
    tables: [
      {
        name: W_TABLE,
        kind: "BASE TABLE",
        primaryKey: ["id"],
        columns: W_COLUMNS.map((c) => ({ name: c.name, type: c.mssql, nullable: c.name !== "id" })),
        rows: {
          *[Symbol.iterator]() {
            for (let id = 1; id <= wRows; id++) yield wMssqlRow(id);
          },
        },
      },
      {
        name: EDGE_TABLE,
        kind: "BASE TABLE",
        primaryKey: ["id"],
        columns: edgeMssqlColumns().map((c) => ({ ...c, nullable: c.name !== "id" })),
        rows: edgeMssqlRows(),
      },
    ],
  };
}

if (import.meta.main) {
  const [rowsText = "", userName = "", password = ""] = Deno.args;
  const rows = Number(rowsText);
  if (!Number.isSafeInteger(rows) || rows < 0 || userName === "" || password === "") {
    throw new TypeError("Usage: fake_tds_w_process.ts <rows> <user> <password>");
  }
  const server = await startFakeTdsServer({
    userName,
    password,
    schemas: [mssqlTablesSchema(FAKE_W_SCHEMA, rows)],
  });
  Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify({ port: server.port })}\n`));
}
