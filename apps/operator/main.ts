/**
 * Composition root of the AnalyticsWorkspaceDataSource operator (`deno task start:operator`,
 * `docs/operator.md`): reads the environment, opens the shared run store, builds the Kubernetes clients
 * and the Job executor, and serves `/health` and `/ready` while the operator runs.
 *
 * @module
 */
import { z } from "zod";
import {
  KubernetesRunExecutor,
  readJobTemplate,
} from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { DEFAULT_REQUIRED_APPROVAL_TYPES } from "../../domain/workspace_datasource.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { CommonEnv, parseEnv, portFrom, readAllowedSources, SourceEnv } from "../_shared/config.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { serviceSecretsFromEnv } from "../_shared/secret_store_from_env.ts";
import { listenOptionsFrom, type RunnableService, runService } from "../_shared/serve.ts";
import { runStoreFromEnv } from "../_shared/run_store_from_env.ts";
import { kubeApiFromEnv, RunExecutorEnv } from "../publish/run_executor_from_env.ts";
import { DataSourceOperator, type OperatorOptions } from "./operator.ts";
import { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";
import type { KubeApi } from "../../adapters/kubernetes/kube_api.ts";
import { RemoteRuns } from "../../application/remote_runs.ts";
import { Runner } from "../../application/runs.ts";
import type { RunStore } from "../../ports/run_store.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import { readApprovalPolicy } from "../_shared/approval_policy_file.ts";
import { httpSourceSchedulerOf } from "../_shared/http_source_scheduler.ts";
import type { Logger } from "../_shared/log.ts";
import { uploadDestinations } from "../approval/uploads_from_env.ts";
import { httpSourcesFromEnv } from "../publish/http_sources_from_env.ts";

/** The operator's environment variables. */
export const OperatorEnv = CommonEnv.pick({
  SECRETS_PROVIDER: true,
  SECRETS_MNT_PATH: true,
  SHUTDOWN_GRACE_SECONDS: true,
  BIND_ADDRESS: true,
}).extend(SourceEnv.pick({ ALLOWED_SOURCES_FILE: true }).shape).extend(
  RunExecutorEnv.pick({ RUN_JOB_TEMPLATE_FILE: true }).shape,
).extend({
  /** The namespace whose resources are watched (and where Jobs and volumes go); default the pod's. */
  WATCH_NAMESPACE: z.string().min(1).optional(),
  /** Approval types an Import needs, comma-separated. */
  REQUIRED_APPROVAL_TYPES: z.string().default(DEFAULT_REQUIRED_APPROVAL_TYPES.join(",")).transform(
    (v) => v.split(",").map((t) => t.trim()).filter((t) => t !== ""),
  ).refine((types) => types.length > 0, { error: "must name at least one approval type" }),
  /** The storage class of the data volumes. */
  DATA_STORAGE_CLASS: z.string().min(1).default("jupyter-default"),
  /** The size each data volume requests. */
  DATA_VOLUME_SIZE: z.string().regex(/^[0-9]+(Ki|Mi|Gi|Ti)?$/).default("10Gi"),
  /** This replica's name in the Lease (the pod name, from the downward API); default a random one. */
  POD_NAME: z.string().min(1).optional(),
  /** The Lease the replicas elect their leader with. */
  LEADER_ELECTION_LEASE_NAME: z.string().min(1).default("cr8tor-operator"),
  LEADER_ELECTION_LEASE_SECONDS: z.coerce.number<unknown>().int().min(2).max(300).default(15),
  /** Every resource is reconciled again this often (missed watch events only delay). */
  OPERATOR_RESYNC_SECONDS: z.coerce.number<unknown>().min(0.2).max(3600).default(60),
  /** `Uploaded` resources: the approval service's quarantine folder, mounted here too. */
  UPLOAD_QUARANTINE_PATH: z.string().min(1).optional(),
  /** The approval policy (its filestore destinations are where uploads may go). */
  APPROVAL_POLICY_FILE: z.string().min(1).optional(),
  /** The Job template of scheduled HTTP-file source runs; default the built-in one. */
  HTTP_SOURCE_JOB_TEMPLATE_FILE: z.string().min(1).optional(),
  /** The namespace of those Jobs (where the publish service's filestores are); default the watched. */
  HTTP_SOURCE_JOB_NAMESPACE: z.string().min(1).optional(),
});

/** Builds the operator from an environment, started; `close` stops it. */
export async function buildOperator(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): Promise<RunnableService & { readonly operator: DataSourceOperator }> {
  const log = createLogger("operator", logSink);
  const config = parseEnv(OperatorEnv, env);
  if ((env.RUN_STORE ?? "sqlite") !== "postgresql") {
    throw new ConfigError(
      "Cannot start: the operator needs RUN_STORE=postgresql, the run store its Jobs read runs from",
    );
  }
  // Checked before anything is opened: nothing to close when the settings do not fit together.
  const uploads = await uploadsOf(config, log);
  httpSourceSchedulerOf(env);
  const secrets = await serviceSecretsFromEnv(env, { log });
  const store = await runStoreFromEnv(env, secrets.store, log);
  let template;
  try {
    template = config.RUN_JOB_TEMPLATE_FILE === undefined
      ? undefined
      : await readJobTemplate(config.RUN_JOB_TEMPLATE_FILE);
  } catch (e) {
    await store.close();
    throw new ConfigError(`Cannot start: RUN_JOB_TEMPLATE_FILE: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const api = await kubeApiFromEnv(env);
  const namespace = config.WATCH_NAMESPACE ?? api.namespace;
  const closing: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async () => {
    for (const close of closing.reverse()) await close().catch(() => {});
  };
  let schedule;
  try {
    schedule = await scheduleOf(env, config, {
      api,
      namespace,
      store,
      secrets: secrets.store,
      log,
    });
    if (schedule !== undefined) closing.push(schedule.close);
  } catch (e) {
    await closeAll();
    throw e;
  }
  const executor = new KubernetesRunExecutor({
    api,
    namespace,
    ...(template === undefined ? {} : { template }),
  });
  const operator = new DataSourceOperator({
    api,
    namespace,
    store,
    executor,
    policy: {
      requiredApprovalTypes: config.REQUIRED_APPROVAL_TYPES,
      allowedSources: readAllowedSources(config.ALLOWED_SOURCES_FILE, log),
    },
    storageClass: config.DATA_STORAGE_CLASS,
    volumeSize: config.DATA_VOLUME_SIZE,
    identity: config.POD_NAME ?? `cr8tor-operator-${crypto.randomUUID()}`,
    leaseName: config.LEADER_ELECTION_LEASE_NAME,
    leaseSeconds: config.LEADER_ELECTION_LEASE_SECONDS,
    resyncMs: config.OPERATOR_RESYNC_SECONDS * 1000,
    outcomeOfError: (error) => errorOutcome(error, { detailPrefix: "Operator: " }),
    log,
    ...(uploads === undefined ? {} : { uploads }),
    ...(schedule === undefined ? {} : { schedule }),
  });
  log.info("operator_starting", {
    namespace,
    approvals: config.REQUIRED_APPROVAL_TYPES,
    uploads: uploads !== undefined,
    schedules: schedule !== undefined,
  });
  await operator.start();
  return {
    operator,
    fetch: (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/health") return Response.json({ status: "ok" });
      if (path === "/ready") {
        return Response.json(
          { status: operator.started ? "ready" : "stopped", leader: operator.leader },
          { status: operator.started ? 200 : 503 },
        );
      }
      return Response.json({ status: "not found" }, { status: 404 });
    },
    ...listenOptionsFrom(
      { ...parseEnv(CommonEnv, env), BIND_ADDRESS: config.BIND_ADDRESS },
      portFrom(env, 8004),
    ),
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    close: async () => {
      await operator.stop();
      await closeAll();
    },
  };
}

/**
 * `Uploaded` resources' settings: off without `UPLOAD_QUARANTINE_PATH`; with it, the approval policy
 * names the destinations (the dashboard's rule, `uploadDestinations`).
 *
 * @throws {ConfigError} when the quarantine is set without a policy, or cannot be opened.
 */
async function uploadsOf(
  config: z.infer<typeof OperatorEnv>,
  log: Logger,
): Promise<OperatorOptions["uploads"]> {
  if (config.UPLOAD_QUARANTINE_PATH === undefined) return undefined;
  const policy = readApprovalPolicy(config.APPROVAL_POLICY_FILE, log);
  if (policy === null) {
    throw new ConfigError(
      "Cannot start: UPLOAD_QUARANTINE_PATH is set but APPROVAL_POLICY_FILE is not: uploaded data " +
        "sources go to the policy's destinations through its gates",
    );
  }
  let sources;
  try {
    sources = await UploadQuarantine.open(config.UPLOAD_QUARANTINE_PATH);
  } catch (e) {
    throw new ConfigError(
      `Cannot start: UPLOAD_QUARANTINE_PATH cannot be made owner-only: ${(e as Error).message}`,
    );
  }
  return { sources, policy: { destinations: uploadDestinations(policy) } };
}

/**
 * The HTTP-file sources' schedule when the operator runs it (`httpSourceSchedulerOf` says `operator`
 * and `HTTP_FILE_SOURCES_FILE` is set): the sources as the publish service reads them, and a runner
 * that stores each scheduled run and dispatches it as a Job (`publish run <id>`), followed until it
 * stops.
 */
async function scheduleOf(
  env: Record<string, string | undefined>,
  config: z.infer<typeof OperatorEnv>,
  deps: {
    readonly api: KubeApi;
    readonly namespace: string;
    readonly store: RunStore;
    readonly secrets: SecretStore;
    readonly log: Logger;
  },
): Promise<(NonNullable<OperatorOptions["schedule"]> & { close(): Promise<void> }) | undefined> {
  if (httpSourceSchedulerOf(env) !== "operator") return undefined;
  const configured = await httpSourcesFromEnv(env, deps.secrets, deps.log);
  if (configured === undefined) return undefined;
  // The same rule as the publish service's (`configured.scheduler`): here it says `operator`.
  let template;
  try {
    template = config.HTTP_SOURCE_JOB_TEMPLATE_FILE === undefined
      ? undefined
      : await readJobTemplate(config.HTTP_SOURCE_JOB_TEMPLATE_FILE);
  } catch (e) {
    await configured.close();
    throw new ConfigError(`Cannot start: HTTP_SOURCE_JOB_TEMPLATE_FILE: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const outcomeOfError = (error: unknown) => errorOutcome(error, { detailPrefix: "Operator: " });
  const remote = new RemoteRuns({
    executor: new KubernetesRunExecutor({
      api: deps.api,
      namespace: config.HTTP_SOURCE_JOB_NAMESPACE ?? deps.namespace,
      ...(template === undefined ? {} : { template }),
    }),
    store: deps.store,
    outcomeOfError,
    log: deps.log,
  });
  const runner = new Runner({
    store: deps.store,
    workOf: () => {
      throw new Error("the operator executes no run itself: each is dispatched as a Job");
    },
    outcomeOfError,
    log: deps.log,
    dispatch: (run) => remote.dispatch(run),
  });
  return {
    sources: configured.sources,
    runner,
    close: async () => {
      remote.close();
      await runner.close();
      await configured.close();
    },
  };
}

if (import.meta.main) {
  await runService(createLogger("operator"), () => buildOperator(Deno.env.toObject()));
  Deno.exit(0);
}
