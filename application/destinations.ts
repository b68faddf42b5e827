/**
 * The two kinds of `Destination` (`ports/destination.ts`): a filestore, and the PostgreSQL destination +
 * OPAL. They live here rather than in `adapters/` because they hold no technology: each composes ports
 * (`Filestore` + `DatasetWriter`; `DestinationDatabase` + `OpalClient` + `publishToOpal`) into the steps
 * the use cases need, so the routes never ask which kind of destination they have.
 *
 * @module
 */
import type { Destination as DestinationChoice } from "../domain/contract.ts";
import { projectFolderKey, projectIdentifier } from "../domain/names.ts";
import { opalGroupName, opalResourceName } from "../domain/opal.ts";
import type { Removed } from "../domain/revocation.ts";
import type { RunRef } from "../domain/staging_layout.ts";
import { releasedTables, type StagingSummary } from "../domain/staging_manifest.ts";
import type { DatasetWriter } from "../ports/dataset_writer.ts";
import {
  type Destination,
  PostgresqlDestinationNotConfiguredError,
  type Published,
  type RevokeOptions,
  type Staged,
  type StageOptions,
} from "../ports/destination.ts";
import type { DestinationDatabase, ReleasedDataset } from "../ports/destination_database.ts";
import { type Filestore, NothingStagedError, UnknownDestinationError } from "../ports/filestore.ts";
import { type OpalClient, OpalProjectNotFoundError } from "../ports/opal_client.ts";
import type { PublishedRelease, ReleaseSigning } from "../domain/release_signing.ts";
import type { ProvenanceDestinationTable } from "../domain/provenance.ts";
import { canonicalJson } from "../domain/audit.ts";
import { postgresqlTableName } from "../domain/opal.ts";
import { releaseCrate } from "../domain/release_crate.ts";
import { sha512Hex } from "../domain/release_receipt.ts";
import type { TableExtract, TableReader } from "../domain/catalog.ts";
import type { ProgressReport } from "../domain/long_work.ts";
import { type OpalPublication, publishToOpal } from "./opal_publication.ts";

/**
 * The PostgreSQL destination: `package` loads tables into it, `publish` lets OPAL's read-only role read
 * them and creates the OPAL side. Each call reads its secrets afresh, so rotated secrets take effect
 * without a restart.
 */
export interface PostgresqlDestination {
  /** Opens the destination database and proves it is usable. */
  connect(): Promise<DestinationDatabase>;
  /** A client for the OPAL server. */
  opal(): Promise<OpalClient>;
  /** How OPAL reaches the database, and the read-only login its resources carry. */
  resourceAccess(): Promise<Pick<OpalPublication, "database" | "readOnly">>;
}

/** What a deployment has to build its destinations from. */
export interface DestinationParts {
  /** Filestore destinations by upper-case name (`LSC` for `TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH`). */
  readonly filestores: ReadonlyMap<string, Filestore>;
  /** One writer per filestore format. */
  readonly writers: Readonly<Record<"csv" | "duckdb", DatasetWriter>>;
  /** The PostgreSQL destination, when this deployment has one. */
  readonly postgresql?: PostgresqlDestination | undefined;
}

/**
 * Returns the function that picks the `Destination` a request names. It throws before anything is touched
 * when the deployment has no such destination.
 *
 * @throws {UnknownDestinationError} for a filestore name the deployment does not have.
 * @throws {PostgresqlDestinationNotConfiguredError} for `postgresql` when the deployment has none.
 */
