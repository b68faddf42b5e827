/**
 * The AnalyticsWorkspaceDataSource operator (`docs/operator.md`): watches the resources of one namespace
 * with informers from `@kubernetes/client-node`, and, on the replica that holds the leader Lease,
 * reconciles each one:
 *
 * - a resource being deleted: its Jobs and volume are removed, an active run cancelled, then the
 *   finalizer is taken off;
 * - a malformed resource: `Failed`, `INVALID_RESOURCE`;
 * - an `Uploaded` one (with `uploads`): its data source in the upload quarantine area is made, the same
 *   one the dashboard makes (`planUpload`), and followed into the status (waiting for files, uploaded,
 *   awaiting approval, awaiting publication, published, or why it failed); without `uploads`:
 *   `NotSupported`;
 * - an `Import`: checked (`planImport`: approvals, allow-listed sources, secrets in their roles); a
 *   refusal is its status (`Pending` while approvals are missing, else `Failed`) with the reason code;
 * - an approved `Import`: the finalizer, a PersistentVolumeClaim, a run in the shared run store and a
 *   Job executing it (`RunExecutor`), all named from the uid and generation
 *   ({@link dataSourceNames}), so a repeated event, a restart in the middle or a second replica finds
 *   them instead of making a second; then the Job is followed into the status: `Running` with its
 *   stage, then `Completed` with the published files and their SHA-512 and the crate's path, or
 *   `Failed` with the run's error or the pod's reason.
 *
 * With `schedule`, the leader also looks at the HTTP-file sources' cron schedules every 30 s
 * ({@link DataSourceOperator.scheduleTick}), starting each slot's run as a Job.
 *
 * Watches are bounded (`adapters/kubernetes/bounded_informer.ts`): the server ends each after a while
 * and a broken one is noticed and replaced; every resource is also reconciled again every resync
 * period, so a missed event only delays.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import {
  createIfAbsent,
  type KubeApi,
  MERGE_PATCH,
  unlessMissing,
} from "../../adapters/kubernetes/kube_api.ts";
import { RUN_ID_LABEL } from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import {
  type BoundedInformer,
  boundedInformer,
} from "../../adapters/kubernetes/bounded_informer.ts";
import { LeaseLeader } from "../../adapters/kubernetes/lease_leader.ts";
import { RemoteRuns, RunExecutionFailedError } from "../../application/remote_runs.ts";
import type { Runner, RunOutcome } from "../../application/runs.ts";
import { CRATE_TAG_FILE } from "../../domain/release_receipt.ts";
import { isActiveRunState, newRun, type Run, transition } from "../../domain/run.ts";
import { csvPayloadPath, runFolder } from "../../domain/staging_layout.ts";
import {
  type Condition,
  DATASOURCE_API,
  DATASOURCE_FINALIZER,
  dataSourceNames,
  DataSourceResource,
  type DataSourceStatus,
  type ImportPolicy,
  planImport,
  type PublishedFile,
} from "../../domain/workspace_datasource.ts";
import { describeDataSource } from "../../domain/workspace_datasource_crate.ts";
import {
  planUpload,
  RECOVERABLE_UPLOAD_FAILURES,
  type UploadPolicy,
  uploadSourceIdOf,
  uploadSpecChange,
  uploadStatusOf,
} from "../../domain/workspace_upload.ts";
import type { UploadDataSources } from "../../ports/upload_data_sources.ts";
import { type HttpSources, SCHEDULE_TICK_MS } from "../publish/http_sources.ts";
import type { RunExecutor } from "../../ports/run_executor.ts";
import { type RunStore, RunVersionConflictError } from "../../ports/run_store.ts";
import type { Logger } from "../_shared/log.ts";
import { runInputOf } from "../publish/app.ts";

/** The label naming the resource a Job or volume belongs to. */
export const DATASOURCE_LABEL = "xlscsde.nhs.uk/datasource";
/** The label with the uid of the resource a Job or volume belongs to. */
export const DATASOURCE_UID_LABEL = "xlscsde.nhs.uk/datasource-uid";
/** The label every object the operator makes has. */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "cr8tor-operator" } as const;

