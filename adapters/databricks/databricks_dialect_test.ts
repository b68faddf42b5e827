import assert from "node:assert/strict";
import type { LogicalType } from "../../domain/logical_type.ts";
import { databricksLogicalType } from "./databricks_dialect.ts";

Deno.test("databricksLogicalType() maps every Unity Catalog type name", async (t) => {
  const rows: [typeName: string, typeText: string, expected: LogicalType][] = [
    ["BOOLEAN", "boolean", { kind: "boolean" }],
    ["BYTE", "tinyint", { kind: "smallint" }],
    ["SHORT", "smallint", { kind: "smallint" }],
    ["INT", "int", { kind: "integer" }],
    ["LONG", "bigint", { kind: "bigint" }],
    ["FLOAT", "float", { kind: "real" }],
    ["DOUBLE", "double", { kind: "double" }],
    ["DECIMAL", "decimal(18,2)", { kind: "decimal", precision: 18, scale: 2 }],
    ["DATE", "date", { kind: "date" }],
    ["TIMESTAMP", "timestamp", { kind: "timestamptz" }],
    ["TIMESTAMP_NTZ", "timestamp_ntz", { kind: "timestamp" }],
    ["STRING", "string", { kind: "text" }],
    ["CHAR", "char(3)", { kind: "text" }],
    ["VARCHAR", "varchar(20)", { kind: "text" }],
    ["BINARY", "binary", { kind: "binary" }],
    ["ARRAY", "array<string>", { kind: "json" }],
    ["ARRAY", "array<struct<a:int,b:array<double>>>", { kind: "json" }],
    ["MAP", "map<string,bigint>", { kind: "json" }],
    ["STRUCT", "struct<a:int,b:string>", { kind: "json" }],
    ["VARIANT", "variant", { kind: "json" }],
    ["INTERVAL", "interval day to second", { kind: "text" }],
    ["NULL", "void", { kind: "text" }],
    ["USER_DEFINED_TYPE", "my_udt", { kind: "text" }],
    ["TABLE_TYPE", "table", { kind: "text" }],
    ["GEOGRAPHY", "geography(4326)", { kind: "text" }],
  ];
  for (const [typeName, typeText, expected] of rows) {
    await t.step(`${typeName} ${typeText}`, () => {
      assert.deepEqual(
        databricksLogicalType({ type_name: typeName, type_text: typeText }),
        expected,
      );
    });
  }
});

Deno.test("databricksLogicalType() ignores the case of the type name", () => {
  assert.deepEqual(databricksLogicalType({ type_name: "long", type_text: "bigint" }), {
    kind: "bigint",
  });
  assert.deepEqual(
    databricksLogicalType({ type_name: "Timestamp_Ntz", type_text: "timestamp_ntz" }),
    { kind: "timestamp" },
  );
});

Deno.test("databricksLogicalType() does not treat Object.prototype names as types", () => {
  for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
    assert.deepEqual(databricksLogicalType({ type_name: name, type_text: name }), {
      kind: "text",
    });
  }
});

Deno.test("databricksLogicalType() reads DECIMAL precision and scale from type_text", async (t) => {
  const rows: [typeText: string, precision: number, scale: number][] = [
    ["decimal(18,2)", 18, 2],
    ["DECIMAL(38,38)", 38, 38],
    ["Decimal( 7 , 0 )", 7, 0],
    ["decimal(5)", 5, 0],
    ["decimal", 10, 0],
    ["DECIMAL", 10, 0],
    ["numeric(12,4)", 12, 4],
    ["dec(3,1)", 3, 1],
  ];
  for (const [typeText, precision, scale] of rows) {
    await t.step(typeText, () => {
      assert.deepEqual(databricksLogicalType({ type_name: "DECIMAL", type_text: typeText }), {
        kind: "decimal",
        precision,
        scale,
      });
    });
  }
});

Deno.test("databricksLogicalType() rejects a malformed DECIMAL type_text", async (t) => {
  for (
    const typeText of [
      "",
      "decimal(",
      "decimal(18,)",
      "decimal(a,b)",
      "decimal(18,2",
      "decimal(-1,0)",
      "decimal(0,0)",
      "decimal(39,2)",
      "decimal(5,6)",
      "double",
      "decimal(18,2) not null",
    ]
  ) {
    await t.step(JSON.stringify(typeText), () => {
      assert.throws(
        () => databricksLogicalType({ type_name: "DECIMAL", type_text: typeText }),
        (e: unknown) =>
          e instanceof SyntaxError &&
          e.message.startsWith("Cannot parse Databricks decimal type") &&
          e.message.includes(JSON.stringify(typeText)),
      );
    });
  }
});
