/**
 * The command line of `deno task bench`: `--rows N` (default 1,000,000), `--runs N` (3),
 * `--sources PostgreSQL,MariaDB,mssql,databricks` and `--formats csv,duckdb,postgresql` (all by default),
 * `--batch-rows N` (the service's `SOURCE_BATCH_ROWS` and the raw reads' batch size) and
 * `--write FILE` (saves the results below the `<!-- bench results -->` marker). Options come in pairs,
 * `--name value`.
 *
 * @module
 */
import { DEFAULT_BATCH_ROWS } from "../../ports/source_database.ts";

/** A source the bench measures, as its cells are labelled. */
export type BenchSource = "PostgreSQL" | "MariaDB" | "SQL Server" | "Databricks";

/** A destination format the bench measures. */
export type BenchFormat = "csv" | "duckdb" | "postgresql";

/** Every source, in the order the bench measures them. */
export const BENCH_SOURCES: readonly BenchSource[] = [
  "PostgreSQL",
  "MariaDB",
  "SQL Server",
  "Databricks",
];

/** Every format, in the order the bench measures them. */
export const BENCH_FORMATS: readonly BenchFormat[] = ["csv", "duckdb", "postgresql"];

/** The names `--sources` takes, in any case, and the source each stands for. */
export const SOURCE_NAMES: ReadonlyMap<string, BenchSource> = new Map([
  ["postgresql", "PostgreSQL"],
  ["mariadb", "MariaDB"],
  ["mysql", "MariaDB"],
  ["mssql", "SQL Server"],
  ["sqlserver", "SQL Server"],
  ["databricks", "Databricks"],
]);

/** What the command line asks for. */
export interface BenchOptions {
  /** Rows of the W table. */
  readonly rows: number;
  /** Measured runs per cell, after one warm-up. */
  readonly runs: number;
  /** The sources to measure, in {@link BENCH_SOURCES} order. */
  readonly sources: readonly BenchSource[];
  /** The formats to measure, in {@link BENCH_FORMATS} order. */
  readonly formats: readonly BenchFormat[];
  /** Rows per source batch of the raw reads. */
  readonly batchRows: number;
  /** `--batch-rows` as given, passed to the service as `SOURCE_BATCH_ROWS`; absent: the default. */
  readonly serviceBatchRows?: string;
  /** Where to save the results, if anywhere. */
  readonly write?: string;
}

/**
 * Reads the bench's command line.
 *
 * @param argv the arguments after the script, e.g. `["--rows", "20000", "--sources", "mssql"]`.
 * @returns the options, defaults filled in.
 * @throws {RangeError} when a source or format is unknown: the bench stops rather than measure nothing.
 */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    args.set(argv[i]!.replace(/^--/, ""), argv[i + 1] ?? "");
  }
  const named = new Set(
    (args.get("sources") ?? "PostgreSQL,MariaDB,mssql,databricks").split(",")
      .map((s) => {
        const name = SOURCE_NAMES.get(s.toLowerCase());
        if (name === undefined) {
          throw new RangeError(
            `Cannot bench source "${s}": --sources takes ${[...SOURCE_NAMES.keys()].join(", ")}`,
          );
        }
        return name;
      }),
  );
  const formats = new Set(
    (args.get("formats") ?? BENCH_FORMATS.join(",")).split(",").map((f) => {
      const format = BENCH_FORMATS.find((known) => known === f);
      if (format === undefined) {
        throw new RangeError(
          `Cannot bench format "${f}": --formats takes ${BENCH_FORMATS.join(", ")}`,
        );
      }
      return format;
    }),
  );
  const batchRows = args.get("batch-rows");
  const write = args.get("write");
  return {
    rows: Number(args.get("rows") ?? 1_000_000),
    runs: Number(args.get("runs") ?? 3),
    sources: BENCH_SOURCES.filter((s) => named.has(s)),
    formats: BENCH_FORMATS.filter((f) => formats.has(f)),
    batchRows: Number(batchRows ?? DEFAULT_BATCH_ROWS),
    ...(batchRows === undefined ? {} : { serviceBatchRows: batchRows }),
    ...(write === undefined || write === "" ? {} : { write }),
  };
}
