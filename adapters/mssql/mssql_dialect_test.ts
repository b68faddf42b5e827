import assert from "node:assert/strict";
import {
  mssqlCanonicalConverter,
  mssqlFullType,
  mssqlLogicalType,
  mssqlSelectExpression,
  quoteMssqlIdentifier,
  sqlString,
} from "./mssql_dialect.ts";

Deno.test("mssqlLogicalType() and mssqlFullType() map SQL Server types", () => {
  const t = (dataType: string, extra: Partial<Parameters<typeof mssqlLogicalType>[0]> = {}) => ({
    dataType,
    maxLength: null,
    precision: null,
    scale: null,
    datetimePrecision: null,
    ...extra,
  });
  const kinds = [
    "bit",
    "tinyint",
    "smallint",
    "int",
    "bigint",
    "real",
    "float",
    "date",
    "time",
    "datetime",
    "datetime2",
    "smalldatetime",
    "datetimeoffset",
    "uniqueidentifier",
    "varbinary",
    "image",
    "rowversion",
    "nvarchar",
    "xml",
    "sql_variant",
  ].map((d) => mssqlLogicalType(t(d)).kind);
  assert.deepEqual(kinds, [
    "boolean",
    "smallint",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double",
    "date",
    "time",
    "timestamp",
    "timestamp",
    "timestamp",
    "timestamptz",
    "uuid",
    "binary",
    "binary",
    "binary",
    "text",
    "text",
    "text",
  ]);
  assert.deepEqual(mssqlLogicalType(t("numeric", { precision: 38, scale: 10 })), {
    kind: "decimal",
    precision: 38,
    scale: 10,
  });
  assert.deepEqual(mssqlLogicalType(t("money")), { kind: "decimal", precision: 19, scale: 4 });
  assert.deepEqual(mssqlLogicalType(t("smallmoney")), { kind: "decimal", precision: 10, scale: 4 });
  assert.equal(mssqlFullType(t("varbinary", { maxLength: -1 })), "varbinary(max)");
  assert.equal(mssqlFullType(t("numeric", { precision: 38, scale: 10 })), "numeric(38,10)");
  assert.equal(mssqlFullType(t("time", { datetimePrecision: 3 })), "time(3)");
  assert.equal(mssqlFullType(t("money", { precision: 19, scale: 4 })), "money");
});

Deno.test("mssqlSelectExpression() converts lossy types on the server; identifiers are quoted", () => {
  const e = (name: string, dataType: string) => mssqlSelectExpression({ name, dataType });
  assert.equal(quoteMssqlIdentifier("a]b[c"), "[a]]b[c]");
  assert.equal(sqlString("it's"), "N'it''s'");
  assert.equal(e("d", "decimal(38,10)"), "CONVERT(nvarchar(50), [d])");
  assert.equal(e("m", "money"), "CONVERT(nvarchar(50), [m], 2)");
  assert.equal(e("t", "datetime2(7)"), "CONVERT(nvarchar(27), [t], 121)");
  assert.equal(
    e("o", "datetimeoffset(7)"),
    "CONVERT(nvarchar(27), CAST(SWITCHOFFSET([o], '+00:00') AS datetime2(7)), 121)",
  );
  assert.equal(e("u", "uniqueidentifier"), "LOWER(CONVERT(nchar(36), [u]))");
  assert.equal(
    e("b", "varbinary(max)"),
    "LOWER(CONVERT(nvarchar(max), CONVERT(varbinary(max), [b]), 2))",
  );
  // Code-page text is read as nvarchar: tedious decodes it far faster, and nothing is lost.
  assert.equal(e("v", "varchar(20)"), "CONVERT(nvarchar(20), [v])");
  assert.equal(e("v", "char(10)"), "CONVERT(nvarchar(10), [v])");
  assert.equal(e("v", "varchar(8000)"), "CONVERT(nvarchar(max), [v])");
  assert.equal(e("v", "varchar(max)"), "CONVERT(nvarchar(max), [v])");
  assert.equal(e("v", "text"), "CONVERT(nvarchar(max), [v])");
  assert.equal(e("x]", "nvarchar(10)"), "[x]]]");
  assert.equal(e("i", "int"), "[i]");
});

Deno.test("mssqlCanonicalConverter() writes canonical text", () => {
  const c = (
    dataType: string,
    kind: Parameters<typeof mssqlCanonicalConverter>[0]["logicalType"],
  ) => mssqlCanonicalConverter({ dataType, logicalType: kind });
  assert.equal(c("bit", { kind: "boolean" })(true), "true");
  assert.equal(c("real", { kind: "real" })(Math.fround(0.1)), "0.1");
  assert.equal(c("float", { kind: "double" })(0.1 + 0.2), "0.30000000000000004");
  assert.equal(
    c("datetime2(7)", { kind: "timestamp" })("2024-01-01 00:00:00.1200000"),
    "2024-01-01 00:00:00.12",
  );
  assert.equal(c("time(7)", { kind: "time" })("12:00:00.0000000"), "12:00:00");
  assert.equal(
    c("datetimeoffset(7)", { kind: "timestamptz" })("2020-01-01 00:00:01.1234560"),
    "2020-01-01 00:00:01.123456+00",
  );
  assert.equal(
    c("uniqueidentifier", { kind: "uuid" })("9B2C0000-0000-0000-0000-00000000ABCD"),
    "9b2c0000-0000-0000-0000-00000000abcd",
  );
  assert.equal(c("varbinary(4)", { kind: "binary" })("01ff"), "\\x01ff");
  assert.equal(c("varbinary(4)", { kind: "binary" })(new Uint8Array([1, 255])), "\\x01ff");
  assert.equal(c("bigint", { kind: "bigint" })("-9223372036854775808"), "-9223372036854775808");
});
