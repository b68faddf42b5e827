import assert from "node:assert/strict";
import type { CatalogColumn, SchemaCatalog } from "../../domain/catalog.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import {
  FIXTURE_SCHEMA_COMMENT,
  sourceDatabaseContract,
} from "../../tests/contracts/source_database_contract.ts";
import { MemorySourceDatabase } from "./memory_source_database.ts";

function column(
  name: string,
  dataType: string,
  nullable: boolean,
  description: string | null = null,
): CatalogColumn {
  return { name, dataType, logicalType: { kind: "text" }, nullable, description };
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
      return Promise.resolve({
        schema,
        connect: () => Promise.resolve(new MemorySourceDatabase([standardFixture(schema)])),
        cleanup: () => Promise.resolve(),
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