export function destinationChooser(
  parts: DestinationParts,
): (choice: DestinationChoice) => Destination {
  return (choice) => {
    if (choice.type === "postgresql") {
      if (parts.postgresql === undefined) throw new PostgresqlDestinationNotConfiguredError();
      return new PostgresqlOpalDestination(parts.postgresql);
    }
    const filestore = parts.filestores.get(choice.name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(choice.name);
    return new FilestoreDestination(
      choice.name,
      filestore,
      choice.format,
      parts.writers[choice.format],
    );
  };
}

/** A filestore: staged and published as BagIt bags of CSV or DuckDB files. */
export class FilestoreDestination implements Destination {
  readonly #name: string;
  readonly #filestore: Filestore;
  readonly #format: "csv" | "duckdb";
  readonly #writer: DatasetWriter;

  constructor(
    name: string,
    filestore: Filestore,
    format: "csv" | "duckdb",
    writer: DatasetWriter,
  ) {
    this.#name = name;
    this.#filestore = filestore;
    this.#format = format;
    this.#writer = writer;
  }

  /**
   * The project's folder name as a case-insensitive share compares it (`projectFolderKey`), so `Demo` and
   * `DEMO` wait for each other.
   */
  lockKey(project: string): string {
    return `filestore:${this.#name.toUpperCase()}/${projectFolderKey(project)}`;
  }

  checkReady(): Promise<void> {
    return this.#filestore.checkReady();
  }

  async stage(
    run: RunRef,
    schemaName: string,
    source: TableReader,
    extracts: readonly TableExtract[],
    options: StageOptions,
  ): Promise<Staged> {
    const files = await this.#filestore.stage(
      run,
      schemaName,
      (work) => this.#writer.write(work, source, extracts, options),
      options.checks,
      releasedTables(extracts),
    );
    return {
      dataRetrieved: files.map((f) => ({ file_path: f.path })),
      audit: { files: files.map(({ path, sha512, bytes }) => ({ path, sha512, bytes })) },
      logFields: { format: this.#format, files: files.map((f) => f.path) },
    };
  }

  async stagingDigest(run: RunRef): Promise<string | null> {
    return (await this.#filestore.staging(run)).digest;
  }

  staging(run: RunRef): Promise<StagingSummary> {
    return this.#filestore.staging(run);
  }

  async publish(run: RunRef, release?: ReleaseSigning): Promise<Published> {
    const files = await this.#filestore.publish(run, release);
    const published = release === undefined
      ? undefined
      : await this.#filestore.publishedRelease(run);
    return {
      ...(published === undefined ? {} : { release: published }),
      dataPublished: files.map((f) => ({
        file_path: f.path,
        hash_value: f.sha512,
        total_bytes: f.bytes,
      })),
      audit: { files: files.map(({ path, sha512, bytes }) => ({ path, sha512, bytes })) },
      logFields: { files: files.map((f) => `${f.path} sha512:${f.sha512}`) },
    };
  }

  async revoke(run: RunRef, options: RevokeOptions): Promise<Removed> {
    const revoked = await this.#filestore.revoke(run, {
      mode: options.mode,
      releaseId: options.releaseId,
      signal: options.signal,
      onRemoving: (file) =>
        options.record(
          { kind: "file", area: file.area, path: file.path },
          { rows: 0, bytes: file.bytes, sha512: file.sha512 },
        ),
    });
    return { mode: revoked.mode, files: revoked.files, tables: [], opal: null };
  }
}

/** The PostgreSQL destination, published through OPAL / DataSHIELD. */
export class PostgresqlOpalDestination implements Destination {
  readonly #parts: PostgresqlDestination;

  constructor(parts: PostgresqlDestination) {
    this.#parts = parts;
  }

  /** The project's `projectIdentifier`, which names its schemas and its OPAL project. */
  lockKey(project: string): string {
    return `postgresql:${projectIdentifier(project)}`;
  }

  async checkReady(): Promise<void> {
    await using _database = await this.#parts.connect();
    await (await this.#parts.opal()).checkReady();
  }

  /**
   * Loads the tables into the destination database. `options.signal` stops the load in flight, nothing
   * changed. `options.onProgress` gets only the database's `done` report per table: while a table is
   * read, the use case's reader reports its rows and bytes (`watchedReader`), as for a filestore, so a
   * table never gets two running counts. `options.reuse` does not apply: a loaded table is not a file
   * with a SHA-512, so every table is loaded again.
   */
  async stage(
    run: RunRef,
    schemaName: string,
    source: TableReader,
    extracts: readonly TableExtract[],
    options: StageOptions,
  ): Promise<Staged> {
    const { reuse: _notApplicable, onProgress, ...rest } = options;
    const load = {
      ...rest,
      onProgress: onProgress === undefined
        ? undefined
        : (progress: ProgressReport) => progress.done !== undefined && onProgress(progress),
    };
    load.signal?.throwIfAborted();
    await using database = await this.#parts.connect();
    const tables = await database.load(
      { project: run.project, startTime: run.startTime, schemaName },
      source,
      extracts,
      load,
    );
    const names = tables.map((t) => `${t.schema}.${t.table}`);
    return {
      dataRetrieved: names.map((table_name) => ({ table_name })),
      audit: { destination_tables: names },
      logFields: { destination: "postgresql", tables: names },
    };
  }

  async stagingDigest(run: RunRef): Promise<string | null> {
    await using database = await this.#parts.connect();
    return await database.stagingDigest(run);
  }

  /** The digest; the pre-checks of loaded tables are kept with the run only, not yet with the load. */
  async staging(run: RunRef): Promise<StagingSummary> {
    await using database = await this.#parts.connect();
    const digest = await database.stagingDigest(run);
    const tables = await database.packagedTables(run);
    return {
      digest,
      tables: [],
      uncheckedDatasets: [...new Set(tables.map((t) => t.schema))],
    };
  }

  /**
   * With `release`, the crate lists the tables and their OPAL resources, and the receipt signs the
   * crate's SHA-512 over its canonical JSON; the gateway keeps both with the release.
   */
  async publish(run: RunRef, release?: ReleaseSigning): Promise<Published> {
    await using database = await this.#parts.connect();
    const tables = await database.packagedTables(run);
    if (tables.length === 0) throw new NothingStagedError(run);
    const released = release === undefined ? [] : await database.releasedDatasets(run);
    await database.grantReadAccess(tables);
    const published = await publishToOpal(await this.#parts.opal(), {
      project: run.project,
      tables,
      ...await this.#parts.resourceAccess(),
    });
    return {
      ...(release === undefined ? {} : {
        release: await signedCrate(
          run,
          release,
          released,
          tables.map((t) => ({
            schema: t.schema,
            table: t.table,
            opal_resource:
              published.find((p) =>
                p.postgresql_table_name === postgresqlTableName(t.schema, t.table)
              )?.opal_resource_name ?? null,
          })),
        ),
      }),
      dataPublished: published,
      audit: {
        destination_tables: published.map((p) => p.postgresql_table_name),
        opal_resources: published.map((p) => p.opal_resource_name),
      },
      logFields: {
        destination: "postgresql",
        resources: published.map((p) => p.opal_resource_name),
      },
    };
  }

