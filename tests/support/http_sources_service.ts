/**
 * A publish service with one HTTP-file source (`weekly`, a JSON index on a local {@link HttpFileServer},
 * hourly), its clock in the test's hands, for the HTTP-file source tests of the publish service and the
 * gateway.
 *
 * @module
 */
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { MemoryFileRegistry } from "../../adapters/memory/memory_file_registry.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import type { PostgresqlDestination } from "../../application/destinations.ts";
import { createPublishService } from "../../apps/publish/app.ts";
import type { ReleaseSigner } from "../../ports/release_signer.ts";
import { HttpSources } from "../../apps/publish/http_sources.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { parseHttpFileSources } from "../../domain/http_file_sources.ts";
import { FakeWorld, PUBLISH_KEY, testPublishLimits } from "./apps.ts";
import { HttpFileServer } from "./http_file_server.ts";

/** What a test changes: the source's `postgresql`, and the PostgreSQL destination and signer. */
export interface HttpSourcesServiceOptions {
  readonly loadIntoPostgresql?: boolean;
  readonly postgresql?: PostgresqlDestination;
  readonly releaseSigner?: ReleaseSigner;
}

/** Runs `body` with the service, its file server and its stores; closes them all after. */
export async function withHttpSourcesService(
  body: (s: {
    world: FakeWorld;
    server: HttpFileServer;
    sources: HttpSources;
    service: ReturnType<typeof createPublishService>;
    runStore: MemoryRunStore;
    clock: { now: Date };
  }) => Promise<void>,
  options: HttpSourcesServiceOptions = {},
): Promise<void> {
  using world = new FakeWorld();
  await using server = await HttpFileServer.start();
  const clock = { now: new Date("2026-12-07T01:00:10.000Z") };
  const sources = new HttpSources({
    sources: parseHttpFileSources(JSON.stringify({
      sources: [{
        name: "weekly",
        index: { url: `${server.origin}/index.json`, format: "json" },
        destination: "LSC",
        project_name: "Pr042",
        schedule: "0 * * * *",
        run_timeout_ms: 60_000,
        ...(options.loadIntoPostgresql === true ? { postgresql: true } : {}),
      }],
    })),
    registry: new MemoryFileRegistry(),
    client: new NodeHttpFileClient(),
    now: () => clock.now,
  });
  const runStore = new MemoryRunStore();
  const service = createPublishService({
    ...world.sourceAccess(),
    allowedSources: new AllowedSources([], [{
      host: "127.0.0.1",
      port: server.port,
      scheme: "http",
      private: true,
    }]),
    apiKey: PUBLISH_KEY,
    log: world.publishLog,
    maxBodyBytes: 64 * 1024,
    filestores: new Map([["LSC", world.filestore]]),
    ...testPublishLimits(),
    runStore,
    httpSources: sources,
    ...(options.postgresql === undefined ? {} : { postgresql: options.postgresql }),
    ...(options.releaseSigner === undefined ? {} : { releaseSigner: options.releaseSigner }),
  });
  try {
    await body({ world, server, sources, service, runStore, clock });
  } finally {
    await service.runner.close();
  }
}
