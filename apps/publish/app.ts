/**
 * The publish service: validate a source and destination, package approved data into staging, publish it.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { selectDataset, tableExtracts } from "../../domain/catalog.ts";
import type { Destination } from "../../domain/contract.ts";
import { projectFolderKey, projectIdentifier } from "../../domain/names.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import type { DestinationDatabase } from "../../ports/destination_database.ts";
import {
  type Filestore,
  NothingStagedError,
  UnknownDestinationError,
} from "../../ports/filestore.ts";
import type { OpalClient } from "../../ports/opal_client.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { recordAuditOutput } from "../_shared/audit.ts";
import { PostgresqlDestinationNotConfiguredError } from "../_shared/app_errors.ts";
import { type BodyReading, createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import type { RefusalTally } from "../_shared/refusals.ts";
import { success } from "../_shared/envelope.ts";
import { requestLogFields } from "../_shared/request_ids.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { type OpalPublication, publishToOpal } from "./opal_publication.ts";
import { ProjectLocks } from "./project_locks.ts";
import { packageRoute, publishRoute, validateRoute } from "./routes.ts";

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

/** What the publish service needs. */
export interface PublishDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  /** Filestore destinations by upper-case name (`LSC` for `TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH`). */
  readonly filestores: ReadonlyMap<string, Filestore>;
  /** The PostgreSQL destination, when this deployment has one (`DESTINATION_POSTGRESQL_HOST`). */
  readonly postgresql?: PostgresqlDestination;
  /** One writer per filestore format. */
  readonly writers: Readonly<Record<"csv" | "duckdb", DatasetWriter>>;
  /** How many tables of one request are extracted at the same time. */
  readonly concurrency: number;
  /** Rows per batch read from a source. */
  readonly batchRows: number;
  /** Bytes per batch read from a source (see `RowBatcher`). */
  readonly batchBytes: number;
  /** The largest value read from a source; a larger one fails the package (`ValueTooLargeError`). */
  readonly maxValueBytes: number;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
  /** Where every POST is recorded; without it the service keeps no audit trail. */
  readonly auditTrail?: AuditTrail | undefined;
  /** Time and concurrency limits on reading request bodies; the defaults when absent. */
  readonly bodyReading?: BodyReading | undefined;
  /** Counts key refusals (the composition root closes it at shutdown); a default one when absent. */
  readonly refusals?: RefusalTally | undefined;
}

/**
 * Requests for the same project on the same destination never interleave. The key is what the project
 * occupies there: on a filestore, its folder name as a case-insensitive share compares it
 * (`projectFolderKey`), so `Demo` and `DEMO` wait for each other; on the PostgreSQL destination, its
 * `projectIdentifier`, which names its schemas and its OPAL project.
 */
function lockKey(destination: Destination, project: string): string {
  return destination.type === "postgresql"
    ? `postgresql:${projectIdentifier(project)}`
    : `filestore:${destination.name.toUpperCase()}/${projectFolderKey(project)}`;
}

