import assert from "node:assert/strict";
import type { TableExtract } from "../domain/catalog.ts";
import type { ProgressReport } from "../domain/long_work.ts";
import { estimatedRowBytes } from "../ports/source_database.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { watchedReader } from "./source.ts";

Deno.test("watchedReader() reports each batch's rows and estimated bytes, as the source's batcher sized them", async () => {
  await using db = new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS);
  const table = ONCOLOGY.tables.find((t) => t.name === "tumour_stage")!;
  const extract: TableExtract = { schema: ONCOLOGY.name, table };
  const reports: ProgressReport[] = [];
  const read: string[][] = [];
  const reader = watchedReader(db, { onProgress: (p) => reports.push(p) });
  for await (const batch of reader.readRows(extract, { batchRows: 1 })) {
    read.push(...batch.map((row) => row.map(String)));
  }
  const rows = ONCOLOGY_ROWS.get(`${ONCOLOGY.name}.tumour_stage`)!;
  assert.equal(reports.length, rows.length, "one report per one-row batch");
  let bytes = 0;
  reports.forEach((report, i) => {
    bytes += estimatedRowBytes(rows[i]!.slice(0, table.columns.length));
    assert.deepEqual(report, { table: "tumour_stage", rows: i + 1, bytes });
  });
  assert.equal(read.length, rows.length);
});
