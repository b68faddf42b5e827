/**
 * HTTP-file sources on the publish service (issue 18, points 4 and 5; `docs/http-sources.md`): the
 * `fetch` run's work, the routes (`GET /http-sources`, `POST /http-sources/{name}/run`) and the schedule
 * (a timer, like the gateway's release sweeper, that starts a run of each scheduled source at its cron
 * times, never twice at once, and fails a run stuck past its source's `run_timeout_ms`).
 *
 * @module
 */
import type { Context } from "hono";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { createRoute, z } from "@hono/zod-openapi";
import { MemoryFileRegistry } from "../../adapters/memory/memory_file_registry.ts";
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { fetchHttpFiles, type FetchHttpFilesPorts } from "../../application/fetch_http_files.ts";
import type { Runner, RunResult, RunWork } from "../../application/runs.ts";
import type { AllowedSources } from "../../domain/allowed_sources.ts";
import { type CronSchedule, latestCronTime, nextCronTime, parseCron } from "../../domain/cron.ts";
import {
  FILE_STATES,
  type HttpFileSource,
  HttpSourceRunTimedOutError,
  startTimeAt,
  UnknownHttpSourceError,
} from "../../domain/http_file_sources.ts";
import {
  isActiveRunState,
  type NewRunInput,
  type Run,
  runRequestKey,
  transition,
} from "../../domain/run.ts";
import type { FileRegistry } from "../../ports/file_registry.ts";
import type { Filestore } from "../../ports/filestore.ts";
import { UnknownDestinationError } from "../../ports/filestore.ts";
import type { HttpFileClient } from "../../ports/http_file_client.ts";
import { RunVersionConflictError } from "../../ports/run_store.ts";
import { API_KEY_SECURITY, errorResponses } from "../_shared/create_app.ts";
import { success } from "../_shared/envelope.ts";
import {
  HttpSourceFilesEnvelope,
  httpSourceNameParams,
  HttpSourceRunEnvelope,
  HttpSourcesEnvelope,
} from "../_shared/http_source_schemas.ts";
import type { Logger } from "../_shared/log.ts";
import { acceptedRunResponse } from "./routes.ts";

/** What the HTTP-file sources need (`HTTP_FILE_SOURCES_FILE`). */
export interface HttpSourcesDeps {
  readonly sources: readonly HttpFileSource[];
  readonly registry: FileRegistry;
  readonly client: HttpFileClient;
  /** The clock; the system's when absent. */
  readonly now?: (() => Date) | undefined;
}

/** The stored request of a `fetch` run. */
const FetchRunRequest = z.strictObject({
  source: z.string(),
  project_start_time: z.string(),
});

/** How often the schedule looks at the clock. */
export const SCHEDULE_TICK_MS = 30_000;

/** `GET /http-sources`: the configured sources and their registries' summaries. */
export const listHttpSourcesRoute = createRoute({
  method: "get",
  path: "/http-sources",
  summary:
    "HTTP-file sources: each with its schedule and how many files it processed, failed, ignored",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  responses: {
    200: {
      description: "The sources, in the order HTTP_FILE_SOURCES_FILE lists them",
      content: { "application/json": { schema: HttpSourcesEnvelope } },
    },
    ...errorResponses(),
  },
});

/** `GET /http-sources/{name}/files`: one source's registry. */
export const httpSourceFilesRoute = createRoute({
  method: "get",
  path: "/http-sources/{name}/files",
  summary: "The registry of one HTTP-file source: every file it took, failed or ignored",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  request: httpSourceNameParams,
  responses: {
    200: {
      description: "The files, by URL",
      content: { "application/json": { schema: HttpSourceFilesEnvelope } },
    },
    ...errorResponses(404),
  },
});

