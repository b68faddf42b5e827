/**
 * The publish service: validate a source and destination, package approved data into staging, publish it.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { selectDataset, tableExtracts } from "../../domain/catalog.ts";
import type { Destination } from "../../domain/contract.ts";
import { DestinationTypeNotSupportedError } from "../../domain/errors.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import { type Filestore, UnknownDestinationError } from "../../ports/filestore.ts";
import { createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import { success } from "../_shared/envelope.ts";
import { requestIdOf } from "../_shared/http_errors.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { ProjectLocks } from "./project_locks.ts";
import { packageRoute, publishRoute, validateRoute } from "./routes.ts";

/** What the publish service needs. */
export interface PublishDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  /** Filestore destinations by upper-case name (`LSC` for `TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH`). */
  readonly filestores: ReadonlyMap<string, Filestore>;
  /** One writer per filestore format. */
  readonly writers: Readonly<Record<"csv" | "duckdb", DatasetWriter>>;
  /** How many tables of one request are extracted at the same time. */
  readonly concurrency: number;
  /** Rows per batch read from a source. */
  readonly batchRows: number;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
}

/** Requests for the same project on the same destination never interleave. */
function lockKey(destinationName: string, project: string): string {
  return `${destinationName.toUpperCase()}/${project}`;
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
  });

  const locks = new ProjectLocks();

  /** The filestore a destination names, and its format. */
  function filestoreFor(
    destination: Destination,
    operation: string,
  ): { filestore: Filestore; format: "csv" | "duckdb" } {
    if (destination.type !== "filestore") {
      throw new DestinationTypeNotSupportedError(destination.type, operation);
    }
    const filestore = deps.filestores.get(destination.name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(destination.name);
    return { filestore, format: destination.format };
  }

  app.openapi(validateRoute, async (c) => {
    const { destination, source } = c.req.valid("json");
    await filestoreFor(destination, "validate").filestore.checkReady();
    await using db = await openSource(source, deps);
    await db.ping();
    return c.json(success({ validation_status: "success" as const }), 200);
  });

  app.openapi(packageRoute, async (c) => {
    const { destination, source, dataset, project_name, project_start_time } = c.req.valid("json");
    const { filestore, format } = filestoreFor(destination, "package");
    await using db = await openSource(source, deps);
    const requested = (dataset.tables ?? []).map((t) => t.name);
    const catalog = await db.describeSchema(dataset.schema_name, {
      ...(requested.length > 0 ? { tables: requested } : {}),
    });
    const extracts = tableExtracts(selectDataset(catalog, dataset));
    const run: RunRef = { project: project_name, startTime: project_start_time };
    const writer = deps.writers[format];
    const files = await locks.run(
      lockKey(destination.name, project_name),
      () =>
        filestore.stage(
          run,
          dataset.schema_name,
          (work) =>
            writer.write(work, db, extracts, {
              concurrency: deps.concurrency,
              batchRows: deps.batchRows,
            }),
        ),
    );
    deps.log.info("packaged", {
      request_id: requestIdOf(c),
      project: project_name,
      start_time: project_start_time,
      schema: dataset.schema_name,
      format,
      files: files.map((f) => f.path),
    });
    return c.json(success({ data_retrieved: files.map((f) => ({ file_path: f.path })) }), 200);
  });

  app.openapi(publishRoute, async (c) => {
    const { destination, project_name, project_start_time } = c.req.valid("json");
    const { filestore } = filestoreFor(destination, "publish");
    const run: RunRef = { project: project_name, startTime: project_start_time };
    const files = await locks.run(
      lockKey(destination.name, project_name),
      () => filestore.publish(run),
    );
    deps.log.info("published", {
      request_id: requestIdOf(c),
      project: project_name,
      start_time: project_start_time,
      files: files.map((f) => `${f.path} sha512:${f.sha512}`),
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
  });

  return app;
}
