/**
 * A child process for the resume crash test: stages a slow multi-table dataset from an in-memory source
 * through the filestore destination (CSV), printing `read <table>` when a table's read starts and
 * `done <table> <sha512> <reused>` when a table is done, so the test can kill it with SIGKILL after some
 * tables are done, and can count the reads of a resumed stage.
 *
 * Usage: deno run -A resume_worker.ts <base> <batch-delay-ms> [reuse-json]
 *
 * @module
 */
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import { FilestoreDestination } from "../../application/destinations.ts";
import {
  type ReadRowsOptions,
  type SchemaCatalog,
  type TableExtract,
  tableExtracts,
  type TableReader,
} from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import type { ProgressReport, Staged } from "../../ports/destination.ts";
import { TEST_MANIFEST_KEY } from "./manifest_key.ts";

/** The run and dataset every stage of the test writes. */
export const RESUME_RUN = { project: "Resume", startTime: "20250611_093000" };
export const RESUME_SCHEMA = "cohort";
export const RESUME_TABLES = ["t1", "t2", "t3", "t4", "t5", "t6"];
const ROWS_PER_TABLE = 600;
const BATCH_ROWS = 50;

const CATALOG: SchemaCatalog = {
  name: RESUME_SCHEMA,
  description: null,
  tables: RESUME_TABLES.map((name) => ({
    name,
    kind: "table",
    description: null,
    primaryKey: ["id"],
    columns: [
      {
        name: "id",
        dataType: "integer",
        logicalType: { kind: "integer" },
        nullable: false,
        description: null,
      },
      {
        name: "label",
        dataType: "text",
        logicalType: { kind: "text" },
        nullable: true,
        description: null,
      },
    ],
  })),
};

function rows(): Map<string, CanonicalRow[]> {
  return new Map(RESUME_TABLES.map((table) => [
    `${RESUME_SCHEMA}.${table}`,
    Array.from({ length: ROWS_PER_TABLE }, (_, i) => [String(i), `${table} row ${i}, "quoted"`]),
  ]));
}

/** The in-memory source, each batch `delayMs` late; `onRead` is told when a table's read starts. */
function slowSource(delayMs: number, onRead: (table: string) => void): TableReader {
  const source = new MemorySourceDatabase([CATALOG], rows());
  return {
    async *readRows(extract: TableExtract, options?: ReadRowsOptions) {
      onRead(extract.table.name);
      for await (const batch of source.readRows(extract, options)) {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        yield batch;
      }
    },
  };
}

/**
 * Stages the dataset into the filestore at `base`.
 *
 * @param reuse the tables an interrupted stage finished, with their SHA-512.
 */
export function stageResumable(
  base: string,
  options: {
    delayMs: number;
    reuse?: ReadonlyMap<string, string>;
    onRead?: (table: string) => void;
    onProgress?: (report: ProgressReport) => void;
  },
): Promise<Staged> {
  const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
  const destination = new FilestoreDestination("crash", store, "csv", new CsvDatasetWriter());
  return destination.stage(
    RESUME_RUN,
    RESUME_SCHEMA,
    slowSource(options.delayMs, options.onRead ?? (() => {})),
    tableExtracts(CATALOG),
    {
      concurrency: 2,
      batchRows: BATCH_ROWS,
      reuse: options.reuse,
      onProgress: options.onProgress,
    },
  );
}

if (import.meta.main) {
  const [base = "", delay = "0", reuse = "{}"] = Deno.args;
  const encoder = new TextEncoder();
  const say = (line: string) => Deno.stdout.writeSync(encoder.encode(`${line}\n`));
  await stageResumable(base, {
    delayMs: Number(delay),
    reuse: new Map(Object.entries(JSON.parse(reuse) as Record<string, string>)),
    onRead: (table) => say(`read ${table}`),
    onProgress: (p) => {
      if (p.done !== undefined) say(`done ${p.table} ${p.done.sha512} ${p.done.reused}`);
    },
  });
  say("finished");
}
