import assert from "node:assert/strict";
import type { CatalogTable } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import {
  fitsPostgresNumeric,
  postgresColumnType,
  postgresCreateTableSql,
} from "./postgres_columns.ts";

Deno.test("postgresColumnType() maps every logical type", async (t) => {
  const cases: [LogicalType, string, string][] = [
    [{ kind: "boolean" }, "", "boolean"],
    [{ kind: "smallint" }, "", "smallint"],
    [{ kind: "integer" }, "", "integer"],
    [{ kind: "bigint" }, "", "bigint"],
    [{ kind: "decimal", precision: 18, scale: 2 }, "", "numeric(18,2)"],
    [{ kind: "decimal", precision: 65, scale: 30 }, "", "numeric(65,30)"],
    [{ kind: "decimal", precision: 1001, scale: 2 }, "", "numeric"],
    [{ kind: "decimal", precision: 5, scale: 6 }, "", "numeric"],
    [{ kind: "numeric" }, "", "numeric"],
    [{ kind: "real" }, "", "real"],
    [{ kind: "double" }, "", "double precision"],
    [{ kind: "date" }, "", "date"],
    [{ kind: "time" }, "", "time"],
    [{ kind: "timestamp" }, "", "timestamp"],
    [{ kind: "timestamptz" }, "", "timestamptz"],
    [{ kind: "interval" }, "", "interval"],
    [{ kind: "uuid" }, "", "uuid"],
    [{ kind: "json" }, "jsonb", "jsonb"],
    [{ kind: "json" }, "json", "json"],
    [{ kind: "json" }, "longtext", "json"],
    [{ kind: "binary" }, "", "bytea"],
    [{ kind: "text" }, "character varying(20)", "text"],
  ];
  for (const [type, sourceType, expected] of cases) {
    await t.step(`${JSON.stringify(type)} from "${sourceType}"`, () => {
      assert.equal(postgresColumnType(type, sourceType), expected);
    });
  }
});

Deno.test("fitsPostgresNumeric() accepts what numeric(p,s) declares exactly", () => {
  assert.equal(fitsPostgresNumeric(1, 0), true);
  assert.equal(fitsPostgresNumeric(1000, 1000), true);
  assert.equal(fitsPostgresNumeric(0, 0), false);
  assert.equal(fitsPostgresNumeric(10, -1), false);
  assert.equal(fitsPostgresNumeric(10, 11), false);
  assert.equal(fitsPostgresNumeric(1.5, 0), false);
});

Deno.test("postgresCreateTableSql() quotes names and keeps NOT NULL and the primary key", () => {
  const table: CatalogTable = {
    name: 'Odd "T", x',
    kind: "table",
    description: null,
    primaryKey: ["k 1", "B"],
    columns: [
      {
        name: "k 1",
        dataType: "int",
        logicalType: { kind: "integer" },
        nullable: false,
        description: null,
      },
      {
        name: "B",
        dataType: "text",
        logicalType: { kind: "text" },
        nullable: false,
        description: null,
      },
      {
        name: 'a,"b"',
        dataType: "numeric(5,1)",
        logicalType: { kind: "decimal", precision: 5, scale: 1 },
        nullable: true,
        description: null,
      },
    ],
  };
  assert.equal(
    postgresCreateTableSql('s"1', table),
    'create table "s""1"."Odd ""T"", x" ("k 1" integer not null, "B" text not null, ' +
      '"a,""b""" numeric(5,1), primary key ("k 1", "B"))',
  );
});
