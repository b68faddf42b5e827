/**
 * How DuckDB's allocator gives memory back, set before DuckDB's library loads (import it through
 * `duckdb.ts`, never `@duckdb/node-api` directly).
 *
 * DuckDB allocates its buffers and most of its working memory through its own copy of jemalloc, which
 * by default keeps freed pages for a while before it returns them to the system. While the writer
 * appends, that memory is freed and allocated again all the time, so the pages it keeps add up: at the
 * peak of a 1M-row W table written by the publish service, jemalloc held 95-108 MB resident for 33-55
 * MB in use. Returning freed pages at once (`dirty_decay_ms:0`, and `muzzy_decay_ms:0` so that they
 * leave the process's RSS rather than wait for the kernel) held 60-68 MB for 55-60 MB in use, and the
 * service's peak fell by 20-30 MB (docs/benchmarks.md, issue 20, fourth session).
 *
 * jemalloc reads `DUCKDB_JE_MALLOC_CONF` once, when DuckDB first allocates; this module sets it unless
 * the operator did, so nobody has to remember it and an operator's own setting wins.
 *
 * @module
 */

/** The environment variable DuckDB's jemalloc reads its settings from. */
export const DUCKDB_ALLOCATOR_VARIABLE = "DUCKDB_JE_MALLOC_CONF";

/** Return freed pages to the system at once. */
export const DUCKDB_ALLOCATOR_SETTINGS = "dirty_decay_ms:0,muzzy_decay_ms:0";

if (Deno.env.get(DUCKDB_ALLOCATOR_VARIABLE) === undefined) {
  Deno.env.set(DUCKDB_ALLOCATOR_VARIABLE, DUCKDB_ALLOCATOR_SETTINGS);
}
