/**
 * An in-memory audit trail for tests. Do not use it in production: nothing survives the process.
 *
 * @module
 */
import {
  type AnyAuditEntry,
  type AnyAuditRecord,
  type AuditLink,
  type AuditRecord,
  chainAuditRecord,
  type ChainedRecordOf,
  type DataReadsRecord,
  type RefusalSummaryRecord,
} from "../../domain/audit.ts";
import { type AuditTrail, AuditTrailUnavailableError } from "../../ports/audit_trail.ts";

/** Keeps the trail's lines in memory, chained exactly as the file adapter chains them. */
export class MemoryAuditTrail implements AuditTrail {
  readonly #lines: string[] = [];
  readonly #records: AnyAuditRecord[] = [];
  #last: AuditLink | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #checkFailure: string | undefined;
  #appendFailure: string | undefined;

  /** The stored lines, without their `\n`. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** The stored operation records, in order. */
  get records(): readonly AuditRecord[] {
    return this.#records.filter((r): r is AuditRecord => r.kind === "operation");
  }

  /** The stored refusal summaries, in order. */
  get refusalSummaries(): readonly RefusalSummaryRecord[] {
    return this.#records.filter((r): r is RefusalSummaryRecord => r.kind === "refusals");
  }

  /** The stored data reads records (`docs/data-api.md`), in order. */
  get dataReads(): readonly DataReadsRecord[] {
    return this.#records.filter((r): r is DataReadsRecord => r.kind === "data_reads");
  }

  /** The trail as its file would hold it. */
  text(): string {
    return this.#lines.map((line) => line + "\n").join("");
  }

  /** Makes {@link checkWritable} fail with this reason (`undefined` heals it). */
  failChecks(reason: string | undefined): void {
    this.#checkFailure = reason;
  }

  /** Makes {@link append} fail with this reason (`undefined` heals it). */
  failAppends(reason: string | undefined): void {
    this.#appendFailure = reason;
  }

  checkWritable(): Promise<void> {
    if (this.#checkFailure === undefined) return Promise.resolve();
    return Promise.reject(new AuditTrailUnavailableError(this.#checkFailure));
  }

  append<E extends AnyAuditEntry>(entry: E): Promise<ChainedRecordOf<E>> {
    // One append at a time, as the file adapter's lock serialises them.
    const appended = this.#queue.then(async () => {
      if (this.#appendFailure !== undefined) {
        throw new AuditTrailUnavailableError(this.#appendFailure);
      }
      const { record, line } = await chainAuditRecord(entry, this.#last);
      this.#lines.push(line);
      this.#records.push(record as AnyAuditRecord);
      this.#last = { seq: record.seq, sha256: record.sha256 };
      return record;
    });
    this.#queue = appended.catch(() => {});
    return appended;
  }
}
