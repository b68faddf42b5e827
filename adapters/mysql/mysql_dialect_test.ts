import assert from "node:assert/strict";
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import { mysqlLogicalType, mysqlReadQuery } from "./mysql_dialect.ts";

Deno.test("mysqlReadQuery() guards the columns whose values can be over the limit", () => {
  const column = (name: string, dataType: string, kind: LogicalType["kind"]): CatalogColumn => ({
    name,
    dataType,
    logicalType: { kind } as LogicalType,
    nullable: true,
    description: null,
  });
  const extract: TableExtract = {
    schema: "db",
    table: {
      name: "t",
      kind: "table",
      description: null,
      primaryKey: [],
      columns: [
        column("id", "int(11)", "integer"),
        column("code", "varchar(20)", "text"),
        column("note", "text", "text"),
        column("body", "longtext", "text"),
        column("doc", "json", "json"),
        column("raw", "longblob", "binary"),
        column("small", "mediumblob", "binary"),
      ],
    },
  };
  const limit = 64 * 1024 * 1024;
  const query = mysqlReadQuery(extract, limit);
  assert.equal(
    query.sql,
    "SELECT `id` AS `c0`, `code` AS `c1`, `note` AS `c2`, " +
      `IF(LENGTH(\`body\`) > ${limit}, NULL, \`body\`) AS \`c3\`, ` +
      `IF(LENGTH(\`doc\`) > ${limit}, NULL, \`doc\`) AS \`c4\`, ` +
      `IF((LENGTH(\`raw\`) * 2 + 2) > ${limit}, NULL, \`raw\`) AS \`c5\`, \`small\` AS \`c6\`, ` +
      `CASE WHEN LENGTH(\`body\`) > ${limit} THEN 3 WHEN LENGTH(\`doc\`) > ${limit} THEN 4 ` +
      `WHEN (LENGTH(\`raw\`) * 2 + 2) > ${limit} THEN 5 END AS \`c7\` FROM \`db\`.\`t\``,
  );
  assert.equal(query.guarded, true);
  // Under a small limit the bounded types are guarded too; without a limit nothing is.
  assert.match(mysqlReadQuery(extract, 100).sql, /IF\(LENGTH\(`note`\) > 100, NULL, `note`\)/);
  assert.equal(mysqlReadQuery(extract).guarded, false);
});

Deno.test("mysqlLogicalType() maps MySQL and MariaDB types", async (t) => {
  const cases: [string, string, LogicalType, Partial<{ precision: number; scale: number }>?][] = [
    ["tinyint", "tinyint(1)", { kind: "boolean" }],
    ["tinyint", "tinyint(4)", { kind: "smallint" }],
    ["tinyint", "tinyint(3) unsigned", { kind: "smallint" }],
    ["smallint", "smallint(6)", { kind: "smallint" }],
    ["smallint", "smallint(5) unsigned", { kind: "integer" }],
    ["year", "year(4)", { kind: "smallint" }],
    ["mediumint", "mediumint(8) unsigned", { kind: "integer" }],
    ["int", "int(11)", { kind: "integer" }],
    ["int", "int(10) unsigned", { kind: "bigint" }],
    ["int", "int(5) unsigned zerofill", { kind: "bigint" }],
    ["bigint", "bigint(20)", { kind: "bigint" }],
    ["bigint", "bigint(20) unsigned", { kind: "numeric" }],
    ["decimal", "decimal(18,2)", { kind: "decimal", precision: 18, scale: 2 }, {
      precision: 18,
      scale: 2,
    }],
    ["float", "float", { kind: "real" }],
    ["double", "double", { kind: "double" }],
    ["date", "date", { kind: "date" }],
    ["time", "time(6)", { kind: "time" }],
    ["datetime", "datetime(6)", { kind: "timestamp" }],
    ["timestamp", "timestamp(6)", { kind: "timestamptz" }],
    ["json", "json", { kind: "json" }],
    ["longtext", "longtext", { kind: "text" }],
    ["uuid", "uuid", { kind: "uuid" }],
    ["binary", "binary(4)", { kind: "binary" }],
    ["varbinary", "varbinary(255)", { kind: "binary" }],
    ["blob", "blob", { kind: "binary" }],
    ["longblob", "longblob", { kind: "binary" }],
    ["point", "point", { kind: "binary" }],
    ["bit", "bit(5)", { kind: "text" }],
    ["char", "char(5)", { kind: "text" }],
    ["varchar", "varchar(20)", { kind: "text" }],
    ["enum", "enum('a','b')", { kind: "text" }],
    ["set", "set('a','b')", { kind: "text" }],
    ["inet6", "inet6", { kind: "text" }],
  ];
  for (const [dataType, columnType, expected, numbers] of cases) {
    await t.step(columnType, () => {
      assert.deepEqual(
        mysqlLogicalType({
          dataType,
          columnType,
          precision: numbers?.precision ?? null,
          scale: numbers?.scale ?? null,
        }),
        expected,
      );
    });
  }
  await t.step("longtext with a json_valid check (MariaDB's JSON)", () => {
    assert.deepEqual(
      mysqlLogicalType({
        dataType: "longtext",
        columnType: "longtext",
        precision: null,
        scale: null,
        jsonCheck: true,
      }),
      { kind: "json" },
    );
  });
});
