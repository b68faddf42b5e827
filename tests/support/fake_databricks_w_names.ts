/**
 * The catalog, schema and warehouse path the fake workspace process (`fake_databricks_w.ts`) serves,
 * apart from it: `fake_databricks_w.ts` loads the Databricks driver (about 44 MB), and `deno task
 * bench` needs these names whatever it benches.
 *
 * @module
 */

/** The catalog the process serves. */
export const FAKE_W_CATALOG = "bench_catalog";
/** The schema the process serves. */
export const FAKE_W_SCHEMA = "bench";
/** The warehouse path the process serves. */
export const FAKE_W_HTTP_PATH = "/sql/1.0/warehouses/benchw";