/** What the operator needs. */
export interface OperatorOptions {
  readonly api: KubeApi;
  /** The namespace watched (resources, Jobs, volumes and the Lease are there). */
  readonly namespace: string;
  readonly store: RunStore;
  readonly executor: RunExecutor;
  readonly policy: ImportPolicy;
  /** The data volumes' storage class and size. */
  readonly storageClass: string;
  readonly volumeSize: string;
  /** This replica, for the Lease. */
  readonly identity: string;
  readonly leaseName: string;
  readonly leaseSeconds: number;
  /** Every resource is reconciled again this often. */
  readonly resyncMs: number;
  /** The error mapping of failed runs' outcomes. */
  readonly outcomeOfError: (error: unknown) => RunOutcome;
  readonly log: Logger;
  /** How long after a failed reconcile it is tried again (doubling, up to 30 s); default 500 ms. */
  readonly retryMs?: number;
  /** How often a running resource is reconciled again (its Job checked); default 2 s. */
  readonly followMs?: number;
  /** How long the API server keeps each watch open (`boundedInformer`); default 20 s. */
  readonly watchSeconds?: number;
  /**
   * `Uploaded` resources (`UPLOAD_QUARANTINE_PATH`): the quarantine area's data sources and the
   * destinations they may go to. Absent: `Uploaded` resources are `NotSupported`.
   */
  readonly uploads?: {
    readonly sources: UploadDataSources;
    readonly policy: UploadPolicy;
    /** How often an unpublished upload's data source is looked at again; default 5 s. */
    readonly pollMs?: number;
  };
  /**
   * The HTTP-file sources' schedule, when the operator runs it (`httpSourceSchedulerOf`): the leader
   * calls `HttpSources.tick` with a runner whose runs are dispatched as Jobs (`publish run <id>`).
   */
  readonly schedule?: {
    readonly sources: HttpSources;
    readonly runner: Runner;
    /** How often the schedule looks at the clock; default `SCHEDULE_TICK_MS` (30 s). */
    readonly tickMs?: number;
  };
}

/** What one call of {@link DataSourceOperator.scheduleTick} did. */
export type ScheduleTick = "ran" | "off" | "follower" | "overlap";

const TERMINAL = new Set(["Completed", "Failed", "NotSupported"]);

type Raw = k8s.KubernetesObject & { spec?: unknown; status?: DataSourceStatus };

/** The operator: informers, leader election, a per-resource work queue, reconcile. */
export class DataSourceOperator {
  readonly #o: OperatorOptions;
  readonly #remote: RemoteRuns;
  readonly #leader: LeaseLeader;
  readonly #path: string;
  #resources: BoundedInformer<Raw> | undefined;
  #jobs: BoundedInformer<k8s.V1Job> | undefined;
  #resync: ReturnType<typeof setInterval> | undefined;
  #scheduleTimer: ReturnType<typeof setInterval> | undefined;
  #ticking: Promise<void> | undefined;
  #stopped = true;
  readonly #queue = new Map<string, { running: Promise<void>; again: boolean }>();
  readonly #retries = new Map<string, { timer: ReturnType<typeof setTimeout>; attempt: number }>();
  /** Reconciles done, by resource name (tests wait on them). */
  readonly reconciled = new Map<string, number>();

