import assert from "node:assert/strict";
import type { CatalogColumn } from "../../domain/catalog.ts";
import { encodeCsvRows } from "../../domain/csv.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import { MysqlCsvEncoder } from "./mysql_csv.ts";
import { CsvEncoding, mysqlCanonicalConverter, mysqlCsvEncoding } from "./mysql_dialect.ts";

const encoder = new TextEncoder();

function column(dataType: string, logicalType: LogicalType): CatalogColumn {
  return { name: dataType, dataType, logicalType, nullable: true, description: null };
}

/** A text-protocol row packet: each value length-coded, `null` as 0xFB. */
function packet(values: readonly (Uint8Array | null)[]): Uint8Array {
  const parts: number[] = [];
  for (const value of values) {
    if (value === null) {
      parts.push(0xfb);
      continue;
    }
    const n = value.length;
    if (n < 0xfb) parts.push(n);
    else if (n < 1 << 16) parts.push(0xfc, n & 0xff, n >> 8);
    else if (n < 1 << 24) parts.push(0xfd, n & 0xff, (n >> 8) & 0xff, n >> 16);
    else throw new RangeError("too long for this test");
    parts.push(...value);
  }
  return Uint8Array.from(parts);
}

/** What readRows gives (mysql2's text or bytes through the converter), encoded by domain/csv.ts. */
function expectedCsv(columns: readonly CatalogColumn[], rows: readonly (Uint8Array | null)[][]) {
  const converters = columns.map(mysqlCanonicalConverter);
  const bytes = columns.map((c) =>
    mysqlCsvEncoding(c).encoding === CsvEncoding.binary || /^bit/.test(c.dataType)
  );
  const canonical = rows.map((row) =>
    row.map((value, i) => {
      if (value === null) return null;
      const sent = bytes[i] ? value : new TextDecoder().decode(value);
      return converters[i]!(sent as string & Uint8Array);
    })
  );
  return encodeCsvRows(canonical, columns.map((c) => c.logicalType.kind));
}

function encodedCsv(columns: readonly CatalogColumn[], rows: readonly (Uint8Array | null)[][]) {
  const csv = new MysqlCsvEncoder(columns.map(mysqlCsvEncoding), 64);
  const chunks: Uint8Array[] = [];
  for (const row of rows) {
    const bytes = packet(row);
    assert.equal(csv.addRow(bytes, 0, bytes.length), bytes.length);
    if (csv.full) chunks.push(csv.take());
  }
  if (csv.size > 0) chunks.push(csv.take());
  return chunks.map((c) => new TextDecoder().decode(c)).join("");
}

Deno.test("MysqlCsvEncoder writes what readRows and domain/csv.ts write, for every encoding", () => {
  const columns = [
    column("bigint(20)", { kind: "bigint" }),
    column("int(5) unsigned zerofill", { kind: "bigint" }),
    column("year(4)", { kind: "smallint" }),
    column("tinyint(1)", { kind: "boolean" }),
    column("double", { kind: "double" }),
    column("float", { kind: "real" }),
    column("time(6)", { kind: "time" }),
    column("datetime(3)", { kind: "timestamp" }),
    column("timestamp(6)", { kind: "timestamptz" }),
    column("uuid", { kind: "uuid" }),
    column("varbinary(8)", { kind: "binary" }),
    column("bit(10)", { kind: "text" }),
    column("text", { kind: "text" }),
    column("json", { kind: "json" }),
    column("decimal(10,2)", { kind: "decimal", precision: 10, scale: 2 }),
  ];
  const t = (s: string) => encoder.encode(s);
  const rows: (Uint8Array | null)[][] = [
    [
      t("-9223372036854775808"),
      t("00042"),
      t("0000"),
      t("0"),
      t("1e20"),
      t("0.10000000149011612"),
      t("-838:59:59.000000"),
      t("2020-01-01 00:00:00.120"),
      t("1970-01-01 00:00:00.000001"),
      t("0E8A5A35-2C76-4B0C-9C5E-7C5F0F2B0D1E"),
      Uint8Array.from([0, 0xff, 0x10]),
      Uint8Array.from([0x02, 0xff]),
      t('a "quoted", multi\nline\r value'),
      t('{"k": [1, "é"]}'),
      t("-0.50"),
    ],
    [
      t("7"),
      t("0"),
      t("2024"),
      t("1"),
      t("-1.5e-7"),
      t("3.4028234663852886e38"),
      t("12:00:00"),
      t("2020-01-01 00:00:00.000"),
      t("2038-01-19 03:14:07.999999"),
      null,
      Uint8Array.from([]),
      Uint8Array.from([0x00, 0x01]),
      t(""),
      null,
      null,
    ],
    // Long values take the 2- and 3-byte length prefixes; NULL everywhere is a row of commas.
    [
      null,
      null,
      null,
      t("5"),
      t("123456789012345680000"),
      null,
      null,
      null,
      null,
      null,
      new Uint8Array(300).fill(0xab),
      null,
      t("x".repeat(70_000) + ","),
      t("é".repeat(200)),
      null,
    ],
    columns.map(() => null),
  ];
  assert.equal(encodedCsv(columns, rows), expectedCsv(columns, rows));
});

Deno.test("MysqlCsvEncoder quotes a lone \\. in a single-column table, and only there", () => {
  const one = [column("varchar(2)", { kind: "text" })];
  const two = [column("varchar(2)", { kind: "text" }), column("int(11)", { kind: "integer" })];
  const dot = encoder.encode("\\.");
  assert.equal(encodedCsv(one, [[dot]]), '"\\."\n');
  assert.equal(encodedCsv(two, [[dot, encoder.encode("1")]]), "\\.,1\n");
  assert.equal(encodedCsv(one, [[dot]]), expectedCsv(one, [[dot]]));
});

Deno.test("MysqlCsvEncoder refuses a packet that ends before its values", () => {
  const columns = [column("int(11)", { kind: "integer" }), column("int(11)", { kind: "integer" })];
  const csv = new MysqlCsvEncoder(columns.map(mysqlCsvEncoding), 1024);
  const short = packet([encoder.encode("1")]);
  assert.throws(() => csv.addRow(short, 0, short.length), RangeError);
  const overrun = Uint8Array.from([5, 0x31]);
  assert.throws(() => csv.addRow(overrun, 0, overrun.length), RangeError);
});
