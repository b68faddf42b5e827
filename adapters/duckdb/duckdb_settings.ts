/**
 * DuckDB settings the service's configuration names, in a module of their own so that reading the
 * configuration does not load DuckDB (apps/publish/startup_modules_test.ts).
 *
 * @module
 */

/**
 * The most memory DuckDB may use per write when none is configured (`DUCKDB_MEMORY_LIMIT`). A write
 * tries 24 MB first (`FIRST_MEMORY_LIMIT` of the writer): the pool mostly caches table blocks already
 * written, and 10M W rows with their primary key load within 24 MB as well as 128 MB. DuckDB 1.5 holds
 * long values (over a few kilobytes) in memory until the table is written, so a dataset whose long
 * values add up to more is written again within this limit, and one over it needs a higher one
 * (docs/benchmarks.md, issue 20).
 */
export const DEFAULT_DUCKDB_MEMORY_LIMIT = "64MB";

/** A memory size DuckDB's `memory_limit` takes: a whole number and a unit, e.g. `64MB`, `2GiB`. */
export const DUCKDB_MEMORY_LIMIT_PATTERN = /^[1-9]\d{0,6}(KB|MB|GB|KiB|MiB|GiB)$/;
