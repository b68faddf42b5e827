/**
 * The three apps wired to in-memory fakes, for app tests. Nothing here listens on a port.
 *
 * @module
 */
import { MemoryFilestore } from "../../adapters/memory/memory_filestore.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import type { SchemaCatalog } from "../../domain/catalog.ts";
import type { SqlConnectionOptions } from "../../ports/source_database.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import { createApprovalApp } from "../../apps/approval/app.ts";
import { memoryLogger } from "../../apps/_shared/log.ts";
import { createMetadataApp } from "../../apps/metadata/app.ts";
import { createPublishApp } from "../../apps/publish/app.ts";
import { ONCOLOGY } from "./catalogs.ts";

export const APPROVAL_KEY = "approval-key-0123456789";
export const METADATA_KEY = "metadata-key-0123456789";
export const PUBLISH_KEY = "publish-key-0123456789";
export const SOURCE_PASSWORD = "s3cret-source-password";

/** Fakes shared by the metadata and publish apps of one test. */
export class FakeWorld {
  readonly secrets = new MemorySecretStore({
    sourceuser: "reader",
    sourcepassword: SOURCE_PASSWORD,
  });
  readonly filestore = new MemoryFilestore();
  readonly connections: SqlConnectionOptions[] = [];
  readonly opened: MemorySourceDatabase[] = [];
  readonly metadataLog = memoryLogger("metadata");
  readonly publishLog = memoryLogger("publish");
  readonly approvalLog = memoryLogger("approval");
  catalogs: SchemaCatalog[] = [ONCOLOGY];
  /** When set, connecting fails with this message. */
  refuseConnections: string | undefined;

  readonly connect = (options: SqlConnectionOptions) => {
    this.connections.push(options);
    if (this.refuseConnections !== undefined) {
      return Promise.reject(new SourceUnavailableError(this.refuseConnections));
    }
    const db = new MemorySourceDatabase(this.catalogs);
    this.opened.push(db);
    return Promise.resolve(db);
  };

  sourceAccess() {
    return {
      secrets: this.secrets,
      connectors: { postgresql: this.connect, mysql: this.connect },
      connectTimeoutMs: 1000,
      statementTimeoutMs: 5000,
    };
  }

  metadataApp() {
    return createMetadataApp({
      ...this.sourceAccess(),
      apiKey: METADATA_KEY,
      log: this.metadataLog,
      maxBodyBytes: 64 * 1024,
      readiness: () => Promise.resolve([{ name: "secrets", ok: true }]),
    });
  }

  publishApp() {
    return createPublishApp({
      ...this.sourceAccess(),
      apiKey: PUBLISH_KEY,
      log: this.publishLog,
      maxBodyBytes: 64 * 1024,
      filestores: new Map([["LSC", this.filestore]]),
      readiness: async () => {
        try {
          await this.filestore.checkReady();
          return [{ name: "filestore LSC", ok: true }];
        } catch (e) {
          return [{ name: "filestore LSC", ok: false, detail: (e as Error).message }];
        }
      },
    });
  }

  /** The gateway, calling the in-process metadata and publish apps through an injected fetch. */
  approvalApp(options: { timeoutMs?: number; fetch?: typeof fetch } = {}) {
    const metadata = this.metadataApp();
    const publish = this.publishApp();
    const routed: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      const target = url.hostname === "metadata.test" ? metadata : publish;
      return Promise.resolve(target.request(url.pathname, init));
    };
    return createApprovalApp({
      apiKey: APPROVAL_KEY,
      log: this.approvalLog,
      maxBodyBytes: 64 * 1024,
      metadata: { name: "metadata", baseUrl: "http://metadata.test:8002/", apiKey: METADATA_KEY },
      publish: { name: "publish", baseUrl: "http://publish.test:8003/", apiKey: PUBLISH_KEY },
      timeoutMs: options.timeoutMs ?? 5000,
      readyTimeoutMs: 1000,
      fetch: options.fetch ?? routed,
    });
  }

  /** Every log line of every app, for checks that nothing secret was logged. */
  allLogLines(): string[] {
    return [...this.metadataLog.lines, ...this.publishLog.lines, ...this.approvalLog.lines];
  }
}
