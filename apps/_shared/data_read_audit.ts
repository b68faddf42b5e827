/**
 * The data API's audit records (`docs/data-api.md`), batched: every read is kept in memory and written
 * with the others of its period as one `data_reads` record (`domain/audit.ts`), when the period ends
 * (`DATA_API_AUDIT_FLUSH_SECONDS`), when a batch is full, and at shutdown. So a client paging through a
 * large table costs one append (one disk sync) per period, not one per page.
 *
 * @module
 */
import { canonicalJson, type DataRead, type DataReadsEntry } from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import type { Logger } from "./log.ts";

/** The default of `DATA_API_AUDIT_FLUSH_SECONDS`. */
export const DEFAULT_DATA_READ_FLUSH_MS = 5_000;

/** The most reads one record holds; a full batch is written at once. */
export const DEFAULT_MAX_READS_PER_RECORD = 1_000;

/** What a {@link DataReadAudit} needs. */
export interface DataReadAuditOptions {
  /** `approval`. */
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
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: DataReadAuditOptions) {
    this.#options = options;
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
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#options.flushMs);
    // Pending reads must not keep the process alive; shutdown calls close().
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Writes the reads kept so far as one record, if any; resolves once every write so far is done. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
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
    if (trail === undefined) return;
    try {
      await trail.append(entry);
    } catch (e) {
      // Not lost: the record (ids, counts and cursor hashes, never row data) goes to the log.
      log.error("audit_write_failed", {
        message: (e as Error).message,
        record: canonicalJson(entry),
      });
    }
  }
}
