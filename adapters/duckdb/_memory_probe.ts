/**
 * Test support, not part of the adapter: a source that generates rows without storing them, the tables
 * the memory and throughput tests write, and a probe that the tests run as a separate process so that RSS
 * is measured in a fresh heap (and, for the memory test, a capped one) rather than in a test process whose
 * heap earlier tests have already shaped.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-ffi --v8-flags=--max-old-space-size=64 \
 *   adapters/duckdb/_memory_probe.ts <dir> <narrow|wide> <rows>
 * ```
 *
 * prints `{"seconds":…,"rssGrowth":…,"bytes":…}` after writing the table to `<dir>`.
 *
 * @module
 */
import type { CatalogColumn, CatalogTable, TableExtract } from "../../domain/catalog.ts";
import { type CanonicalRow, formatDouble, type LogicalType } from "../../domain/logical_type.ts";
import type { SourceDatabase } from "../../ports/source_database.ts";
import { DuckdbDatasetWriter } from "./duckdb_dataset_writer.ts";

/** A source whose rows are generated batch by batch and never stored. */
export class GeneratedSource implements SourceDatabase {
  /**
   * @param rows how many rows every table has.
   * @param row builds row `n` (from 0).
   * @param delayMs how long each batch takes to arrive, like a network round trip.
   */
  constructor(
    readonly rows: number,
    readonly row: (n: number) => CanonicalRow,
    readonly delayMs = 0,
  ) {}

  ping(): Promise<void> {
    return Promise.resolve();
  }

  describeSchema(): Promise<never> {
    return Promise.reject(new Error("GeneratedSource has no catalogue"));
  }

  async *readRows(
    _extract: TableExtract,
    options: { batchRows?: number } = {},
  ): AsyncIterable<CanonicalRow[]> {
    const size = options.batchRows ?? 10_000;
    for (let start = 0; start < this.rows; start += size) {
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      else await Promise.resolve();
      const batch: CanonicalRow[] = [];
      for (let n = start; n < Math.min(start + size, this.rows); n++) batch.push(this.row(n));
      yield batch;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function column(name: string, logicalType: LogicalType, nullable = true): CatalogColumn {
  return { name, dataType: logicalType.kind, logicalType, nullable, description: null };
}

/** Four columns; half the notes are NULL, the others 64 characters. */
export const NARROW_TABLE: CatalogTable = {
  name: "narrow",
  kind: "table",
  description: null,
  primaryKey: [],
  columns: [
    column("id", { kind: "bigint" }, false),
    column("amount", { kind: "decimal", precision: 18, scale: 2 }),
    column("created_at", { kind: "timestamptz" }),
    column("note", { kind: "text" }),
  ],
};

/** Row `n` of {@link NARROW_TABLE}. */
export function narrowRow(n: number): CanonicalRow {
  return [
    String(n),
    `${Math.floor(n / 100)}.${String(n % 100).padStart(2, "0")}`,
    `2024-03-01 00:00:${String(n % 60).padStart(2, "0")}+00`,
    n % 2 === 0 ? null : `note ${n} `.padEnd(64, "abcdefgh"),
  ];
}

/** The 13 column types of the benchmark's wide table, keyed on `id`. */
export const WIDE_TABLE: CatalogTable = {
  name: "wide",
  kind: "table",
  description: null,
  primaryKey: ["id"],
  columns: [
    column("id", { kind: "bigint" }, false),
    column("i", { kind: "integer" }),
    column("s", { kind: "smallint" }),
    column("amount", { kind: "decimal", precision: 18, scale: 2 }),
    column("price", { kind: "decimal", precision: 38, scale: 10 }),
    column("ratio", { kind: "double" }),
    column("flag", { kind: "boolean" }),
    column("created_at", { kind: "timestamptz" }),
    column("d", { kind: "date" }),
    column("code", { kind: "text" }),
    column("txt", { kind: "text" }),
    column("maybe", { kind: "text" }),
    column("u", { kind: "uuid" }),
  ],
};

/** Row `n` of {@link WIDE_TABLE}. */
export function wideRow(n: number): CanonicalRow {
  const day = String(1 + (n % 28)).padStart(2, "0");
  return [
    String(n),
    String((n * 7919) % 2147483647),
    String(n % 32767),
    `${Math.floor(n / 100)}.${String(n % 100).padStart(2, "0")}`,
    `${n}.${String(n % 10_000_000_000).padStart(10, "0")}`,
    formatDouble(n / 3),
    n % 2 === 0 ? "true" : "false",
    `2024-01-${day} 12:34:56.${String(n % 1_000_000).padStart(6, "0")}+00`,
    `2024-02-${day}`,
    `C${n % 1000}`,
    `text value number ${n}`,
    n % 2 === 0 ? null : `maybe ${n}`,
    `9b2c1f3e-0000-4000-8000-${n.toString(16).padStart(12, "0")}`,
  ];
}

/** What one probe run measured. */
export interface ProbeResult {
  readonly seconds: number;
  /** The largest RSS growth seen while writing, in bytes. */
  readonly rssGrowth: number;
  /** Size of the database file. */
  readonly bytes: number;
}

/** Writes `rows` rows of one table into `dir` (schema `probe`) and measures time and RSS. */
export async function probe(
  dir: string,
  options: { readonly table: "narrow" | "wide"; readonly rows: number },
): Promise<ProbeResult> {
  const [table, row] = options.table === "narrow"
    ? [NARROW_TABLE, narrowRow]
    : [WIDE_TABLE, wideRow];
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 10);
  const started = performance.now();
  try {
    const [file] = await new DuckdbDatasetWriter().write(
      {
        dir,
        copyPrevious: () => Promise.resolve(false),
        reuse: () => Promise.resolve(undefined),
        read: () => {
          throw new Error("not read");
        },
      },
      new GeneratedSource(options.rows, row),
      [{ schema: "probe", table }],
      { concurrency: 1, batchRows: 10_000 },
    );
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, Deno.memoryUsage().rss);
    return { seconds, rssGrowth: peak - before, bytes: file!.bytes };
  } finally {
    clearInterval(timer);
  }
}

if (import.meta.main) {
  const [dir, table, rows] = Deno.args;
  if (dir === undefined || (table !== "narrow" && table !== "wide") || rows === undefined) {
    throw new TypeError("Cannot run the probe: expected <dir> <narrow|wide> <rows>");
  }
  const result = await probe(dir, { table, rows: Number(rows) });
  await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(result)));
}
