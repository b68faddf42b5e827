/**
 * DuckDB for the adapters: `@duckdb/node-api`, loaded after {@link "./duckdb_allocator.ts"} has set how
 * its allocator returns memory. Modules import DuckDB from here, never from the package itself
 * (`tests/architecture_test.ts` checks): the first import of the package loads the library, and its
 * allocator takes its settings then.
 *
 * @module
 */
import "./duckdb_allocator.ts";

export * from "@duckdb/node-api";