  /** See {@link OperatorOptions}. */
  constructor(options: OperatorOptions) {
    this.#o = options;
    this.#path =
      `/apis/${DATASOURCE_API.group}/${DATASOURCE_API.version}/namespaces/${options.namespace}/${DATASOURCE_API.plural}`;
    this.#remote = new RemoteRuns({
      executor: options.executor,
      store: options.store,
      outcomeOfError: options.outcomeOfError,
      log: options.log,
    });
    this.#leader = new LeaseLeader({
      api: options.api,
      namespace: options.namespace,
      name: options.leaseName,
      identity: options.identity,
      leaseSeconds: options.leaseSeconds,
      onChange: (leader) => {
        options.log.info(leader ? "leader_elected" : "leader_lost", { identity: options.identity });
        if (leader) {
          // Slots a former leader may have left while no replica led are looked at again; one it ran
          // already is found in the run store and not run twice.
          options.schedule?.sources.lookBack(2 * options.leaseSeconds * 1000 + this.#tickMs);
          void this.resyncAll();
        }
      },
      onError: (e) => options.log.warn("lease_failed", { message: (e as Error).message }),
    });
  }

  /** Whether this replica leads (only the leader reconciles). */
  get leader(): boolean {
    return this.#leader.leader;
  }

  /** Whether the informers run (for `/ready`). */
  get started(): boolean {
    return !this.#stopped;
  }

  /** Starts the informers, the Lease and the resync timer. */
  async start(): Promise<void> {
    this.#stopped = false;
    const { api, namespace } = this.#o;
    const crd = { group: DATASOURCE_API.group, version: DATASOURCE_API.version, namespace };
    const restarted = (what: string) => (why: string) =>
      this.#o.log.warn("watch_restarted", { watch: what, why });
    this.#resources = boundedInformer<Raw>({
      config: api.config,
      path: this.#path,
      list: () => api.custom.listNamespacedCustomObject({ ...crd, plural: DATASOURCE_API.plural }),
      timeoutSeconds: this.#o.watchSeconds ?? 20,
      onRestart: restarted("datasources"),
    });
    const selector = Object.entries(MANAGED_BY).map(([k, v]) => `${k}=${v}`).join(",");
    this.#jobs = boundedInformer<k8s.V1Job>({
      config: api.config,
      path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
      list: () => api.batch.listNamespacedJob({ namespace, labelSelector: selector }),
      labelSelector: selector,
      timeoutSeconds: this.#o.watchSeconds ?? 20,
      onRestart: restarted("jobs"),
    });
    for (const verb of ["add", "update", "delete"] as const) {
      this.#resources.informer.on(verb, (o) => this.enqueue(o.metadata?.name));
      this.#jobs.informer.on(
        verb,
        (job) => this.enqueue(job.metadata?.labels?.[DATASOURCE_LABEL]),
      );
    }
    for (const { informer } of [this.#resources, this.#jobs]) {
      informer.on("error", (e) => {
        this.#o.log.warn("watch_failed", { message: (e as Error)?.message ?? String(e) });
      });
    }
    this.#leader.start();
    await Promise.all([this.#resources.start(), this.#jobs.start()]);
    this.#resync = setInterval(() => void this.resyncAll(), this.#o.resyncMs);
    if (this.#o.schedule !== undefined) {
      this.#scheduleTimer = setInterval(() => void this.scheduleTick(), this.#tickMs);
    }
  }

  get #tickMs(): number {
    return this.#o.schedule?.tickMs ?? SCHEDULE_TICK_MS;
  }

  /**
   * One look at the HTTP-file sources' schedule (`HttpSources.tick`: stuck runs failed, the latest
   * passed slot of each source started unless a run of it is active), on the leader only. A look still
   * under way when the next is due makes that one skip (`overlap`), so two never run at once here;
   * across replicas only the Lease holder looks, and the run store attaches a second identical slot
   * run to the first.
   */
  async scheduleTick(): Promise<ScheduleTick> {
    const schedule = this.#o.schedule;
    if (schedule === undefined || this.#stopped) return "off";
    if (!this.leader) return "follower";
    if (this.#ticking !== undefined) {
      this.#o.log.warn("http_source_schedule_overlap", {
        detail: "the previous look is under way",
      });
      return "overlap";
    }
    this.#ticking = schedule.sources.tick(schedule.runner, this.#o.log);
    try {
      await this.#ticking;
    } finally {
      this.#ticking = undefined;
    }
    return "ran";
  }

  /** Stops watching and reconciling, waits for reconciles under way, and releases the Lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#resync);
    clearInterval(this.#scheduleTimer);
    await this.#ticking?.catch(() => {});
    for (const { timer } of this.#retries.values()) clearTimeout(timer);
    this.#retries.clear();
    await Promise.allSettled([this.#resources?.close(), this.#jobs?.close()]);
    await Promise.allSettled([...this.#queue.values()].map((q) => q.running));
    this.#remote.close();
    await this.#leader.stop();
  }

  /** Lists the resources and reconciles each (the leader only). */
  async resyncAll(): Promise<void> {
    if (this.#stopped || !this.leader) return;
    try {
      const list = await this.#o.api.custom.listNamespacedCustomObject({
        group: DATASOURCE_API.group,
        version: DATASOURCE_API.version,
        namespace: this.#o.namespace,
        plural: DATASOURCE_API.plural,
      }) as { items: Raw[] };
      for (const item of list.items) this.enqueue(item.metadata?.name);
    } catch (e) {
      this.#o.log.warn("resync_failed", { message: (e as Error).message });
    }
  }

  /** Queues a reconcile of the named resource: one at a time per resource, the last event wins. */
  enqueue(name: string | undefined): void {
    if (name === undefined || this.#stopped || !this.leader) return;
    const queued = this.#queue.get(name);
    if (queued !== undefined) {
      queued.again = true;
      return;
    }
    const entry = { running: Promise.resolve(), again: false };
    this.#queue.set(name, entry);
    entry.running = (async () => {
      do {
        entry.again = false;
        try {
          await this.reconcile(name);
          const retry = this.#retries.get(name);
          if (retry !== undefined && retry.attempt > 0) {
            clearTimeout(retry.timer);
            this.#retries.delete(name);
          }
        } catch (e) {
          this.#o.log.warn("reconcile_failed", { resource: name, message: (e as Error).message });
          this.#retry(name);
        }
        this.reconciled.set(name, (this.reconciled.get(name) ?? 0) + 1);
      } while (entry.again && !this.#stopped);
      this.#queue.delete(name);
    })();
  }

  #retry(name: string): void {
    if (this.#stopped) return;
    const previous = this.#retries.get(name);
    const attempt = (previous?.attempt ?? 0) + 1;
    clearTimeout(previous?.timer);
    const ms = Math.min((this.#o.retryMs ?? 500) * 2 ** (attempt - 1), 30_000);
    this.#retries.set(name, { attempt, timer: setTimeout(() => this.enqueue(name), ms) });
  }

  /** Brings one resource's world in line with its spec (see the module documentation). */
  async reconcile(name: string): Promise<void> {
    const raw = await unlessMissing(() =>
      this.#o.api.custom.getNamespacedCustomObject({ ...this.#crd(), name })
    ) as Raw | undefined;
    if (raw === undefined) return;
    if (raw.metadata?.deletionTimestamp !== undefined) {
      await this.#finalize(raw);
      return;
    }
    const parsed = DataSourceResource.safeParse(raw);
    if (!parsed.success) {
      await this.#writeStatus(raw, {
        dataState: "Failed",
        stage: "Checked",
        reason: "INVALID_RESOURCE",
        message: z.prettifyError(parsed.error),
      });
      return;
    }
    const resource = parsed.data;
    const status = resource.status ?? {};
    const generation = resource.metadata.generation;
    // Ended for this generation, unless the uploader can still mend it, or uploads were turned on
    // since this operator's predecessor found them off.
    const mendable = RECOVERABLE_UPLOAD_FAILURES.includes(status.reason ?? "") ||
      (status.reason === "UPLOADED_NOT_SUPPORTED" && this.#o.uploads !== undefined);
    if (
      status.observedGeneration === generation && TERMINAL.has(status.dataState ?? "") && !mendable
    ) {
      return;
    }
    if (resource.spec.type === "Uploaded" && this.#o.uploads !== undefined) {
      await this.#reconcileUpload(raw, resource, this.#o.uploads);
      return;
    }
    const plan = planImport(resource, this.#o.policy);
    if ("reason" in plan) {
      const dataState = plan.reason === "UPLOADED_NOT_SUPPORTED"
        ? "NotSupported"
        : plan.reason === "AWAITING_APPROVAL" || plan.reason === "MISSING_APPROVALS"
        ? "Pending"
        : "Failed";
      await this.#writeStatus(raw, { dataState, stage: "Checked", ...plan });
      return;
    }
    await this.#ensureFinalizer(raw);
    const names = dataSourceNames(resource.metadata.uid, generation);
    const labels = {
      ...MANAGED_BY,
      [DATASOURCE_LABEL]: resource.metadata.name,
      [DATASOURCE_UID_LABEL]: resource.metadata.uid,
    };
    await this.#ensureVolume(names.volumeClaim, labels);
    const run = await this.#ensureRun(names.run, plan.request);
    if (run.state === "queued" || isActiveRunState(run.state)) {
      await this.#o.executor.launch({
        run,
        name: names.job,
        labels,
        volumeClaim: names.volumeClaim,
        env: { RUN_CRATE: JSON.stringify(describeDataSource(resource)) },
      });
    }
    const execution = await this.#o.executor.state(names.job);
    let current = (await this.#o.store.get(run.id)) ?? run;
    if (
      isActiveRunState(current.state) &&
      (execution.state === "failed" || execution.state === "missing")
    ) {
      await this.#remote.fail(
        run.id,
        execution.state === "failed"
          ? new RunExecutionFailedError(execution.reason, execution.message)
          : new RunExecutionFailedError("ExecutionMissing", `Job ${names.job} no longer exists`),
      );
      current = (await this.#o.store.get(run.id)) ?? current;
    }
    const base = { runId: run.id, jobName: names.job };
    if (current.state === "succeeded" && execution.state === "succeeded") {
      const folder = runFolder("staging", {
        project: current.project_name,
        startTime: current.project_start_time,
      });
      await this.#writeStatus(raw, {
        ...base,
        dataState: "Completed",
        stage: "Published",
        reason: "COMPLETED",
        message: `${current.tables.length} table(s) extracted to volume ${names.volumeClaim}`,
        files: filesOf(current, folder),
        crate: `${folder}/${CRATE_TAG_FILE}`,
      });
    } else if (execution.state === "failed" || execution.state === "missing") {
      const why = execution.state === "failed"
        ? `${execution.reason}: ${execution.message}`
        : `Job ${names.job} no longer exists`;
      await this.#writeStatus(raw, {
        ...base,
        dataState: "Failed",
        stage: "Extracting",
        reason: current.state === "failed" && !runFailedBy(current, "run_execution_failed")
          ? "RUN_FAILED"
          : "JOB_FAILED",
        message: current.state === "failed" && !runFailedBy(current, "run_execution_failed")
          ? `${outcomeDetail(current)} (${why})`
          : why,
      });
    } else if (!isActiveRunState(current.state) && current.state !== "succeeded") {
      await this.#writeStatus(raw, {
        ...base,
        dataState: "Failed",
        stage: "Extracting",
        reason: "RUN_FAILED",
        message: `run ${current.state}: ${outcomeDetail(current)}`,
      });
    } else {
      await this.#writeStatus(raw, {
        ...base,
        dataState: "Running",
        stage: current.state === "queued"
          ? "Queued"
          : current.state === "succeeded"
          ? "Describing"
          : "Extracting",
        reason: "RUNNING",
        message: `Job ${names.job} is executing run ${run.id}`,
      });
      this.#remote.follow(run.id, names.job);
      // Followed without relying on the Job's watch events (a broken watch goes unnoticed for a while).
      this.#requeueAfter(name, this.#o.followMs ?? 2000);
    }
  }

  /**
   * An `Uploaded` resource: its data source in the quarantine area is made (once: its id is the uid),
   * then followed into the status until it is published (`uploadStatusOf`).
   */
  async #reconcileUpload(
    raw: Raw,
    resource: DataSourceResource,
    uploads: NonNullable<OperatorOptions["uploads"]>,
  ): Promise<void> {
    const planned = planUpload(resource, uploads.policy);
    if ("reason" in planned) {
      await this.#writeStatus(raw, { dataState: "Failed", stage: "Checked", ...planned });
      return;
    }
    await this.#ensureFinalizer(raw);
    let source = await uploads.sources.source(planned.id);
    if (source === undefined) {
      if (resource.status?.uploadId === planned.id) {
        await this.#writeStatus(raw, {
          dataState: "Failed",
          stage: "Checked",
          reason: "UPLOAD_SOURCE_MISSING",
          message: `The data source ${planned.id} is no longer in the upload quarantine area`,
          uploadId: planned.id,
        });
        return;
      }
      if (await uploads.sources.createSource(planned)) {
        this.#o.log.info("upload_source_created", {
          resource: resource.metadata.name,
          source: planned.id,
        });
      }
      source = (await uploads.sources.source(planned.id)) ?? planned;
    }
    const changed = uploadSpecChange(planned, source);
    if (changed !== undefined) {
      await this.#writeStatus(raw, {
        dataState: "Failed",
        stage: "Checked",
        ...changed,
        uploadId: source.id,
      });
      return;
    }
    const status = uploadStatusOf(source, await uploads.sources.files(source.id));
    await this.#writeStatus(raw, status);
    if (status.dataState !== "Completed") {
      this.#requeueAfter(resource.metadata.name, uploads.pollMs ?? 5000);
    }
  }

  #requeueAfter(name: string, ms: number): void {
    if (this.#stopped || this.#retries.has(name)) return;
    this.#retries.set(name, {
      attempt: 0,
      timer: setTimeout(() => {
        this.#retries.delete(name);
        this.enqueue(name);
      }, ms),
    });
  }

  #crd() {
    return {
      group: DATASOURCE_API.group,
      version: DATASOURCE_API.version,
      namespace: this.#o.namespace,
      plural: DATASOURCE_API.plural,
    };
  }

  /** The generation's run: the stored one, or a new queued one under the deterministic id. */
  async #ensureRun(id: string, request: Parameters<typeof runInputOf>[1]): Promise<Run> {
    const existing = await this.#o.store.get(id);
    if (existing !== undefined) return existing;
    const run = { ...newRun(runInputOf("package", request, "cr8tor-operator"), now()), id };
    const created = await this.#o.store.create(run, { exclusive: false });
    if (created.run.id !== id) {
      // An identical run of the project is active (another generation, same request): wait for it.
      throw new Error(`an identical run ${created.run.id} is active; waiting for it to stop`);
    }
    return created.run;
  }

  async #ensureVolume(name: string, labels: Record<string, string>): Promise<void> {
    await createIfAbsent(() =>
      this.#o.api.core.createNamespacedPersistentVolumeClaim({
        namespace: this.#o.namespace,
        body: {
          metadata: { name, labels },
          spec: {
            accessModes: ["ReadWriteOnce"],
            storageClassName: this.#o.storageClass,
            resources: { requests: { storage: this.#o.volumeSize } },
          },
        },
      })
    );
  }

  async #ensureFinalizer(raw: Raw): Promise<void> {
    const finalizers = raw.metadata?.finalizers ?? [];
    if (finalizers.includes(DATASOURCE_FINALIZER)) return;
    // With the version read: a concurrent change is a 409, and the reconcile is tried again.
    await this.#o.api.custom.patchNamespacedCustomObject({
      ...this.#crd(),
      name: raw.metadata!.name!,
      body: {
        metadata: {
          finalizers: [...finalizers, DATASOURCE_FINALIZER],
          resourceVersion: raw.metadata!.resourceVersion,
        },
      },
    }, MERGE_PATCH);
  }

  /** Deletion: Jobs and volume removed, active runs cancelled, then the finalizer taken off. */
  async #finalize(raw: Raw): Promise<void> {
    const finalizers = raw.metadata?.finalizers ?? [];
    if (!finalizers.includes(DATASOURCE_FINALIZER)) return;
    const uid = raw.metadata!.uid!;
    const { namespace } = this.#o;
    const jobs = await this.#o.api.batch.listNamespacedJob({
      namespace,
      labelSelector: `${DATASOURCE_UID_LABEL}=${uid}`,
    });
    for (const job of jobs.items) {
      const runId = job.metadata?.labels?.[RUN_ID_LABEL];
      if (runId !== undefined) await this.#cancelRun(runId);
      await this.#o.executor.remove(job.metadata!.name!);
    }
    await this.#cancelRun(dataSourceNames(uid, raw.metadata!.generation ?? 1).run);
    await this.#removeUpload(raw);
    await unlessMissing(() =>
      this.#o.api.core.deleteNamespacedPersistentVolumeClaim({
        name: dataSourceNames(uid, 1).volumeClaim,
        namespace,
      })
    );
    await this.#o.api.custom.patchNamespacedCustomObject({
      ...this.#crd(),
      name: raw.metadata!.name!,
      body: {
        metadata: {
          finalizers: finalizers.filter((f) => f !== DATASOURCE_FINALIZER),
          resourceVersion: raw.metadata!.resourceVersion,
        },
      },
    }, MERGE_PATCH);
    this.#o.log.info("datasource_deleted", {
      resource: raw.metadata!.name,
      jobs: jobs.items.length,
    });
  }

  /**
   * An `Uploaded` resource's data source, when nothing of it was staged yet (`open` or `ready`): removed
   * with its files. A staged or published one is kept: its release holds the staged or published copy,
   * and revoking it is the approval service's.
   */
  async #removeUpload(raw: Raw): Promise<void> {
    const uploads = this.#o.uploads;
    if (uploads === undefined || (raw.spec as { type?: unknown })?.type !== "Uploaded") return;
    const id = uploadSourceIdOf(raw.metadata!.uid!);
    const source = await uploads.sources.source(id);
    if (source === undefined) return;
    if (source.state === "open" || source.state === "ready") {
      await uploads.sources.removeSource(id);
      this.#o.log.info("upload_source_removed", { resource: raw.metadata!.name, source: id });
    } else {
      this.#o.log.info("upload_source_kept", {
        resource: raw.metadata!.name,
        source: id,
        state: source.state,
      });
    }
  }

  async #cancelRun(id: string): Promise<void> {
    for (;;) {
      const run = await this.#o.store.get(id);
      if (run === undefined || !isActiveRunState(run.state)) return;
      const moved = transition(run, "cancel", now());
      try {
        await this.#o.store.update(id, run.version, {
          state: moved.state,
          updated_at: moved.updated_at,
          started_at: moved.started_at,
          finished_at: moved.finished_at,
          outcome: {
            status: 409,
            body: {
              status: "error",
              payload: { code: "run_cancelled", detail: "The data source was deleted" },
            },
          },
        });
        return;
      } catch (e) {
        if (!(e instanceof RunVersionConflictError)) throw e;
      }
    }
  }

  /**
   * Writes the status of the resource's current generation when it differs from what is there: the
   * status fields, `statusText` (the real models' field: the reason), `observedGeneration`, and a
   * `Ready` condition whose transition time changes only when its status or reason does.
   */
  async #writeStatus(raw: Raw, next: DataSourceStatus): Promise<void> {
    const old = raw.status ?? {};
    const generation = raw.metadata?.generation ?? 1;
    const ready: Condition["status"] = next.dataState === "Completed"
      ? "True"
      : next.dataState === "Running" || next.dataState === "Pending"
      ? "Unknown"
      : "False";
    const previous = (old.conditions ?? []).find((c) => c.type === "Ready");
    const condition: Condition = {
      type: "Ready",
      status: ready,
      reason: toConditionReason(next.reason ?? next.dataState ?? "Unknown"),
      message: next.message ?? "",
      lastTransitionTime: previous !== undefined && previous.status === ready &&
          previous.reason === toConditionReason(next.reason ?? next.dataState ?? "Unknown")
        ? previous.lastTransitionTime
        : now().replace(/\.\d+Z$/, "Z"),
      observedGeneration: generation,
    };
    const status: DataSourceStatus = {
      statusText: next.reason ?? next.dataState,
      ...next,
      observedGeneration: generation,
      conditions: [condition],
    };
    const comparable = (s: DataSourceStatus) =>
      JSON.stringify({ ...s, lastActiveCheck: undefined, conditions: undefined }) +
      JSON.stringify((s.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: "" })));
    if (comparable({ ...old, statusText: old.statusText }) === comparable(status)) return;
    const body = {
      status: {
        // Fields of an earlier state that no longer apply are removed (merge patch `null`).
        runId: null,
        jobName: null,
        files: null,
        crate: null,
        uploadId: null,
        releaseId: null,
        ...status,
        lastActiveCheck: now(),
      },
    };
    await this.#o.api.custom.patchNamespacedCustomObjectStatus({
      ...this.#crd(),
      name: raw.metadata!.name!,
      body,
    }, MERGE_PATCH);
    if (old.dataState !== status.dataState || old.reason !== status.reason) {
      this.#o.log.info("datasource_status", {
        resource: raw.metadata!.name,
        generation,
        state: status.dataState,
        reason: status.reason,
      });
    }
  }
}

