/**
 * Writes `deploy/compose/initdb/01-demo-data.sql`, the demo dataset of `tools/demo_data.ts` as one SQL
 * file that the PostgreSQL image runs on its first start (`/docker-entrypoint-initdb.d`). The compose
 * stack then holds exactly the data `deno task demo` uses; `tests/deploy/compose_test.ts` fails when the
 * two drift apart.
 *
 * Usage: `deno run --allow-read --allow-write deploy/compose/write_demo_sql.ts`
 *
 * @module
 */
import { DEMO_DATA_SQL } from "../../tools/demo_data.ts";

/** Where the file goes. */
export const DEMO_SQL_FILE = new URL("./initdb/01-demo-data.sql", import.meta.url);

/** The file's text: a header, then each statement of {@link DEMO_DATA_SQL} ended by `;`. */
export function demoSqlText(): string {
  const header = [
    "-- The CR8TOR demo dataset (schemas clinical and reference), for the compose stack's source database.",
    "-- Generated from tools/demo_data.ts by deploy/compose/write_demo_sql.ts; do not edit.",
    "\\set ON_ERROR_STOP on",
  ];
  return [...header, "", ...DEMO_DATA_SQL.map((statement) => `${statement};\n`)].join("\n");
}

if (import.meta.main) await Deno.writeTextFile(DEMO_SQL_FILE, demoSqlText());
