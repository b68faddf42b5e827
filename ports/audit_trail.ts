/**
 * Where the services record one audit record per authenticated operation (and refusal summaries): an append-only, hash-chained trail
 * (`domain/audit.ts` defines the records and the chain; `docs/audit.md` the file format).
 *
 * @module
 */
import type { AnyAuditEntry, ChainedRecordOf } from "../domain/audit.ts";
import { AppError } from "../domain/errors.ts";

/** An append-only audit trail, possibly shared by several processes. */
export interface AuditTrail {
  /**
   * Checks that a record could be appended now: the trail can be opened for writing and its last record is
   * intact, so the chain can continue.
   *
   * @throws {AuditTrailUnavailableError} naming what is wrong (never a record's content).
   */
  checkWritable(): Promise<void>;

  /**
   * Appends one record, chained to the trail's last record, and makes it durable before resolving. Appends
   * from any number of callers and processes form one chain.
   *
   * @param entry the operation (or refusal summary) to record.
   * @returns the record as stored, with `seq`, `prev_sha256` and `sha256`.
   * @throws {AuditTrailUnavailableError} when the record cannot be stored; the trail is then unchanged.
   * @throws {TypeError} when the entry is not a valid audit entry.
   */
  append<E extends AnyAuditEntry>(entry: E): Promise<ChainedRecordOf<E>>;
}

/** The audit trail cannot be written, or its last record is damaged so the chain cannot continue. */
export class AuditTrailUnavailableError extends AppError {
  readonly code = "audit_unavailable";
}
