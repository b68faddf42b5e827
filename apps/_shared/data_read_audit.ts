/**
 * The data API's audit records (`docs/data-api.md`, `docs/audit.md`), batched: every read is kept in
 * memory and written with the others of its period as one `data_reads` record (`domain/audit.ts`), when
 * the period ends (`DATA_API_AUDIT_FLUSH_SECONDS`), when a batch is full, and at shutdown. So a client
 * paging through a large table costs one append (one disk sync) per period, not one per page.
 *
 * Two services read: the gateway (the data API, by client and release id) and the publish service (the
 * internal `/data-publish/read/*` routes the gateway forwards to, by the caller's key id and the project
 * run; {@link keyedReadAudit}). Both build their records with {@link dataReadOf}.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { ReadDestination, ReadRowsRequest } from "../../application/read_release.ts";
import { ProjectName, ProjectStartTime } from "../../domain/contract.ts";
import {
  auditKeyId,
  type DATA_READ_ACTIONS,
  type DataRead,
  type DataReadsEntry,
  sha256Hex,
} from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { auditedBodyOf, isAuthenticated, replyErrorCode } from "./audit.ts";
import { appendOrLog, PeriodTimer } from "./audit_period.ts";
import type { Logger } from "./log.ts";
import { requestIdOf } from "./request_ids.ts";

/** The default of `DATA_API_AUDIT_FLUSH_SECONDS`. */
export const DEFAULT_DATA_READ_FLUSH_MS = 5_000;

/** The variable of the batching period, read by every service that serves reads (gateway, publish). */
export const DataReadAuditEnv = z.object({
  /** How long reads are batched before their audit record is written. */
  DATA_API_AUDIT_FLUSH_SECONDS: z.coerce.number<unknown>().positive().max(3600).default(
    DEFAULT_DATA_READ_FLUSH_MS / 1000,
  ),
});

/** The most reads one record holds; a full batch is written at once. */
export const DEFAULT_MAX_READS_PER_RECORD = 1_000;

/** What a {@link DataReadAudit} needs. */
export interface DataReadAuditOptions {
  /** `approval` or `publish`. */
  readonly service: string;
  readonly log: Logger;
  /** Where the records go; without it reads are only counted in the log. */
  readonly trail?: AuditTrail | undefined;
  /** How long reads wait before they are written. */
  readonly flushMs: number;
  /** The most reads one record holds. {@link DEFAULT_MAX_READS_PER_RECORD} by default. */
  readonly maxReadsPerRecord?: number | undefined;
}

/** Collects reads and writes them as one record per period (or per full batch). */
export class DataReadAudit {
  readonly #options: DataReadAuditOptions;
  readonly #max: number;
  #reads: DataRead[] = [];
  readonly #period: PeriodTimer;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: DataReadAuditOptions) {
    this.#options = options;
    this.#period = new PeriodTimer(options.flushMs, () => void this.flush());
    this.#max = options.maxReadsPerRecord ?? DEFAULT_MAX_READS_PER_RECORD;
  }

  /** Reads waiting to be written (for tests and the log). */
  get pending(): number {
    return this.#reads.length;
  }

  /** Keeps one read; it is written when its period ends, or now when the batch is full. */
  record(read: DataRead): void {
    this.#reads.push(read);
    if (this.#reads.length >= this.#max || this.#closed) {
      void this.flush();
      return;
    }
    this.#period.arm();
  }

  /** Writes the reads kept so far as one record, if any; resolves once every write so far is done. */
  flush(): Promise<void> {
    this.#period.disarm();
    const reads = this.#reads;
    this.#reads = [];
    if (reads.length > 0) {
      const entry: DataReadsEntry = {
        kind: "data_reads",
        time: new Date().toISOString(),
        service: this.#options.service,
        period_start: reads[0]!.time,
        period_end: reads.at(-1)!.time,
        reads,
      };
      this.#writing = this.#writing.then(() => this.#write(entry));
    }
    return this.#writing;
  }

  /** Writes what is kept; call it at shutdown. Reads recorded later are written at once. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  async #write(entry: DataReadsEntry): Promise<void> {
    const { log, trail } = this.#options;
    log.info("data_reads", {
      reads: entry.reads.length,
      period_start: entry.period_start,
      period_end: entry.period_end,
    });
    await appendOrLog(trail, log, entry);
  }
}

/**
 * The reads batch of a service, from {@link DataReadAuditEnv}: its records go to `trail` (only counted in
 * `log` without one). The composition root closes it at shutdown.
 */
export function dataReadAuditFrom(
  config: z.infer<typeof DataReadAuditEnv>,
  options: { service: string; log: Logger; trail: AuditTrail | undefined },
): DataReadAudit {
  return new DataReadAudit({ ...options, flushMs: config.DATA_API_AUDIT_FLUSH_SECONDS * 1000 });
}

/** One of {@link DATA_READ_ACTIONS}. */
export type DataReadAction = typeof DATA_READ_ACTIONS[number];

