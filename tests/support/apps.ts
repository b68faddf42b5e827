/**
 * The three apps wired to in-memory fakes, for app tests. Nothing here listens on a port.
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";
import {
  Ed25519ReleaseSigner,
  GENERATED_RELEASE_KEY_FILE,
} from "../../adapters/crypto/ed25519_release_signer.ts";
import { OpenConnections } from "../../apps/_shared/open_connections.ts";
import type { SourceAccess } from "../../apps/_shared/source_access.ts";
import { type AllowedSource, AllowedSources } from "../../domain/allowed_sources.ts";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { FilestoreReleaseReader } from "../../adapters/filesystem/filestore_release_reader.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import type { ReleaseStore } from "../../ports/release_store.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import {
  type MemoryRows,
  MemorySourceDatabase,
} from "../../adapters/memory/memory_source_database.ts";
import { DuckdbDatasetWriter } from "../../adapters/duckdb/duckdb_dataset_writer.ts";
import type { SchemaCatalog } from "../../domain/catalog.ts";
import {
  DEFAULT_DISCLOSURE_CHECK_SETTING,
  DEFAULT_SMALL_CELL_THRESHOLD,
  type DisclosureCheckSetting,
} from "../../domain/disclosure.ts";
import type { SqlConnectionOptions } from "../../ports/source_database.ts";
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_MAX_VALUE_BYTES,
  SourceUnavailableError,
} from "../../ports/source_database.ts";
import {
  type ApprovalDeps,
  type ApprovalGates,
  type ApprovalService,
  createApprovalService,
} from "../../apps/approval/app.ts";
import { memoryLogger } from "../../apps/_shared/log.ts";
import { RefusalTally } from "../../apps/_shared/refusals.ts";
import { createMetadataApp } from "../../apps/metadata/app.ts";
import { createPublishApp, type PublishDeps } from "../../apps/publish/app.ts";
import type { QuarantinedFiles } from "../../ports/quarantine.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "./catalogs.ts";
import { TEST_MANIFEST_KEY } from "./manifest_key.ts";

export const APPROVAL_KEY = "approval-key-0123456789";
export const METADATA_KEY = "metadata-key-0123456789";
export const PUBLISH_KEY = "publish-key-0123456789";
export const SOURCE_PASSWORD = "s3cret-source-password";

/** How a test builds the gateway (`FakeWorld.approvalApp`). */
export interface ApprovalAppOptions {
  timeoutMs?: number;
  fetch?: typeof fetch;
  maxReplyBytes?: number;
  /** Approval gates (`docs/approvals.md`); none by default. */
  gates?: ApprovalGates;
  /** The dashboard (`docs/ui.md`); none by default. */
  dashboard?: ApprovalDeps["dashboard"];
  /** Where releases are kept without gates; the world's own in-memory store by default. */
  releaseStore?: ReleaseStore;
  /** The gateway's clock without gates; the system clock by default. */
  now?: () => Date;
}

/**
 * Fakes shared by the metadata and publish apps of one test: an in-memory source and secret store, and a
 * real LocalFilestore in a temporary directory (`using world = new FakeWorld()` removes it).
 */
export class FakeWorld implements Disposable {
  readonly secrets = new MemorySecretStore({
    sourceuser: "reader",
    sourcepassword: SOURCE_PASSWORD,
  });
  /** The filestore base: `staging/` and `production/` inside. */
  readonly base = makeFilestoreBase();
  readonly filestore = new LocalFilestore(this.base, {
    manifestKey: TEST_MANIFEST_KEY,
    today: () => new Date("2025-06-11T10:00:00Z"),
    onWarning: (event, fields) => this.publishLog.warn(event, fields),
  });
  /** The publish app's state directory, with its release signing key already in it. */
  readonly stateDir = stateDirWithKey();
  /**
   * Signs the publish app's release receipts with the key in the state directory, as a deployment
   * without `RELEASE_SIGNING_KEY_SECRET_NAME` does once started (the key exists before any request).
   */
  readonly releaseSigner = new Ed25519ReleaseSigner({
    generatedKeyFile: join(this.stateDir, GENERATED_RELEASE_KEY_FILE),
  });
  readonly connections: SqlConnectionOptions[] = [];
  /** The source connections the apps have open. */
  readonly openConnections = new OpenConnections();
  readonly opened: MemorySourceDatabase[] = [];
  readonly metadataLog = memoryLogger("metadata");
  readonly publishLog = memoryLogger("publish");
  readonly approvalLog = memoryLogger("approval");
  /** Where the gateway keeps releases without gates (its gates bring their own store). */
  readonly releaseStore: MemoryReleaseStore = new MemoryReleaseStore();

