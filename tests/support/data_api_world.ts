/**
 * A gateway with the data API on, over an in-memory release store and the stand-in publish read routes
 * ({@link FakeDataRead}), and a HAWK client to call it: for the data API's app, contract and security
 * tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import hawkModule from "hawk";
import type { OpenAPIHono } from "@hono/zod-openapi";
import {
  HAWK_SKEW_SECONDS,
  HawkRequestVerifier,
} from "../../adapters/hawk/hawk_request_verifier.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryNonceStore } from "../../adapters/memory/memory_nonce_store.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { type DataApiClients, parseDataApiClients } from "../../domain/data_api_scopes.ts";
import {
  completeRevocation,
  newRelease,
  type Release,
  startRevocation,
  withPublication,
} from "../../domain/release.ts";
import { memoryLogger } from "../../apps/_shared/log.ts";
import { createApprovalService } from "../../apps/approval/app.ts";
import { DataReadAudit } from "../../apps/_shared/data_read_audit.ts";
import { APPROVAL_KEY, METADATA_KEY, PUBLISH_KEY } from "./apps.ts";
import { FakeDataRead, type FakeReadTable } from "./fake_data_read.ts";

// deno-lint-ignore no-explicit-any
export const hawk = hawkModule as any;

/** HAWK credentials as a client holds them. */
export interface HawkCredentials {
  readonly id: string;
  readonly key: string;
  readonly algorithm: string;
}

/** The client allowed project `proj_a` (every table) and release `r-special` (table `people` only). */
export const PIPELINE: HawkCredentials = {
  id: "pipeline-a",
  key: "pipeline-a-hawk-key-0123456789abcdef",
  algorithm: "sha256",
};

/** A second client, allowed project `proj_b` only. */
export const OTHER: HawkCredentials = {
  id: "pipeline-b",
  key: "pipeline-b-hawk-key-0123456789abcdef",
  algorithm: "sha256",
};

/** The clients file of the world. */
export const CLIENTS: DataApiClients = parseDataApiClients({
  clients: [
    {
      id: PIPELINE.id,
      secret_name: "hawk-pipeline-a",
      scopes: [{ project: "proj_a", tables: "*" }, { release: "r-special", tables: ["people"] }],
    },
    { id: OTHER.id, secret_name: "hawk-pipeline-b", scopes: [{ project: "proj_b", tables: "*" }] },
  ],
});

/** The gateway's address as clients sign it. */
export const GATEWAY = "http://gateway.test:8000";

/** A table `clinic.people (id integer key, name text, score decimal)` with `n` rows. */
export function peopleTable(n: number, name = "people", dataset = "clinic"): FakeReadTable {
  return {
    dataset,
    name,
    columns: [
      { name: "id", type: "integer", description: "Person id" },
      { name: "name", type: "text", description: null },
      { name: "score", type: "decimal(10,2)", description: "Exact" },
    ],
    key: ["id"],
    rows: Array.from({ length: n }, (_, i) => [String(i + 1), `p${i + 1}`, `${i}.50`]),
  };
}

/** A signed request's options. */
export interface SignedGet {
  readonly credentials?: HawkCredentials;
  readonly method?: string;
  /** Client clock offset (ms), for skew tests. */
  readonly localtimeOffsetMsec?: number;
  /** A body, with its content type; hashed into the signature unless `hashPayload` is false. */
  readonly body?: string;
  readonly hashPayload?: boolean;
  /** Sent instead of the signed body (tampering). */
  readonly sentBody?: string;
  /** Signed for this path but sent to the request's (tampering). */
  readonly signedPath?: string;
  readonly authorization?: string;
}

/** A reply and what the client needs to check it. */
export interface SignedReply {
  readonly res: Response;
  readonly text: string;
  readonly artifacts: unknown;
  readonly header: string;
  readonly credentials: HawkCredentials;
}

/** The world: a store, the stand-in, the gateway, its audit trail and a clock. */
export class DataApiWorld implements AsyncDisposable {
  readonly store = new MemoryReleaseStore();
  readonly reader = new FakeDataRead(PUBLISH_KEY);
  readonly trail = new MemoryAuditTrail();
  readonly log = memoryLogger("approval");
  readonly clock = { now: new Date() };
  readonly reads: DataReadAudit;
  readonly nonces = new MemoryNonceStore({ windowSeconds: HAWK_SKEW_SECONDS, maxEntries: 10_000 });
  readonly app: OpenAPIHono;
  /** Applied to each reply of the stand-in before the gateway reads it (a publish service gone wrong). */
  publishReply: (res: Response) => Response = (res) => res;
  #runs = 0;

