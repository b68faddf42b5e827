/**
 * The publish service: validate a source and destination, package approved data into staging, publish it.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Destination } from "../../domain/contract.ts";
import { DestinationTypeNotSupportedError } from "../../domain/errors.ts";
import { type Filestore, UnknownDestinationError } from "../../ports/filestore.ts";
import { createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import { success } from "../_shared/envelope.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { packageRoute, publishRoute, validateRoute } from "./routes.ts";

/** What the publish service needs. */
export interface PublishDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  /** Filestore destinations by upper-case name (`LSC` for `TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH`). */
  readonly filestores: ReadonlyMap<string, Filestore>;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
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

  function filestoreFor(destination: Destination, operation: string): Filestore {
    if (destination.type !== "filestore") {
      throw new DestinationTypeNotSupportedError(destination.type, operation);
    }
    const filestore = deps.filestores.get(destination.name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(destination.name);
    return filestore;
  }

  app.openapi(validateRoute, async (c) => {
    const { destination, source } = c.req.valid("json");
    await filestoreFor(destination, "validate").checkReady();
    await using db = await openSource(source, deps);
    await db.ping();
    return c.json(success({ validation_status: "success" as const }), 200);
  });

  app.openapi(packageRoute, (c) => {
    const { destination } = c.req.valid("json");
    filestoreFor(destination, "package");
    throw new DestinationTypeNotSupportedError(destination.type, "package");
  });

  app.openapi(publishRoute, (c) => {
    const { destination } = c.req.valid("json");
    filestoreFor(destination, "publish");
    throw new DestinationTypeNotSupportedError(destination.type, "publish");
  });

  return app;
}
