/**
 * Runs as Kubernetes Jobs (`RUN_EXECUTOR=kubernetes`, `docs/operator.md`): each run is a `batch/v1` Job
 * whose one container runs the publish binary's one-run mode (`run <id>`): it reads the run from the
 * shared PostgreSQL run store, executes it, writes its progress there and exits.
 *
 * The Job is built from a template (a Job manifest, `RUN_JOB_TEMPLATE_FILE`, JSON or YAML) that carries
 * what a cluster decides: image, command, environment, secret and config mounts, security context,
 * requests and limits, `backoffLimit`, `activeDeadlineSeconds`, `ttlSecondsAfterFinished`. The executor
 * adds the name, labels, the run id as arguments and, when asked, the data volume. Without a template
 * {@link defaultJobTemplate} applies the Deployments' hardening.
 *
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { parse } from "yaml";
import type { ExecutionState, RunExecutor, RunLaunch } from "../../ports/run_executor.ts";
import { createIfAbsent, type KubeApi, unlessMissing } from "./kube_api.ts";

/** The label every Job of this executor has, with the run id as its value. */
export const RUN_ID_LABEL = "cr8tor.io/run-id";

/** What the executor needs besides the API. */
export interface KubernetesRunExecutorOptions {
  readonly api: KubeApi;
  /** Where Jobs are created; default the API's namespace. */
  readonly namespace?: string;
  /** The Job template; default {@link defaultJobTemplate}. */
  readonly template?: k8s.V1Job;
  /** Where a launch's data volume is mounted (its filestore path). Default `/data/run`. */
  readonly dataMountPath?: string;
}

/**
 * The default Job: the publish image in one-run mode with the Deployments' security context (non-root
 * uid 1993, no privilege escalation, read-only root filesystem, all capabilities dropped, the runtime's
 * seccomp profile), requests and limits, one retry, a 6-hour deadline and a 1-hour TTL after it ends.
 */
export function defaultJobTemplate(): k8s.V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { labels: { "app.kubernetes.io/name": "cr8tor-run" } },
    spec: {
      backoffLimit: 1,
      activeDeadlineSeconds: 21_600,
      ttlSecondsAfterFinished: 3_600,
      template: {
        metadata: { labels: { "app.kubernetes.io/name": "cr8tor-run" } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1993,
            runAsGroup: 1993,
            fsGroup: 1993,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [{
            name: "run",
            image: "cr8tor-publish",
            workingDir: "/app",
            command: [
              "deno",
              "run",
              "--cached-only",
              "--frozen",
              "--allow-env",
              "--allow-read",
              "--allow-write",
              "--allow-net",
              "--allow-sys",
              "--allow-ffi",
              // The publish service's V8 flags (its start task's, docs/benchmarks.md).
              "--v8-flags=--max-old-space-size=256,--max-semi-space-size=8,--initial-old-space-size=48,--no-concurrent-array-buffer-sweeping",
              "apps/publish/main.ts",
            ],
            resources: {
              requests: { cpu: "500m", memory: "512Mi" },
              limits: { cpu: "2", memory: "1Gi" },
            },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              runAsNonRoot: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
          }],
          volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }],
        },
      },
    },
  };
}

/** Reads a Job template file (JSON or YAML). @throws {Error} when it is not a Job with a container. */
export async function readJobTemplate(path: string): Promise<k8s.V1Job> {
  const template = parse(await Deno.readTextFile(path)) as k8s.V1Job;
  if (template?.kind !== "Job" || (template.spec?.template?.spec?.containers ?? []).length === 0) {
    throw new Error(`${path} is not a Job manifest with a container`);
  }
  return template;
}

/**
 * The Job name of a run launched without a name: `cr8tor-run-`, the run id and the version it was
 * queued at, as a DNS label. A resumed run is queued again at a later version, so it gets a new Job
 * rather than finding its first, failed one.
 */
export function jobNameOf(runId: string, version: number): string {
  const id = runId.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40);
  return `cr8tor-run-${id}-v${version}`.replace(/-+/g, "-");
}

/** Kubernetes Jobs as a {@link RunExecutor}. */
export class KubernetesRunExecutor implements RunExecutor {
  readonly #api: KubeApi;
  readonly #namespace: string;
  readonly #template: k8s.V1Job;
  readonly #dataMountPath: string;

  /** See {@link KubernetesRunExecutorOptions}. */
  constructor(options: KubernetesRunExecutorOptions) {
    this.#api = options.api;
    this.#namespace = options.namespace ?? options.api.namespace;
    this.#template = options.template ?? defaultJobTemplate();
    this.#dataMountPath = options.dataMountPath ?? "/data/run";
  }