  /** The audit trail all three apps share; set it before the first app is built to audit them. */
  audit: MemoryAuditTrail | undefined;
  catalogs: SchemaCatalog[] = [ONCOLOGY];
  rows: MemoryRows = ONCOLOGY_ROWS;
  /** When set, reading rows fails after this many rows. */
  failAfterRows: number | undefined;
  /** The publish app's per-value limit (`SOURCE_MAX_VALUE_BYTES`); set it before the app is built. */
  maxValueBytes = DEFAULT_MAX_VALUE_BYTES;
  /** The publish app's CSV formula escape (`CSV_FORMULA_PREFIX`); set it before the app is built. */
  csvFormulaPrefix = false;
  /** `REVOCATION_MODE` of the publish app; set it before the first app is built. */
  revocationMode: "delete" | "quarantine" = "delete";
  /** When set, connecting fails with this message. */
  refuseConnections: string | undefined;
  /** The publish app's upload quarantine area (`UPLOAD_QUARANTINE_PATH`); set it before the app is built. */
  quarantine: QuarantinedFiles | undefined;
  /** The publish app's `DISCLOSURE_CHECKS`; set it before the app is built. */
  disclosureChecks: DisclosureCheckSetting = DEFAULT_DISCLOSURE_CHECK_SETTING;

  readonly connect = (options: SqlConnectionOptions) => {
    this.connections.push(options);
    if (this.refuseConnections !== undefined) {
      return Promise.reject(new SourceUnavailableError(this.refuseConnections));
    }
    const db = new MemorySourceDatabase(this.catalogs, this.rows);
    if (this.failAfterRows !== undefined) db.failAfterRows(this.failAfterRows);
    this.opened.push(db);
    return Promise.resolve(db);
  };