  /**
   * Revokes in three steps, each recorded before it acts and each idempotent: OPAL first (the run's
   * resources; then, when the project has no resource left, the group's view of the project's resources,
   * its DataSHIELD use and the group), so researchers lose access before anything else; then each
   * table's rows are counted and recorded; then the run's schemas are dropped in one transaction.
   */
  async revoke(run: RunRef, options: RevokeOptions): Promise<Removed> {
    const { signal, record } = options;
    const nothing = { rows: 0, bytes: 0, sha512: null };
    await using database = await this.#parts.connect();
    const tables = await database.packagedTables(run);
    const project = projectIdentifier(run.project);
    const group = opalGroupName(project);
    const opal = await this.#parts.opal();
    const resources: string[] = [];
    let removedGroup: string | null = null;
    if (tables.length > 0) {
      const wanted = new Set(tables.map((t) => opalResourceName(t.schema, t.table)));
      const existing = await listResourcesOrNone(opal, project);
      for (const name of existing.filter((r) => wanted.has(r))) {
        signal?.throwIfAborted();
        await record({ kind: "opal_resource", project, resource: name }, nothing);
        await opal.deleteResource(project, name);
        resources.push(name);
      }
      signal?.throwIfAborted();
      if ((await listResourcesOrNone(opal, project)).length === 0) {
        await record({ kind: "opal_group", project, group }, nothing);
        await opal.removeResourcesView(project, group);
        await opal.removeGroup(group);
        removedGroup = group;
      }
    }
    signal?.throwIfAborted();
    const counted = await database.countRows(tables);
    for (const { table, rows } of counted) {
      await record({ kind: "table", schema: table.schema, table: table.table }, {
        ...nothing,
        rows,
      });
    }
    signal?.throwIfAborted();
    await database.dropRun(run);
    return {
      mode: "deleted",
      files: [],
      tables: counted.map(({ table, rows }) => ({
        schema: table.schema,
        table: table.table,
        rows,
      })),
      opal: { project, resources, group: removedGroup },
    };
  }
}

/** The names of a project's OPAL resources; none when the project does not exist. */
async function listResourcesOrNone(opal: OpalClient, project: string): Promise<string[]> {
  try {
    return (await opal.listResources(project)).map((r) => r.name);
  } catch (e) {
    if (e instanceof OpalProjectNotFoundError) return [];
    throw e;
  }
}

/**
 * A PostgreSQL release's crate, and its receipt over the crate's SHA-512 (canonical JSON). The crate
 * lists each loaded dataset's released tables as its load recorded them (source types included), like a
 * filestore's staging manifest; the pre-checks are kept with the run only, so none are listed here.
 */
async function signedCrate(
  run: RunRef,
  release: ReleaseSigning,
  released: readonly ReleasedDataset[],
  tables: ProvenanceDestinationTable[],
): Promise<PublishedRelease> {
  const datasets = released.map((d) => ({
    schema_name: d.schemaName,
    tables: d.tables ?? [],
    disclosure: null,
  }));
  const provenance = {
    ...release.provenance({ files: [], datasets }),
    destination_tables: tables,
  };
  const crate = releaseCrate(provenance);
  const receipt = await release.sign({
    receipt_version: 1,
    release_id: provenance.release_id,
    project_name: run.project,
    project_start_time: run.startTime,
    destination: { type: "postgresql", name: provenance.destination.name },
    subject: { kind: "ro-crate-sha512", sha512: await sha512Hex(canonicalJson(crate)) },
    signed_at: new Date().toISOString(),
  });
  return { crate, receipt };
}