  /** The Job a launch creates (exposed so the manifest it sends can be checked). */
  jobOf(launch: RunLaunch): k8s.V1Job {
    const { run } = launch;
    const name = launch.name ?? jobNameOf(run.id, run.version);
    const job = structuredClone(this.#template);
    const labels = {
      ...job.metadata?.labels,
      ...launch.labels,
      [RUN_ID_LABEL]: labelValue(run.id),
    };
    job.metadata = { ...job.metadata, name, namespace: this.#namespace, labels };
    const spec = job.spec!;
    const pod = spec.template;
    pod.metadata = { ...pod.metadata, labels: { ...pod.metadata?.labels, ...labels } };
    const podSpec = pod.spec!;
    podSpec.restartPolicy = "Never";
    const container = podSpec.containers[0]!;
    container.args = ["run", run.id];
    const env = new Map((container.env ?? []).map((e) => [e.name, e]));
    for (const [key, value] of Object.entries(launch.env ?? {})) env.set(key, { name: key, value });
    if (launch.volumeClaim !== undefined) {
      const mountVar = `TARGET_STORAGE_ACCOUNT_${run.destination.name.toUpperCase()}_SDE_MNT_PATH`;
      env.set(mountVar, { name: mountVar, value: this.#dataMountPath });
      podSpec.volumes = [
        ...(podSpec.volumes ?? []).filter((v) => v.name !== "run-data"),
        { name: "run-data", persistentVolumeClaim: { claimName: launch.volumeClaim } },
      ];
      // A filestore is a staging and a production folder under its path: one volume, two sub-paths.
      // They are made first by an init container as the pod's user: sub-path folders the kubelet
      // creates itself belong to root, and the non-root run could not write them.
      podSpec.initContainers = [
        ...(podSpec.initContainers ?? []).filter((c) => c.name !== "prepare-volume"),
        {
          name: "prepare-volume",
          image: container.image!,
          command: ["mkdir", "-p", "/volume/staging", "/volume/production"],
          ...(container.securityContext === undefined
            ? {}
            : { securityContext: container.securityContext }),
          ...(container.resources === undefined ? {} : { resources: container.resources }),
          volumeMounts: [{ name: "run-data", mountPath: "/volume" }],
        },
      ];
      container.volumeMounts = [
        ...(container.volumeMounts ?? []).filter((m) => m.name !== "run-data"),
        ...["staging", "production"].map((subPath) => ({
          name: "run-data",
          mountPath: `${this.#dataMountPath}/${subPath}`,
          subPath,
        })),
      ];
    }
    container.env = [...env.values()];
    return job;
  }

  /** Creates the Job; an existing Job of that name is the same execution (`created: false`). */
  async launch(launch: RunLaunch): Promise<{ name: string; created: boolean }> {
    const job = this.jobOf(launch);
    const created = await createIfAbsent(() =>
      this.#api.batch.createNamespacedJob({ namespace: this.#namespace, body: job })
    );
    return { name: job.metadata!.name!, created };
  }

  /**
   * The Job's state: its `Complete` or `Failed` condition; a failure's reason is its pod's (a container's
   * termination reason and message, or the pod's own, such as `Evicted`), else the Job's
   * (`BackoffLimitExceeded`, `DeadlineExceeded`).
   */
  async state(name: string): Promise<ExecutionState> {
    const job = await unlessMissing(() =>
      this.#api.batch.readNamespacedJob({ name, namespace: this.#namespace })
    );
    if (job === undefined) return { state: "missing" };
    const conditions = job.status?.conditions ?? [];
    if (conditions.some((c) => c.type === "Complete" && c.status === "True")) {
      return { state: "succeeded" };
    }
    const failed = conditions.find((c) => c.type === "Failed" && c.status === "True");
    if (failed === undefined) return { state: "running" };
    const pod = await this.#podFailure(name);
    return {
      state: "failed",
      reason: pod?.reason ?? failed.reason ?? "JobFailed",
      message: pod?.message ?? failed.message ?? "the Job failed",
    };
  }

  async #podFailure(job: string): Promise<{ reason: string; message: string } | undefined> {
    const pods = await this.#api.core.listNamespacedPod({
      namespace: this.#namespace,
      labelSelector: `job-name=${job}`,
    });
    const newest = pods.items.sort((a, b) =>
      String(b.metadata?.creationTimestamp ?? "").localeCompare(
        String(a.metadata?.creationTimestamp ?? ""),
      )
    );
    for (const pod of newest) {
      for (const status of pod.status?.containerStatuses ?? []) {
        const ended = status.state?.terminated;
        if (ended !== undefined && ended.exitCode !== 0) {
          return {
            reason: ended.reason ?? "Error",
            message: `container ${status.name} exited with code ${ended.exitCode}` +
              (ended.message ? `: ${ended.message}` : ""),
          };
        }
      }
      if (pod.status?.reason !== undefined) {
        return { reason: pod.status.reason, message: pod.status.message ?? pod.status.reason };
      }
    }
    return undefined;
  }

  /** Deletes the Job and its pods (background propagation); a missing Job is fine. */
  async remove(name: string): Promise<void> {
    await unlessMissing(() =>
      this.#api.batch.deleteNamespacedJob({
        name,
        namespace: this.#namespace,
        propagationPolicy: "Background",
      })
    );
  }
}

/** A label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric. */
function labelValue(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 63).replace(
    /^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g,
    "",
  );
}
