import assert from "node:assert/strict";
import type { LogicalType } from "../../domain/logical_type.ts";
import { postgresLogicalType, quotePostgresIdentifier } from "./postgres_dialect.ts";

Deno.test("postgresLogicalType() maps built-in types", async (t) => {
  const cases: [string, string, LogicalType][] = [
    ["bool", "boolean", { kind: "boolean" }],
    ["int2", "smallint", { kind: "smallint" }],
    ["int4", "integer", { kind: "integer" }],
    ["int8", "bigint", { kind: "bigint" }],
    ["numeric", "numeric(18,2)", { kind: "decimal", precision: 18, scale: 2 }],
    ["numeric", "numeric(38,0)", { kind: "decimal", precision: 38, scale: 0 }],
    ["numeric", "numeric", { kind: "numeric" }],
    ["numeric", "numeric(5,-2)", { kind: "numeric" }],
    ["numeric", "numeric(2,5)", { kind: "numeric" }],
    ["float4", "real", { kind: "real" }],
    ["float8", "double precision", { kind: "double" }],
    ["date", "date", { kind: "date" }],
    ["time", "time(3) without time zone", { kind: "time" }],
    ["timetz", "time with time zone", { kind: "text" }],
    ["timestamp", "timestamp without time zone", { kind: "timestamp" }],
    ["timestamptz", "timestamp with time zone", { kind: "timestamptz" }],
    ["interval", "interval", { kind: "interval" }],
    ["uuid", "uuid", { kind: "uuid" }],
    ["json", "json", { kind: "json" }],
    ["jsonb", "jsonb", { kind: "json" }],
    ["bytea", "bytea", { kind: "binary" }],
    ["text", "text", { kind: "text" }],
    ["varchar", "character varying(20)", { kind: "text" }],
    ["bpchar", "character(3)", { kind: "text" }],
    ["name", "name", { kind: "text" }],
    ["_int4", "integer[]", { kind: "text" }],
    ["money", "money", { kind: "text" }],
    ["inet", "inet", { kind: "text" }],
    ["bit", "bit(5)", { kind: "text" }],
  ];
  for (const [typeName, formatted, expected] of cases) {
    await t.step(`${typeName} ${formatted}`, () => {
      assert.deepEqual(postgresLogicalType(typeName, formatted), expected);
    });
  }
});

Deno.test("quotePostgresIdentifier() doubles the quotes inside a name", () => {
  assert.equal(quotePostgresIdentifier('a"b'), '"a""b"');
  assert.equal(quotePostgresIdentifier("Mixed Case"), '"Mixed Case"');
});
