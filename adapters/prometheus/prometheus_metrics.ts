/**
 * What a service counts, in the Prometheus text format, through prom-client. Each instance has its own
 * registry (never prom-client's global one), so several services, or several test apps, in one process
 * keep their counts apart.
 *
 * Every label value comes from a short fixed list (methods, route patterns, statuses, run actions and
 * states, source engines, destination kinds, error codes); nothing a caller names (project, host,
 * schema, table, user, request id) ever becomes a label.
 *
 * @module
 */
import process from "node:process";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { isActiveRunState, type RunAction, type RunState } from "../../domain/run.ts";
import type { SourceEngine } from "../../domain/source_engine.ts";
import type { DestinationKind, RunMetrics } from "../../ports/metrics.ts";

/** Every metric name starts with this. */
export const METRIC_PREFIX = "cr8tor_";

/** The methods counted by name; any other is counted as `other`. */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** An error code as the services write them; anything else is counted as `other`. */
const ERROR_CODE = /^[a-z][a-z0-9_]{0,63}$/;

/** Seconds, from a fast `/health` to a package of an hour (`SUBSERVICE_TIMEOUT_SECONDS`). */
const REQUEST_SECONDS_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  300,
  900,
  3600,
];

/** Seconds a run takes, from a second to four hours. */
const RUN_SECONDS_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];

/**
 * prom-client's default process metrics that read `/proc/self/…`. Deno allows that only with
 * `--allow-all`, which the services never get, so they would report a steady 0: they are left out, and
 * the resident set size is reported from `process.memoryUsage` instead.
 */
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/** One answered HTTP request, as the HTTP stack reports it. */
export interface AnsweredRequest {
  readonly method: string;
  /** The matched route's pattern (`/runs/:id`), never the raw path; `unmatched` when none matched. */
  readonly route: string;
  readonly status: number;
  readonly seconds: number;
}

/** What a {@link PrometheusMetrics} needs. */
export interface PrometheusMetricsOptions {
  /** `approval`, `metadata` or `publish`: the `service` label of every metric. */
  readonly service: string;
  /** Whether to add prom-client's default process metrics (CPU, memory, event loop, GC); yes by default. */
  readonly processMetrics?: boolean;
}

/** A registry of one service's metrics, with the counters the services and the use cases report to. */
export class PrometheusMetrics implements RunMetrics {
  readonly #registry = new Registry();
  readonly #requests: Counter<"method" | "route" | "status">;
  readonly #requestSeconds: Histogram<"method" | "route" | "status">;
  readonly #runs: Counter<"action" | "state">;
  readonly #runsInFlight: Gauge<"action">;
  readonly #runSeconds: Histogram<"action" | "state">;
  readonly #rows: Counter<"source_engine" | "destination">;
  readonly #bytes: Counter<"source_engine" | "destination">;
  readonly #sourceFailures: Counter<"engine" | "code">;

  constructor(options: PrometheusMetricsOptions) {
    const registers = [this.#registry];
    this.#registry.setDefaultLabels({ service: options.service });
    this.#requests = new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: "HTTP requests answered, by method, matched route pattern and status.",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: "Time to answer an HTTP request, by method, matched route pattern and status.",
      labelNames: ["method", "route", "status"],
      buckets: REQUEST_SECONDS_BUCKETS,
      registers,
    });
    this.#runs = new Counter({
      name: `${METRIC_PREFIX}runs_total`,
      help: "Runs that entered a state, by action and state.",
      labelNames: ["action", "state"],
      registers,
    });
    this.#runsInFlight = new Gauge({
      name: `${METRIC_PREFIX}runs_in_flight`,
      help: "Runs queued or running in this process, by action.",
      labelNames: ["action"],
      registers,
    });
    this.#runSeconds = new Histogram({
      name: `${METRIC_PREFIX}run_duration_seconds`,
      help: "Time from a run's start to its final state, by action and final state.",
      labelNames: ["action", "state"],
      buckets: RUN_SECONDS_BUCKETS,
      registers,
    });
    this.#rows = new Counter({
      name: `${METRIC_PREFIX}rows_total`,
      help: "Rows transferred (where counted), by source engine and destination kind.",
      labelNames: ["source_engine", "destination"],
      registers,
    });
    this.#bytes = new Counter({
      name: `${METRIC_PREFIX}bytes_total`,
      help: "Bytes written to the destination, by source engine and destination kind.",
      labelNames: ["source_engine", "destination"],
      registers,
    });
    this.#sourceFailures = new Counter({
      name: `${METRIC_PREFIX}source_connection_failures_total`,
      help: "Source databases that could not be connected to, by engine and error code.",
      labelNames: ["engine", "code"],
      registers,
    });
    if (options.processMetrics ?? true) this.#addProcessMetrics();
  }

  /** The `Content-Type` of {@link render}'s text. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Everything counted so far, in the Prometheus text exposition format. */
  render(): Promise<string> {
    return this.#registry.metrics();
  }

  /** Counts one answered HTTP request and its duration. */
  requestAnswered(request: AnsweredRequest): void {
    const method = request.method.toUpperCase();
    const labels = {
      method: KNOWN_METHODS.has(method) ? method : "other",
      route: request.route,
      status: String(request.status),
    };
    this.#requests.inc(labels);
    this.#requestSeconds.observe(labels, request.seconds);
  }

  /** Counts a source that could not be connected to; `code` is the error's (`source_login_refused`). */
  sourceConnectionFailed(engine: SourceEngine, code: string): void {
    this.#sourceFailures.inc({ engine, code: ERROR_CODE.test(code) ? code : "other" });
  }

  runChanged(action: RunAction, from: RunState | null, to: RunState, seconds: number | null): void {
    this.#runs.inc({ action, state: to });
    const wasActive = from !== null && isActiveRunState(from);
    const isActive = isActiveRunState(to);
    if (isActive && !wasActive) this.#runsInFlight.inc({ action });
    if (wasActive && !isActive) this.#runsInFlight.dec({ action });
    if (seconds !== null) this.#runSeconds.observe({ action, state: to }, seconds);
  }

  tableTransferred(
    sourceEngine: SourceEngine,
    destination: DestinationKind,
    rows: number | null,
    bytes: number,
  ): void {
    const labels = { source_engine: sourceEngine, destination };
    if (rows !== null) this.#rows.inc(labels, rows);
    this.#bytes.inc(labels, bytes);
  }

  /** prom-client's default metrics, less those Deno does not let it read, plus the resident set size. */
  #addProcessMetrics(): void {
    collectDefaultMetrics({ register: this.#registry, prefix: METRIC_PREFIX });
    for (const name of PROC_METRICS) this.#registry.removeSingleMetric(`${METRIC_PREFIX}${name}`);
    new Gauge({
      name: `${METRIC_PREFIX}process_resident_memory_bytes`,
      help: "Resident memory size in bytes.",
      registers: [this.#registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
  }
}
