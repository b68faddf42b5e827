import assert from "node:assert/strict";
import type { CatalogColumn, SchemaCatalog } from "../../domain/catalog.ts";
import type { CanonicalRow, LogicalType } from "../../domain/logical_type.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import {
  FIXTURE_ROWS,
  FIXTURE_SCHEMA_COMMENT,
  sourceDatabaseContract,
} from "../../tests/contracts/source_database_contract.ts";
import {
  EDGE_TABLE,
  edgeCatalogTable,
  edgeExpectedRows,
  W_TABLE,
  wCatalogTable,
  wExpectedRows,
} from "../../tests/support/w_table.ts";
import { MemorySourceDatabase } from "./memory_source_database.ts";

function column(
  name: string,
  dataType: string,
  nullable: boolean,
  description: string | null = null,
): CatalogColumn {
  return { name, dataType, logicalType: logicalTypeOf(dataType), nullable, description };
}

/** The logical types of the few PostgreSQL types the fixture uses. */
function logicalTypeOf(dataType: string): LogicalType {
  if (dataType === "integer") return { kind: "integer" };
  if (dataType === "date") return { kind: "date" };
  if (dataType === "timestamp without time zone") return { kind: "timestamp" };
  const decimal = /^numeric\((\d+),(\d+)\)$/.exec(dataType);
  if (decimal !== null) {
    return { kind: "decimal", precision: Number(decimal[1]), scale: Number(decimal[2]) };
  }
  return { kind: "text" };
}

/** The standard fixture's rows, keyed `schema.table`. */
function standardRows(schema: string): Map<string, readonly CanonicalRow[]> {
  return new Map(
    Object.entries(FIXTURE_ROWS).map(([table, rows]) => [`${schema}.${table}`, rows]),
  );
}

/** The contract's standard fixture, written out by hand, deliberately not in name order. */
function standardFixture(schema: string): SchemaCatalog {
  return {
    name: schema,
    description: FIXTURE_SCHEMA_COMMENT,
    tables: [
      {
        name: "visits",
        kind: "table",
        description: null,
        columns: [
          column("visit_no", "integer", false),
          column("patient_id", "integer", false),
          column("visited_on", "date", false),
          column("notes", "text", true, "Free text"),
        ],
        primaryKey: ["patient_id", "visit_no"],
      },
      {
        name: "patients",
        kind: "table",
        description: "One row per patient",
        columns: [
          column("id", "integer", false),
          column("nhs_number", "character varying(10)", false, "NHS number"),
          column("birth_date", "date", true),
          column("weight", "numeric(6,2)", true),
        ],
        primaryKey: ["id"],
      },
      {
        name: "patient_names",
        kind: "view",
        description: null,
        columns: [
          column("id", "integer", true),
          column("nhs_number", "character varying(10)", true),
        ],
        primaryKey: [],
      },
      {
        name: "audit_log",
        kind: "table",
        description: null,
        columns: [
          column("event", "character varying(100)", false),
          column("logged_at", "timestamp without time zone", true),
        ],
        primaryKey: [],
      },
    ],
  };
}

Deno.test("MemorySourceDatabase passes the SourceDatabase contract", async (t) => {
  await sourceDatabaseContract(t, {
    name: "MemorySourceDatabase",
    setUp: () => {
      const schema = "contract_fixture";
      const tables: SchemaCatalog = {
        name: "contract_tables",
        description: null,
        tables: [wCatalogTable(), edgeCatalogTable()],
      };
      const rows = new Map([
        ...standardRows(schema),
        [`${tables.name}.${W_TABLE}`, wExpectedRows(1_000)],
        [`${tables.name}.${EDGE_TABLE}`, edgeExpectedRows("any")],
      ]);
      return Promise.resolve({
        schema,
        connect: () =>
          Promise.resolve(new MemorySourceDatabase([standardFixture(schema), tables], rows)),
        cleanup: () => Promise.resolve(),
        wide: { schema: tables.name, table: W_TABLE, rows: 1_000 },
        edge: { schema: tables.name, table: EDGE_TABLE, engine: "any" },
      });
    },
  });
});

Deno.test("MemorySourceDatabase breakConnection() makes every call unavailable", async () => {
  const db = new MemorySourceDatabase([standardFixture("s")]);
  db.breakConnection();
  await assert.rejects(db.ping(), SourceUnavailableError);
  await assert.rejects(db.describeSchema("s"), SourceUnavailableError);
});

Deno.test("MemorySourceDatabase closed reports close()", async () => {
  const db = new MemorySourceDatabase([]);
  assert.equal(db.closed, false);
  await db.close();
  assert.equal(db.closed, true);
});

Deno.test("MemorySourceDatabase failAfterRows() makes readRows() reject mid-stream", async () => {
  const db = new MemorySourceDatabase([standardFixture("s")], standardRows("s"));
  const [patients] = (await db.describeSchema("s", { tables: ["patients"] })).tables;
  assert.ok(patients);
  db.failAfterRows(1);
  const seen: CanonicalRow[] = [];
  await assert.rejects(async () => {
    for await (const batch of db.readRows({ schema: "s", table: patients }, { batchRows: 1 })) {
      seen.push(...batch);
    }
  }, SourceUnavailableError);
  assert.equal(seen.length, 1);
});