function now(): string {
  return new Date().toISOString();
}

/** A condition reason: CamelCase letters (`MISSING_APPROVALS` → `MissingApprovals`). */
function toConditionReason(code: string): string {
  return code.toLowerCase().split(/[^a-z0-9]+/).filter((p) => p !== "").map((p) =>
    p[0]!.toUpperCase() + p.slice(1)
  ).join("") || "Unknown";
}

/** The files of a succeeded run, relative to the volume's root, with their SHA-512 and size. */
function filesOf(run: Run, folder: string): PublishedFile[] {
  return run.tables.filter((t) => t.sha512 !== null).map((t) => ({
    path: `${folder}/${csvPayloadPath(run.dataset.schema_name, t.name)}`,
    bytes: t.bytes,
    sha512: t.sha512!,
  })).sort((a, b) => a.path < b.path ? -1 : 1);
}

function outcomeError(run: Run): { code?: string; detail?: string } {
  const body = run.outcome?.body as { payload?: { code?: string; detail?: string } } | undefined;
  return body?.payload ?? {};
}

function runFailedBy(run: Run, code: string): boolean {
  return outcomeError(run).code === code;
}

function outcomeDetail(run: Run): string {
  const { code, detail } = outcomeError(run);
  return code === undefined ? "no outcome recorded" : `${code}: ${detail ?? ""}`;
}
