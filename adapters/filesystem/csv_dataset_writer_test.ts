import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import type { SchemaCatalog, TableExtract } from "../../domain/catalog.ts";
import { tableExtracts } from "../../domain/catalog.ts";
import { encodeCsvRow, encodeCsvRows, parseCsv } from "../../domain/csv.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import type { SourceDatabase } from "../../ports/source_database.ts";
import {
  datasetWriterContract,
  stagingWork,
  type TablesRead,
} from "../../tests/contracts/dataset_writer_contract.ts";
import { CsvDatasetWriter } from "./csv_dataset_writer.ts";

/** Reads staged CSV files back as canonical rows per `schema.table`, checking each header. */
async function readBack(dir: string, files: readonly { path: string }[]): Promise<TablesRead> {
  const tables = new Map<string, CanonicalRow[]>();
  for (const file of files) {
    const match = /^data\/outputs\/([^/]+)\/([^/]+)\.csv$/.exec(file.path);
    assert.ok(match, `unexpected path ${file.path}`);
    const rows = parseCsv(await readFile(join(dir, file.path), "utf8"));
    tables.set(`${match[1]}.${match[2]}`, rows.slice(1));
  }
  return tables;
}

Deno.test("CsvDatasetWriter passes the DatasetWriter contract", async (t) => {
  await datasetWriterContract(t, () => new CsvDatasetWriter(), readBack);
});

const CATALOG: SchemaCatalog = {
  name: "s",
  description: null,
  tables: [{
    name: "t",
    kind: "table",
    description: null,
    primaryKey: [],
    columns: [
      {
        name: "a",
        dataType: "text",
        logicalType: { kind: "text" },
        nullable: true,
        description: null,
      },
      {
        name: "b",
        dataType: "text",
        logicalType: { kind: "text" },
        nullable: true,
        description: null,
      },
    ],
  }],
};
const ROWS: CanonicalRow[] = [["x,y", null], ["", "\\."], ['say "hi"', "line\r\nbreak"]];

/** A source that also offers a CSV fast path, returning the given bytes. */
class CsvSource extends MemorySourceDatabase implements SourceDatabase {
  readonly csvCalls: string[] = [];
  constructor(private readonly bytes: Uint8Array) {
    super([CATALOG], new Map([["s.t", ROWS]]));
  }
  async *readCsv(extract: TableExtract): AsyncIterable<Uint8Array> {
    this.csvCalls.push(extract.table.name);
    await Promise.resolve();
    yield this.bytes.subarray(0, 5);
    yield this.bytes.subarray(5);
  }
}

Deno.test("CsvDatasetWriter specifics", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-csv-" });
  try {
    await t.step("encodes rows in the canonical form: header, quoting, NULL vs empty", async () => {
      const files = await new CsvDatasetWriter().write(
        stagingWork(dir),
        new MemorySourceDatabase([CATALOG], new Map([["s.t", ROWS]])),
        tableExtracts(CATALOG),
        { concurrency: 1, batchRows: 1 },
      );
      const text = await readFile(join(dir, "data/outputs/s/t.csv"), "utf8");
      assert.equal(text, 'a,b\n"x,y",\n"",\\.\n"say ""hi""","line\r\nbreak"\n');
      assert.equal(files[0]?.bytes, new TextEncoder().encode(text).length);
    });

    await t.step("passes a source's canonical CSV through byte for byte", async () => {
      const bytes = new TextEncoder().encode(encodeCsvRow(["a", "b"]) + encodeCsvRows(ROWS));
      const source = new CsvSource(bytes);
      const passDir = await Deno.makeTempDir({ dir });
      const [file] = await new CsvDatasetWriter().write(
        stagingWork(passDir),
        source,
        tableExtracts(CATALOG),
        { concurrency: 1, batchRows: 1 },
      );
      assert.deepEqual(source.csvCalls, ["t"]);
      assert.deepEqual(
        new Uint8Array(await readFile(join(passDir, "data/outputs/s/t.csv"))),
        bytes,
      );
      assert.equal(file?.bytes, bytes.length);
    });

    await t.step(
      "with formulaPrefix, escapes text values and header names and marks the file",
      async () => {
        const formulas: SchemaCatalog = {
          ...CATALOG,
          tables: [{
            ...CATALOG.tables[0]!,
            columns: [
              { ...CATALOG.tables[0]!.columns[0]!, name: "=name" },
              {
                ...CATALOG.tables[0]!.columns[1]!,
                dataType: "integer",
                logicalType: { kind: "integer" },
              },
            ],
          }],
        };
        const rows = [["=1+1", "-1"], ["-x", null], ["plain", "2"]];
        // A CSV fast path that would bypass the escape: it must not be used.
        const source = new CsvSource(new TextEncoder().encode("unused\n"));
        const escapedSource = Object.assign(
          new MemorySourceDatabase([formulas], new Map([["s.t", rows]])),
          { readCsv: source.readCsv.bind(source) },
        );
        const escapeDir = await Deno.makeTempDir({ dir });
        const [file] = await new CsvDatasetWriter({ formulaPrefix: true }).write(
          stagingWork(escapeDir),
          escapedSource,
          tableExtracts(formulas),
          { concurrency: 1, batchRows: 2 },
        );
        assert.deepEqual(source.csvCalls, []);
        assert.equal(
          await readFile(join(escapeDir, "data/outputs/s/t.csv"), "utf8"),
          "'=name,b\n'=1+1,-1\n'-x,\nplain,2\n",
        );
        assert.equal(file?.csvFormulaPrefix, "'");
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
