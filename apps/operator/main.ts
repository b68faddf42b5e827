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
import { DataSourceOperator } from "./operator.ts";

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
  const api = kubeApiFromEnv(env);
  const namespace = config.WATCH_NAMESPACE ?? api.namespace;
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
  });
  log.info("operator_starting", { namespace, approvals: config.REQUIRED_APPROVAL_TYPES });
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
      await store.close();
    },
  };
}

if (import.meta.main) {
  await runService(createLogger("operator"), () => buildOperator(Deno.env.toObject()));
  Deno.exit(0);
}