/** Builds the publish service. */
export function createPublishApp(deps: PublishDeps): OpenAPIHono {
  const app = createServiceApp({
    service: "publish",
    title: "CR8TOR Publish Service",
    detailPrefix: "PublishService: ",
    apiKey: deps.apiKey,
    log: deps.log,
    maxBodyBytes: deps.maxBodyBytes,
    readiness: deps.readiness,
    auditTrail: deps.auditTrail,
    bodyReading: deps.bodyReading,
    refusals: deps.refusals,
  });

  const locks = new ProjectLocks();

  /** The filestore a destination names, and its format. */
  function filestoreFor(
    destination: Destination & { type: "filestore" },
  ): { filestore: Filestore; format: "csv" | "duckdb" } {
    const filestore = deps.filestores.get(destination.name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(destination.name);
    return { filestore, format: destination.format };
  }

  function postgresql(): PostgresqlDestination {
    if (deps.postgresql === undefined) throw new PostgresqlDestinationNotConfiguredError();
    return deps.postgresql;
  }

  app.openapi(validateRoute, async (c) => {
    const { destination, source } = c.req.valid("json");
    if (destination.type === "filestore") {
      await filestoreFor(destination).filestore.checkReady();
    } else {
      const { connect, opal } = postgresql();
      await using _destination = await connect();
      await (await opal()).checkReady();
    }
    await using db = await openSource(source, deps);
    await db.ping();
    return c.json(success({ validation_status: "success" as const }), 200);
  });

  app.openapi(packageRoute, async (c) => {
    const { destination, source, dataset, project_name, project_start_time } = c.req.valid("json");
    // Configuration problems are reported before the source is touched.
    const target = destination.type === "filestore" ? filestoreFor(destination) : postgresql();
    await using db = await openSource(source, deps, dataset.schema_name);
    const requested = (dataset.tables ?? []).map((t) => t.name);
    const catalog = await db.describeSchema(dataset.schema_name, {
      ...(requested.length > 0 ? { tables: requested } : {}),
    });
    const extracts = tableExtracts(selectDataset(catalog, dataset));
    const options = {
      concurrency: deps.concurrency,
      batchRows: deps.batchRows,
      batchBytes: deps.batchBytes,
      maxValueBytes: deps.maxValueBytes,
    };
    const logged = {
      ...requestLogFields(c),
      project: project_name,
      start_time: project_start_time,
      schema: dataset.schema_name,
    };
    if ("filestore" in target) {
      const run: RunRef = { project: project_name, startTime: project_start_time };
      const writer = deps.writers[target.format];
      const files = await locks.run(
        lockKey(destination, project_name),
        () =>
          target.filestore.stage(
            run,
            dataset.schema_name,
            (work) => writer.write(work, db, extracts, options),
          ),
      );
      deps.log.info("packaged", {
        ...logged,
        format: target.format,
        files: files.map((f) => f.path),
      });
      recordAuditOutput(c, {
        files: files.map(({ path, sha512, bytes }) => ({ path, sha512, bytes })),
      });
      return c.json(success({ data_retrieved: files.map((f) => ({ file_path: f.path })) }), 200);
    }
    const tables = await locks.run(lockKey(destination, project_name), async () => {
      await using database = await target.connect();
      return await database.load(
        { project: project_name, startTime: project_start_time, schemaName: dataset.schema_name },
        db,
        extracts,
        options,
      );
    });
    const names = tables.map((t) => `${t.schema}.${t.table}`);
    deps.log.info("packaged", { ...logged, destination: "postgresql", tables: names });
    recordAuditOutput(c, { destination_tables: names });
    return c.json(success({ data_retrieved: names.map((table_name) => ({ table_name })) }), 200);
  });

  app.openapi(publishRoute, async (c) => {
    const { destination, project_name, project_start_time } = c.req.valid("json");
    const run: RunRef = { project: project_name, startTime: project_start_time };
    const logged = {
      ...requestLogFields(c),
      project: project_name,
      start_time: project_start_time,
    };
    if (destination.type === "filestore") {
      const { filestore } = filestoreFor(destination);
      const files = await locks.run(
        lockKey(destination, project_name),
        () => filestore.publish(run),
      );
      deps.log.info("published", {
        ...logged,
        files: files.map((f) => `${f.path} sha512:${f.sha512}`),
      });
      recordAuditOutput(c, {
        files: files.map(({ path, sha512, bytes }) => ({ path, sha512, bytes })),
      });
      return c.json(
        success({
          data_published: files.map((f) => ({
            file_path: f.path,
            hash_value: f.sha512,
            total_bytes: f.bytes,
          })),
        }),
        200,
      );
    }
    const target = postgresql();
    const published = await locks.run(lockKey(destination, project_name), async () => {
      await using database = await target.connect();
      const tables = await database.packagedTables(run);
      if (tables.length === 0) throw new NothingStagedError(run);
      await database.grantReadAccess(tables);
      return await publishToOpal(await target.opal(), {
        project: project_name,
        tables,
        ...await target.resourceAccess(),
      });
    });
    deps.log.info("published", {
      ...logged,
      destination: "postgresql",
      resources: published.map((p) => p.opal_resource_name),
    });
    recordAuditOutput(c, {
      destination_tables: published.map((p) => p.postgresql_table_name),
      opal_resources: published.map((p) => p.opal_resource_name),
    });
    return c.json(success({ data_published: published }), 200);
  });

  return app;
}
