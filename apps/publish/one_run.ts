/**
 * The publish binary's one-run mode, `run <id>` (a Kubernetes Job's command, `docs/operator.md`): builds
 * the service from the environment as for serving (same variables, same shared run store), executes the
 * one stored run in this process (`Runner.runOnce`), writes its progress to the store, and exits: 0 when
 * the run succeeded, 1 otherwise.
 *
 * With `RUN_CRATE` (set by the operator: the data source's description as JSON) a succeeded run also
 * gets an `ro-crate-metadata.json` beside its data, in the run's staging folder, listing every payload
 * file with its size and SHA-512 as read back from the volume.
 *
 * @module
 */
import { join } from "node:path";
import { sha512File } from "../../adapters/filesystem/sha512.ts";
import type { ProvenanceFile } from "../../domain/provenance.ts";
import { CRATE_TAG_FILE } from "../../domain/release_receipt.ts";
import type { Run } from "../../domain/run.ts";
import { PAYLOAD_DIR, runFolder } from "../../domain/staging_layout.ts";
import {
  dataSourceCrateText,
  DataSourceDescription,
} from "../../domain/workspace_datasource_crate.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import type { RunnableService } from "../_shared/serve.ts";
import type { Runner } from "../../application/runs.ts";

/** What the one-run mode takes from the composition root (`main.ts`), which imports this module. */
export interface OneRunDeps {
  readonly build: (
    env: Record<string, string | undefined>,
    sink: LogSink,
  ) => Promise<RunnableService & { readonly runner: Runner }>;
  /** The filestore mounts by upper-case name (`filestoreMounts`). */
  readonly mounts: (env: Record<string, string | undefined>) => ReadonlyMap<string, string>;
}

/** The software named in the crates this mode writes. */
const SERVICE = { name: "cr8tor-publish", version: "1.0.0" };

/** Every payload file of a run folder, sorted by path, with its size and SHA-512. */
async function payloadFiles(folder: string): Promise<ProvenanceFile[]> {
  const files: ProvenanceFile[] = [];
  async function walk(relative: string): Promise<void> {
    for await (const entry of Deno.readDir(join(folder, relative))) {
      const path = `${relative}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) {
        const digest = await sha512File(join(folder, path), path);
        files.push({ path, bytes: digest.bytes, sha512: digest.sha512 });
      }
    }
  }
  await walk(PAYLOAD_DIR);
  return files.sort((a, b) => a.path < b.path ? -1 : 1);
}

/**
 * Writes the run's crate beside its data (`{mount}/staging/{project}/{start}/ro-crate-metadata.json`),
 * through a temporary file renamed into place.
 *
 * @returns the crate's path relative to the filestore's base.
 */
export async function writeRunCrate(
  mounts: ReadonlyMap<string, string>,
  run: Run,
  description: DataSourceDescription,
): Promise<string> {
  const base = mounts.get(run.destination.name.toUpperCase());
  if (base === undefined) {
    throw new ConfigError(
      `Cannot write the crate: no filestore ${run.destination.name} is mounted`,
    );
  }
  const folder = runFolder("staging", {
    project: run.project_name,
    startTime: run.project_start_time,
  });
  const files = await payloadFiles(join(base, folder));
  const path = join(base, folder, CRATE_TAG_FILE);
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temp, dataSourceCrateText(description, run, files, SERVICE), {
    mode: 0o640,
  });
  await Deno.rename(temp, path);
  return `${folder}/${CRATE_TAG_FILE}`;
}

/** Runs `run <id>`; resolves to the process's exit code. */
export async function runOnce(
  id: string,
  env: Record<string, string | undefined>,
  deps: OneRunDeps,
  sink: LogSink = stdoutSink,
): Promise<number> {
  const log = createLogger("publish", sink);
  const description = env.RUN_CRATE === undefined || env.RUN_CRATE === ""
    ? undefined
    : DataSourceDescription.parse(JSON.parse(env.RUN_CRATE));
  // The run executes here, whatever the service itself would do with runs.
  const service = await deps.build({ ...env, RUN_EXECUTOR: "in-process" }, sink);
  try {
    const run = await service.runner.runOnce(id);
    log.info("run_once_ended", { run: id, state: run.state });
    if (run.state !== "succeeded") return 1;
    if (description !== undefined) {
      log.info("run_crate_written", {
        run: id,
        path: await writeRunCrate(deps.mounts(env), run, description),
      });
    }
    return 0;
  } finally {
    await service.close?.();
  }
}