/** What a service knows of one read besides who asked and which release: the rest of its record. */
export interface ReadFacts {
  readonly action: DataReadAction;
  readonly dataset: string | null;
  readonly table: string | null;
  /** The cursor the read was given; only its SHA-256 is recorded. */
  readonly cursorIn: string | null;
  /** The cursor the read handed out; only its SHA-256 is recorded, and only for a 200. */
  readonly cursorOut: string | null;
  /** Rows in the page; recorded only for a 200. */
  readonly rows: number | null;
}

/**
 * Who read and which release: the gateway's client and release id, or the publish service's caller key
 * id, project run and destination (`domain/audit.ts`, `DataRead`).
 */
export type ReadSubject = Pick<
  DataRead,
  | "client_id"
  | "caller_key_id"
  | "release_id"
  | "project_name"
  | "project_start_time"
  | "destination"
>;

const MAX_NAME_LENGTH = 256;

function clip(value: string | null): string | null {
  return value === null ? null : value.slice(0, MAX_NAME_LENGTH);
}

/**
 * The record of an answered read (`c.res` is its reply): the status and the error code of an error
 * reply, the rows and the SHA-256 of the cursors (never the cursors, never row data).
 */
export async function dataReadOf(
  c: Context,
  subject: ReadSubject,
  facts: ReadFacts,
): Promise<DataRead> {
  const status = c.res.status;
  const ok = status === 200;
  const { destination, project_name, project_start_time } = subject;
  return {
    time: new Date().toISOString(),
    request_id: requestIdOf(c),
    ...(subject.client_id === undefined ? {} : { client_id: subject.client_id }),
    ...(subject.caller_key_id === undefined ? {} : { caller_key_id: subject.caller_key_id }),
    action: facts.action,
    release_id: clip(subject.release_id),
    ...(project_name === undefined ? {} : { project_name: clip(project_name) }),
    ...(project_start_time === undefined ? {} : { project_start_time: clip(project_start_time) }),
    ...(destination === undefined ? {} : {
      destination: destination === null
        ? null
        : { type: clip(destination.type)!, name: clip(destination.name)! },
    }),
    dataset: clip(facts.dataset),
    table: clip(facts.table),
    status,
    error_code: ok ? null : await replyErrorCode(c.res),
    rows_returned: ok ? facts.rows : null,
    cursor_in_sha256: facts.cursorIn === null ? null : await sha256Hex(facts.cursorIn),
    cursor_out_sha256: ok && facts.cursorOut !== null ? await sha256Hex(facts.cursorOut) : null,
  };
}

const PAGE_KEY = "dataReadPage";

/** What a read route's handler tells its record: the rows of its page and the cursor it handed out. */
export function recordReadPage(c: Context, page: { rows: number; cursorOut: string | null }): void {
  c.set(PAGE_KEY as never, page as never);
}

/** What {@link keyedReadAudit} needs. */
export interface KeyedReadAuditOptions {
  readonly audit: DataReadAudit;
  /** The key this service accepts; only its id is recorded. */
  readonly apiKey: string;
  /** The read routes (`POST`), by path, with the action each is. */
  readonly actions: ReadonlyMap<string, DataReadAction>;
}

function valid<T>(schema: z.ZodType<T>, value: unknown): T | null {
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

/**
 * Records every `POST` to a read route that the service's key authenticated, whatever its outcome
 * (refusals of its body included), as a read in the batch: the caller's key id, the project run,
 * destination, dataset and table the body named (each kept only if the request schema's rule passes),
 * the SHA-256 of its cursor, and the page's rows and next cursor from {@link recordReadPage}. It takes
 * the place of the operation record (`auditTrailMiddleware`) for these routes: no check of the trail
 * before the read and no append after it, as for the data API's own reads.
 */
export function keyedReadAudit(options: KeyedReadAuditOptions): MiddlewareHandler {
  const keyId = auditKeyId(options.apiKey);
  const shape = ReadRowsRequest.shape;
  return async function readAudit(c, next) {
    await next();
    const action = options.actions.get(c.req.path);
    if (action === undefined || c.req.method !== "POST" || !isAuthenticated(c)) return;
    const body = auditedBodyOf(c);
    const cursor = field(body, "cursor");
    const page = c.get(PAGE_KEY as never) as { rows: number; cursorOut: string | null } | undefined;
    options.audit.record(
      await dataReadOf(c, {
        caller_key_id: await keyId,
        release_id: null,
        project_name: valid(ProjectName, field(body, "project_name")),
        project_start_time: valid(ProjectStartTime, field(body, "project_start_time")),
        destination: valid(ReadDestination, field(body, "destination")),
      }, {
        action,
        dataset: valid(shape.dataset, field(body, "dataset")),
        table: valid(shape.table, field(body, "table")),
        cursorIn: typeof cursor === "string" ? cursor : null,
        cursorOut: page?.cursorOut ?? null,
        rows: page?.rows ?? null,
      }),
    );
  };
}
