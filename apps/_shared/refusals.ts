/**
 * Requests refused for a missing or wrong key, counted instead of recorded one by one: an unauthenticated
 * flood must cost no disk write, no lock on the audit trail and no log line per request. The first refusal
 * after a quiet spell starts a period; when the period is over (`AUDIT_REFUSAL_INTERVAL_SECONDS`), one
 * `requests_refused` log line and one refusal summary record (`docs/audit.md`) say how many requests were
 * refused, by reason. So a service writes at most one summary per period, whatever the rate of refusals,
 * and what is counted at shutdown is written then.
 *
 * @module
 */
import type { RefusalReason, RefusalSummaryEntry } from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { appendOrLog, PeriodTimer } from "./audit_period.ts";
import type { Logger } from "./log.ts";

/** The default of `AUDIT_REFUSAL_INTERVAL_SECONDS`. */
export const DEFAULT_REFUSAL_INTERVAL_MS = 60_000;

/** What a {@link RefusalTally} needs. */
export interface RefusalTallyOptions {
  /** `approval`, `metadata` or `publish`. */
  readonly service: string;
  readonly log: Logger;
  /** Where summaries are recorded; without it they are only logged. */
  readonly trail?: AuditTrail | undefined;
  /** How long a period lasts: at most one summary is written per period. */
  readonly intervalMs: number;
}

/** Counts refusals and writes one summary per period in which there were any. */
export class RefusalTally {
  readonly #options: RefusalTallyOptions;
  #counts: Record<RefusalReason, number> = { missing_key: 0, wrong_key: 0 };
  #first: Date | undefined;
  #last: Date | undefined;
  readonly #period: PeriodTimer;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: RefusalTallyOptions) {
    this.#options = options;
    this.#period = new PeriodTimer(options.intervalMs, () => void this.flush());
  }

  /** Counts one refusal; the period's summary is written when the period ends. */
  count(reason: RefusalReason): void {
    const now = new Date();
    this.#counts[reason]++;
    this.#first ??= now;
    this.#last = now;
    this.#period.arm();
  }

  /** Writes the summary of what was counted since the last summary, if anything; resolves once written. */
  flush(): Promise<void> {
    const first = this.#first;
    const last = this.#last;
    const counts = this.#counts;
    this.#counts = { missing_key: 0, wrong_key: 0 };
    this.#first = undefined;
    this.#last = undefined;
    if (first !== undefined && last !== undefined) {
      const entry: RefusalSummaryEntry = {
        kind: "refusals",
        time: new Date().toISOString(),
        service: this.#options.service,
        period_start: first.toISOString(),
        period_end: last.toISOString(),
        ...counts,
      };
      this.#writing = this.#writing.then(() => this.#write(entry));
    }
    return this.#writing;
  }

  /** Stops the period timer and writes what is counted; call it at shutdown. */
  async close(): Promise<void> {
    this.#period.disarm();
    await this.flush();
  }

  async #write(entry: RefusalSummaryEntry): Promise<void> {
    const { log, trail } = this.#options;
    log.warn("requests_refused", {
      period_start: entry.period_start,
      period_end: entry.period_end,
      missing_key: entry.missing_key,
      wrong_key: entry.wrong_key,
    });
    await appendOrLog(trail, log, entry);
  }
}