  /** The allow-list entries; by default the source of `aTransferRequest()` with its two secrets. */
  readonly #allowed: AllowedSource[] = (["postgresql", "mysql"] as const).map((type) => ({
    type,
    host: "db.internal",
    port: 5432,
    database: "research",
    credentials: [{ username: "sourceuser", password: "sourcepassword" }],
  }));

  /** Adds allow-list entries; call it before the first app is built. */
  allow(...entries: AllowedSource[]): void {
    this.#allowed.push(...entries);
  }

  /** What the metadata and publish apps of this world reach sources with. */
  sourceAccess(): SourceAccess {
    return {
      allowedSources: new AllowedSources(this.#allowed),
      connections: this.openConnections,
      secrets: this.secrets,
      connectors: { postgresql: this.connect, mysql: this.connect },
      connectTimeoutMs: 1000,
      statementTimeoutMs: 5000,
    };
  }

  readonly #refusals = new Map<string, RefusalTally>();

  /**
   * The key-refusal tally of one service's app, summarising to that app's log and the world's audit trail;
   * `flush()` it to write its summary now.
   */
  refusalsOf(service: "metadata" | "publish" | "approval"): RefusalTally {
    let tally = this.#refusals.get(service);
    if (tally === undefined) {
      const log = {
        metadata: this.metadataLog,
        publish: this.publishLog,
        approval: this.approvalLog,
      };
      tally = new RefusalTally({
        service,
        log: log[service],
        trail: this.audit,
        intervalMs: 60_000,
      });
      this.#refusals.set(service, tally);
    }
    return tally;
  }

  #metadataApp: ReturnType<typeof createMetadataApp> | undefined;
  #publishApp: ReturnType<typeof createPublishApp> | undefined;

  /** The metadata service of this world (one instance, as one process would be). */
  metadataApp() {
    return this.#metadataApp ??= createMetadataApp({
      ...this.sourceAccess(),
      apiKey: METADATA_KEY,
      log: this.metadataLog,
      auditTrail: this.audit,
      refusals: this.refusalsOf("metadata"),
      maxBodyBytes: 64 * 1024,
      readiness: () => Promise.resolve([{ name: "secrets", ok: true }]),
    });
  }

  /** The publish service of this world (one instance, as one process would be). */
  publishApp() {
    return this.#publishApp ??= createPublishApp(this.publishDeps());
  }

  /** What {@link publishApp} builds the publish service from, to build one with other parts. */
  publishDeps(): PublishDeps {
    return {
      ...this.sourceAccess(),
      apiKey: PUBLISH_KEY,
      log: this.publishLog,
      auditTrail: this.audit,
      refusals: this.refusalsOf("publish"),
      maxBodyBytes: 64 * 1024,
      filestores: new Map([["LSC", this.filestore]]),
      releaseReaders: { filestores: new Map([["LSC", new FilestoreReleaseReader(this.base)]]) },
      quarantine: this.quarantine,
      releaseSigner: this.releaseSigner,
      writers: {
        csv: new CsvDatasetWriter({ formulaPrefix: this.csvFormulaPrefix }),
        duckdb: new DuckdbDatasetWriter(),
      },
      concurrency: 2,
      batchRows: 2,
      batchBytes: DEFAULT_BATCH_BYTES,
      maxValueBytes: this.maxValueBytes,
      revocationMode: this.revocationMode,
      disclosureChecks: {
        setting: this.disclosureChecks,
        smallCellThreshold: DEFAULT_SMALL_CELL_THRESHOLD,
      },
      readiness: async () => {
        try {
          await this.filestore.checkReady();
          return [{ name: "filestore LSC", ok: true }];
        } catch (e) {
          return [{ name: "filestore LSC", ok: false, detail: (e as Error).message }];
        }
      },
    };
  }

  /** The gateway, calling the in-process metadata and publish apps through an injected fetch. */
  approvalApp(options: ApprovalAppOptions = {}) {
    return this.approvalService(options).app;
  }

  /** {@link approvalApp} with its expiry sweep (`ApprovalService.sweepReleases`). */
  approvalService(options: ApprovalAppOptions = {}): ApprovalService {
    const metadata = this.metadataApp();
    const publish = this.publishApp();
    const routed: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      const target = url.hostname === "metadata.test" ? metadata : publish;
      return Promise.resolve(target.request(url.pathname, init));
    };
    return createApprovalService({
      gates: options.gates,
      releaseStore: options.releaseStore ?? this.releaseStore,
      now: options.now,
      apiKey: APPROVAL_KEY,
      log: this.approvalLog,
      auditTrail: this.audit,
      refusals: this.refusalsOf("approval"),
      maxBodyBytes: 64 * 1024,
      metadata: { name: "metadata", baseUrl: "http://metadata.test:8002/", apiKey: METADATA_KEY },
      publish: { name: "publish", baseUrl: "http://publish.test:8003/", apiKey: PUBLISH_KEY },
      timeoutMs: options.timeoutMs ?? 5000,
      maxReplyBytes: options.maxReplyBytes,
      readyTimeoutMs: 1000,
      fetch: options.fetch ?? routed,
      dashboard: options.dashboard,
    });
  }

  /** Makes one area of the filestore unusable (it disappears). */
  breakFilestore(area: "staging" | "production"): void {
    rmSync(join(this.base, area), { recursive: true, force: true });
  }

  [Symbol.dispose](): void {
    rmSync(this.base, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** Every log line of every app, for checks that nothing secret was logged. */
  allLogLines(): string[] {
    return [...this.metadataLog.lines, ...this.publishLog.lines, ...this.approvalLog.lines];
  }
}

function makeFilestoreBase(): string {
  const base = Deno.makeTempDirSync({ prefix: "cr8tor-filestore-" });
  Deno.mkdirSync(join(base, "staging"));
  Deno.mkdirSync(join(base, "production"));
  return base;
}

/** A new state directory holding a generated release signing key (a private Ed25519 JWK). */
function stateDirWithKey(): string {
  const dir = Deno.makeTempDirSync({ prefix: "cr8tor-state-" });
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  Deno.writeTextFileSync(join(dir, GENERATED_RELEASE_KEY_FILE), JSON.stringify(jwk) + "\n", {
    mode: 0o600,
  });
  return dir;
}

/**
 * The writers and limits of a test publish service built outside {@link FakeWorld}: small batches,
 * two tables at a time, no readiness checks, runs polled every 20 ms.
 */
export function testPublishLimits() {
  return {
    writers: {
      csv: new CsvDatasetWriter({ formulaPrefix: false }),
      duckdb: new DuckdbDatasetWriter(),
    },
    concurrency: 2,
    batchRows: 2,
    batchBytes: DEFAULT_BATCH_BYTES,
    maxValueBytes: DEFAULT_MAX_VALUE_BYTES,
    readiness: () => Promise.resolve([]),
    runPollMs: 20,
  };
}
