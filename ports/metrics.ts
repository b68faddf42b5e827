/**
 * What the services count for Prometheus (`GET /metrics`). The use cases report through this port and
 * never see the metrics library. Labels are low-cardinality and never sensitive: no project names, hosts,
 * schemas, tables or users.
 *
 * @module
 */
import type { RunAction, RunState } from "../domain/run.ts";
import type { SourceEngine } from "../domain/source_engine.ts";

/** Where rows went: a filestore (CSV or DuckDB files) or the PostgreSQL destination. */
export type DestinationKind = "filestore" | "postgresql";

/** Counts what runs do. */
export interface RunMetrics {
  /**
   * A run entered `to`, from `from` (`null` when it was just created). `seconds` is how long it ran
   * (`started_at` to now) when `to` is final, else `null`. Runs in flight are those entered into an
   * active state and not yet out of it.
   */
  runChanged(action: RunAction, from: RunState | null, to: RunState, seconds: number | null): void;
  /** A table was done: its rows (`null` where not counted) and bytes, by source engine and destination. */
  tableTransferred(
    sourceEngine: SourceEngine,
    destination: DestinationKind,
    rows: number | null,
    bytes: number,
  ): void;
}

/** Counts nothing: for tests and for code paths with no metrics. */
export const NO_RUN_METRICS: RunMetrics = {
  runChanged: () => {},
  tableTransferred: () => {},
};
