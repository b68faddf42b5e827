/**
 * What the audit's summary records share (`RefusalTally`, `DataReadAudit`): a period started by its first
 * event, and a record that the trail refuses going to the log instead of being lost.
 *
 * @module
 */
import { type AnyAuditEntry, canonicalJson } from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import type { Logger } from "./log.ts";

/** The timer of a period: armed by its first event, it ends the period once; it never keeps the process alive. */
export class PeriodTimer {
  readonly #ms: number;
  readonly #onEnd: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param onEnd called when the period is over (shutdown calls the owner's close() instead). */
  constructor(ms: number, onEnd: () => void) {
    this.#ms = ms;
    this.#onEnd = onEnd;
  }

  /** Starts a period unless one is running. */
  arm(): void {
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onEnd();
    }, this.#ms);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Ends the period without calling `onEnd`. */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Appends a summary record; one the trail refuses goes to the log whole (summaries hold ids, counts and
 * hashes, never a secret or row data), so it is not lost.
 */
export async function appendOrLog(
  trail: AuditTrail | undefined,
  log: Logger,
  entry: AnyAuditEntry,
): Promise<void> {
  if (trail === undefined) return;
  try {
    await trail.append(entry);
  } catch (e) {
    log.error("audit_write_failed", {
      message: (e as Error).message,
      record: canonicalJson(entry),
    });
  }
}
