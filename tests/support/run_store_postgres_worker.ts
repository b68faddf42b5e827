/**
 * A child process for the PostgreSQL run store's kill-mid-write test. Once `<signals>.go` exists it
 * begins a run's creation in the store's schema `<schema>` on the local server as the store does (the
 * project's advisory lock, then the row), writes `<signals>.busy`, and waits inside the transaction to be
 * killed.
 *
 * Usage: deno run --allow-read --allow-write --allow-net --allow-env run_store_postgres_worker.ts
 *   <signals> <schema>
 */
import postgres from "postgres";
import { postgresClientOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { quotePostgresIdentifier } from "../../adapters/postgres/postgres_dialect.ts";
import { postgresConnectionOptions } from "./databases.ts";

/** The id of the run this worker starts writing, in the project `Killed`. */
export const HALF_WRITTEN_RUN_ID = "00000000-0000-4000-8000-00000000dead";

const [signals = "", schema = ""] = Deno.args;

if (import.meta.main) {
  const sql = postgres(postgresClientOptions(postgresConnectionOptions()));
  await sql.begin(async (tx) => {
    // The server ends this session soon after the process dies, even in the middle of pg_sleep.
    await tx`set local client_connection_check_interval = 100`;
    await tx`select pg_advisory_xact_lock(hashtextextended(${`cr8tor run ${schema} Killed`}, 0))`;
    await tx.unsafe(
      `insert into ${quotePostgresIdentifier(schema)}.runs
         (id, project_name, state, request_key, created_at, updated_at, version, body)
       values ($1, 'Killed', 'queued', 'k', $2, $2, 1, '{}'::jsonb)`,
      [HALF_WRITTEN_RUN_ID, new Date().toISOString()],
    );
    await Deno.writeTextFile(`${signals}.busy`, "");
    await tx`select pg_sleep(60)`;
  });
}