  constructor(options: { dataApi?: boolean; flushMs?: number; maxReadsPerRecord?: number } = {}) {
    this.reads = new DataReadAudit({
      service: "approval",
      log: this.log,
      trail: this.trail,
      flushMs: options.flushMs ?? 60_000,
      maxReadsPerRecord: options.maxReadsPerRecord,
    });
    const publish = this.reader.app();
    const keys = new Map([[PIPELINE.id, PIPELINE.key], [OTHER.id, OTHER.key]]);
    this.app = createApprovalService({
      releaseStore: this.store,
      now: () => this.clock.now,
      apiKey: APPROVAL_KEY,
      log: this.log,
      auditTrail: this.trail,
      maxBodyBytes: 64 * 1024,
      metadata: { name: "metadata", baseUrl: "http://metadata.test:8002/", apiKey: METADATA_KEY },
      publish: { name: "publish", baseUrl: "http://publish.test:8003/", apiKey: PUBLISH_KEY },
      timeoutMs: 5000,
      readyTimeoutMs: 1000,
      fetch: (input, init) => {
        const url = new URL(input instanceof Request ? input.url : input.toString());
        return Promise.resolve(publish.request(url.pathname, init)).then(this.publishReply);
      },
      dataApi: options.dataApi === false ? undefined : {
        clients: new Map(CLIENTS.clients.map((client) => [client.id, client])),
        verifier: new HawkRequestVerifier({ keys, nonces: this.nonces }),
        audit: this.reads,
      },
    }).app;
  }

  /**
   * A published release of `project` with `tables` (published in the stand-in too), stored as the
   * gateway stores one; `id` fixes its id.
   */
  async published(
    project: string,
    tables: FakeReadTable[],
    options: { id?: string; expiresAt?: string | null; createdAt?: string } = {},
  ): Promise<Release> {
    const created = options.createdAt ??
      new Date(this.clock.now.getTime() - 3_600_000).toISOString();
    const fresh = newRelease({
      project_name: project,
      project_start_time: `20261207_01${String(this.#runs++).padStart(4, "0")}`,
      destination: { type: "filestore", name: "LSC" },
      requested_by: { kind: "key", id: "0123456789abcdef" },
    }, created);
    const release = withPublication(
      { ...fresh, ...(options.id === undefined ? {} : { id: options.id }) },
      {
        published_at: created,
        receipt: { jws: "a.b.c", claims: {} },
        crate: {},
      },
      options.expiresAt ?? null,
    );
    const { release: stored, created: isNew } = await this.store.ensure(release);
    assert.ok(isNew, "a new project run");
    this.reader.publish(stored, tables);
    return stored;
  }

  /** Starts (and, with `complete`, ends) the revocation of a release. */
  async revoke(id: string, complete: boolean): Promise<void> {
    const at = this.clock.now.toISOString();
    await this.store.update(id, (release) =>
      startRevocation(release, {
        reason: "test",
        requested_by: { kind: "key", id: "0123456789abcdef" },
      }, at));
    if (complete) {
      await this.store.update(id, (release) => completeRevocation(release, { deleted: true }, at));
    }
  }

  /** Sends a HAWK-signed request for `path` (path and query) to the gateway; reads the whole reply. */
  async get(path: string, options: SignedGet = {}): Promise<SignedReply> {
    const sent = await this.send(path, options);
    return { ...sent, text: await sent.res.text() };
  }

  /** Sends a HAWK-signed request for `path`; the reply's body is left unread. */
  async send(path: string, options: SignedGet = {}): Promise<Omit<SignedReply, "text">> {
    const credentials = options.credentials ?? PIPELINE;
    const method = options.method ?? "GET";
    const signOptions: Record<string, unknown> = { credentials };
    if (options.localtimeOffsetMsec !== undefined) {
      signOptions.localtimeOffsetMsec = options.localtimeOffsetMsec;
    }
    if (options.body !== undefined && options.hashPayload !== false) {
      signOptions.payload = options.body;
      signOptions.contentType = "application/json";
    }
    const { header, artifacts } = hawk.client.header(
      GATEWAY + (options.signedPath ?? path),
      method,
      signOptions,
    );
    const headers: Record<string, string> = {
      host: new URL(GATEWAY).host,
      authorization: options.authorization ?? header,
    };
    const sent = options.sentBody ?? options.body;
    if (sent !== undefined) headers["content-type"] = "application/json";
    const res = await this.app.request(GATEWAY + path, {
      method,
      headers,
      ...(sent === undefined ? {} : { body: sent }),
    });
    return { res, artifacts, header, credentials };
  }

  /**
   * Checks the reply's `Server-Authorization` as a HAWK client does (`hawk.client.authenticate`), with
   * the hash of its exact body.
   */
  verifyReply(reply: SignedReply): void {
    const headers: Record<string, string> = {};
    reply.res.headers.forEach((value, name) => headers[name] = value);
    const result = hawk.client.authenticate(
      { headers },
      reply.credentials,
      reply.artifacts,
      { payload: reply.text, required: true },
    );
    assert.ok(result.headers["server-authorization"].hash, "the reply's hash is signed");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.reads.close();
    await this.nonces.close();
  }
}