/** `POST /http-sources/{name}/run`: fetches what is new of a source, as a `fetch` run. */
export const runHttpSourceRoute = createRoute({
  method: "post",
  path: "/http-sources/{name}/run",
  summary: "Fetch what is new of an HTTP-file source into staging (a run with action `fetch`)",
  description: "Files land in the staging of the source's project under a new start time (the " +
    "run's); publish them through the usual release. With `Prefer: respond-async` the run is " +
    "returned at once (202).",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  request: httpSourceNameParams,
  responses: {
    200: {
      description: "What the run fetched, per file",
      content: { "application/json": { schema: HttpSourceRunEnvelope } },
    },
    ...acceptedRunResponse,
    ...errorResponses(404, 409, 502),
  },
});

/** The HTTP-file sources of one publish service. */
export class HttpSources {
  readonly #deps: HttpSourcesDeps;
  readonly #byName: ReadonlyMap<string, HttpFileSource>;
  readonly #schedules: ReadonlyMap<string, CronSchedule>;
  readonly #now: () => Date;
  #lastTick: Date | undefined;

  /** @param deps the sources (their schedules already valid: the file's schema checks them). */
  constructor(deps: HttpSourcesDeps) {
    this.#deps = deps;
    this.#byName = new Map(deps.sources.map((s) => [s.name, s]));
    this.#schedules = new Map(
      deps.sources.filter((s) => s.schedule !== undefined).map((s) => [
        s.name,
        parseCron(s.schedule!),
      ]),
    );
    this.#now = deps.now ?? (() => new Date());
  }

  /** No source configured. */
  static none(): HttpSources {
    return new HttpSources({
      sources: [],
      registry: new MemoryFileRegistry(),
      client: new NodeHttpFileClient(),
    });
  }

  /**
   * The source with this name.
   *
   * @throws {UnknownHttpSourceError} when none is configured.
   */
  source(name: string): HttpFileSource {
    const found = this.#byName.get(name);
    if (found === undefined) throw new UnknownHttpSourceError(name);
    return found;
  }

  /** What a `fetch` run of `source` stores, staging under the start time of `at`. */
  runInput(source: HttpFileSource, at: Date, callerKeyId: string | null): NewRunInput {
    const first = source.urls?.[0] ?? source.index!.url;
    const project_start_time = startTimeAt(at);
    return {
      action: "fetch",
      project_name: source.project_name,
      project_start_time,
      dataset: {
        source_host: new URL(first).host,
        source_engine: null,
        schema_name: source.name,
        tables: null,
      },
      destination: { type: "filestore", name: source.destination, format: null },
      caller_key_id: callerKeyId,
      request: { source: source.name, project_start_time },
    };
  }

  /**
   * What a run asked for now stores: an active run of the source is attached to (its own start time,
   * so the identical request), otherwise the start time is now's, or one second after the newest run
   * of the source if that is later, so that two runs never stage into one folder.
   */
  async requestedRunInput(
    runner: Runner,
    source: HttpFileSource,
    callerKeyId: string | null,
  ): Promise<NewRunInput> {
    const runs = await this.#runsOf(runner, source);
    const active = runs.find((r) => isActiveRunState(r.state) && r.state !== "interrupted");
    if (active !== undefined) {
      const attached = this.runInput(source, new Date(), active.caller_key_id);
      return {
        ...attached,
        project_start_time: active.project_start_time,
        request: active.request,
      };
    }
    let at = this.#now();
    for (const run of runs) {
      const started = startTimeAt(at);
      if (run.project_start_time >= started) {
        at = new Date(startTimeDate(run.project_start_time).getTime() + 1000);
      }
    }
    return this.runInput(source, at, callerKeyId);
  }

  /**
   * The work of a stored `fetch` run: fetches into its filestore, failed as stuck past the source's
   * `run_timeout_ms`.
   */
  workOf(
    run: Run,
    ports: {
      readonly allowedSources: AllowedSources;
      readonly filestoreOf: (name: string) => Filestore;
      /**
       * The PostgreSQL destination a source with `postgresql: true` loads into (throwing when the
       * deployment has none), and the load's limits.
       */
      readonly postgresql: () => NonNullable<FetchHttpFilesPorts["postgresql"]>;
    },
  ): RunWork {
    const request = FetchRunRequest.parse(run.request);
    return async ({ signal, onProgress, reuse }) => {
      const source = this.source(request.source);
      const filestore = ports.filestoreOf(source.destination);
      const postgresql = source.postgresql ? ports.postgresql() : undefined;
      const timeout = AbortSignal.timeout(source.run_timeout_ms);
      try {
        const result = await fetchHttpFiles(source, {
          allowedSources: ports.allowedSources,
          client: this.#deps.client,
          registry: this.#deps.registry,
          filestore,
          now: this.#now,
          postgresql,
        }, {
          runId: run.id,
          startTime: request.project_start_time,
          signal: AbortSignal.any([signal, timeout]),
          onProgress,
          reuse,
        });
        const counts = Object.fromEntries(
          ["fetched", "unchanged", "waiting", "failed", "ignored", "deferred"].map((o) => [
            o,
            result.files.filter((f) => f.outcome === o).length,
          ]),
        );
        const { staged: _staged, ...reply } = result;
        return {
          status: 200,
          body: success(reply) as unknown as RunResult["body"],
          audit: {
            files: result.staged.map((f) => ({ path: f.path, sha512: f.sha512, bytes: f.bytes })),
            ...(result.loaded_tables.length === 0
              ? {}
              : { destination_tables: [...result.loaded_tables] }),
          },
          logFields: { source: source.name, ...counts, tables: result.loaded_tables },
        };
      } catch (e) {
        if (timeout.aborted && !signal.aborted) {
          throw new HttpSourceRunTimedOutError(source.name, source.run_timeout_ms);
        }
        throw e;
      }
    };
  }

  /** Registers the routes; `start` starts a run of a source (as the package route does). */
  routes(app: OpenAPIHono, start: (source: HttpFileSource, c: Context) => Promise<Response>): void {
    app.openapi(listHttpSourcesRoute, async (c) => {
      const now = this.#now();
      const sources = [];
      for (const source of this.#deps.sources) {
        const records = await this.#deps.registry.records(source.name);
        const schedule = this.#schedules.get(source.name);
        const newest = records.reduce<typeof records[number] | undefined>(
          (a, r) => a === undefined || r.updated_at > a.updated_at ? r : a,
          undefined,
        );
        sources.push({
          name: source.name,
          project_name: source.project_name,
          destination: source.destination,
          postgresql: source.postgresql,
          schedule: source.schedule ?? null,
          next_run_at: schedule === undefined
            ? null
            : nextCronTime(schedule, now)?.toISOString() ?? null,
          files: Object.fromEntries(
            FILE_STATES.map((s) => [s, records.filter((r) => r.state === s).length]),
          ),
          last_run_id: newest?.run_id ?? null,
        });
      }
      return c.json(success({ sources }), 200);
    });

    app.openapi(httpSourceFilesRoute, async (c) => {
      const source = this.source(c.req.valid("param").name);
      const records = await this.#deps.registry.records(source.name);
      return c.json(
        success({
          files: records.map(({ source: _s, etag: _e, last_modified: _l, ...rest }) => rest),
        }),
        200,
      );
    });

    app.openapi(
      runHttpSourceRoute,
      (c) => start(this.source(c.req.valid("param").name), c) as never,
    );
  }

  /**
   * One pass of the schedule: fails runs of scheduled sources stuck past their `run_timeout_ms`, then
   * starts a run of each source whose cron time passed since the previous pass, unless a run of it is
   * still active. The run's start time is the cron time itself, so replicas that pass at the same
   * time store one identical request (the second attaches to the first's run), and a slot already
   * run is not run again.
   */
  async tick(runner: Runner, log: Logger): Promise<void> {
    const now = this.#now();
    const since = this.#lastTick ?? new Date(now.getTime() - SCHEDULE_TICK_MS);
    this.#lastTick = now;
    for (const [name, schedule] of this.#schedules) {
      const source = this.source(name);
      try {
        const runs = await this.#runsOf(runner, source);
        const failed = new Set<string>();
        for (const run of runs) {
          if (await this.#failIfStuck(runner, run, source, now, log)) failed.add(run.id);
        }
        const slot = latestCronTime(schedule, since, now);
        if (slot === undefined) continue;
        const running = runs.filter((r) =>
          isActiveRunState(r.state) && r.state !== "interrupted" && !failed.has(r.id)
        );
        if (running.length > 0) {
          log.info("http_source_schedule_skipped", { source: name, reason: "run_active" });
          continue;
        }
        const input = this.runInput(source, slot, null);
        const key = runRequestKey(input);
        if (runs.some((r) => runRequestKey(r) === key)) continue;
        const started = await runner.start(input);
        log.info("http_source_scheduled", {
          source: name,
          run: started.run.id,
          slot: slot.toISOString(),
        });
      } catch (e) {
        log.error("http_source_schedule_failed", { source: name, message: (e as Error).message });
      }
    }
  }

  /**
   * Makes the next {@link tick} look at the slots of the last `ms` (when that reaches further back than
   * its own previous look): a replica that takes the schedule over from another (the operator's new
   * leader) looks back over the time no one looked. A slot run already is found in the store and
   * skipped.
   */
  lookBack(ms: number): void {
    const since = new Date(this.#now().getTime() - ms);
    if (this.#lastTick === undefined || since < this.#lastTick) this.#lastTick = since;
  }

  /** Starts the schedule's timer (when any source has a schedule); returns how to stop it. */
  startSchedule(runner: Runner, log: Logger): () => void {
    if (this.#schedules.size === 0) return () => {};
    this.#lastTick = this.#now();
    const timer = setInterval(() => void this.tick(runner, log), SCHEDULE_TICK_MS);
    return () => clearInterval(timer);
  }

  /** The recent `fetch` runs of a source (its project's newest runs). */
  async #runsOf(runner: Runner, source: HttpFileSource): Promise<Run[]> {
    const page = await runner.store.list({ project: source.project_name, limit: 200 });
    return page.runs.filter((r) =>
      r.action === "fetch" && FetchRunRequest.safeParse(r.request).data?.source === source.name
    );
  }

  /**
   * Fails a run running longer than its source's `run_timeout_ms` (its process hangs); its process, if
   * alive, stops it at its next write (it finds the run stopped elsewhere).
   *
   * @returns whether it failed the run.
   */
  async #failIfStuck(
    runner: Runner,
    run: Run,
    source: HttpFileSource,
    now: Date,
    log: Logger,
  ): Promise<boolean> {
    if (run.state !== "running" || run.started_at === null) return false;
    if (now.getTime() - Date.parse(run.started_at) <= source.run_timeout_ms) return false;
    const error = new HttpSourceRunTimedOutError(source.name, source.run_timeout_ms);
    try {
      await runner.store.update(run.id, run.version, {
        ...transitionFields(transition(run, "fail", now.toISOString())),
        outcome: {
          status: 502,
          body: { status: "error", payload: { detail: error.message, code: error.code } },
        },
      });
      log.warn("http_source_run_stuck", { source: source.name, run: run.id });
      return true;
    } catch (e) {
      if (!(e instanceof RunVersionConflictError)) throw e;
      return false;
    }
  }
}

function transitionFields(run: Run) {
  return {
    state: run.state,
    updated_at: run.updated_at,
    started_at: run.started_at,
    finished_at: run.finished_at,
  };
}

/** The instant a `YYYYMMDD_HHMMSS` start time names (UTC). */
function startTimeDate(startTime: string): Date {
  const [, y, mo, d, h, mi, se] = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(startTime)!;
  return new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +se!));
}

/** The filestore of a source's destination, or the error naming the missing configuration. */
export function filestoreOf(
  filestores: ReadonlyMap<string, Filestore>,
): (name: string) => Filestore {
  return (name) => {
    const filestore = filestores.get(name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(name);
    return filestore;
  };
}
