/**
 * Where the publish service executes its runs (`RUN_EXECUTOR`): in this process (`in-process`, the
 * default) or as Kubernetes Jobs (`kubernetes`, `docs/operator.md`), each running this binary's
 * one-run mode against the shared PostgreSQL run store.
 *
 * @module
 */
import { z } from "zod";
import type { KubeApi } from "../../adapters/kubernetes/kube_api.ts";
import { RemoteRuns } from "../../application/remote_runs.ts";
import type { RunStore } from "../../ports/run_store.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { parseEnv } from "../_shared/config.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import type { Logger } from "../_shared/log.ts";

/** The variables of the run executor. */
export const RunExecutorEnv = z.object({
  RUN_EXECUTOR: z.enum(["in-process", "kubernetes"]).default("in-process"),
  /** A Job manifest (JSON or YAML) every run's Job is built from; default: the built-in one. */
  RUN_JOB_TEMPLATE_FILE: z.string().min(1).optional(),
  /** The namespace Jobs are created in; default the service account's. */
  RUN_JOB_NAMESPACE: z.string().min(1).optional(),
});

/**
 * The Kubernetes API: from the kubeconfig file `KUBECONFIG` names, else in-cluster. The client is loaded
 * here, on first use: it is the largest module of the publish service (about 33 MB of V8 heap and 80 MB
 * of resident memory), which runs without it unless `RUN_EXECUTOR=kubernetes`.
 */
export async function kubeApiFromEnv(env: Record<string, string | undefined>): Promise<KubeApi> {
  const { kubeApi } = await import("../../adapters/kubernetes/kube_api.ts");
  const file = env.KUBECONFIG ?? "";
  return kubeApi(file === "" ? undefined : { file });
}

/**
 * The remote runs of `RUN_EXECUTOR=kubernetes`, or `undefined` for in-process execution.
 *
 * @throws {ConfigError} when Jobs are asked for without the shared PostgreSQL run store (a Job could not
 *   read its run), or the template cannot be read.
 */
export async function remoteRunsFromEnv(
  env: Record<string, string | undefined>,
  store: RunStore,
  log: Logger,
  options: { readonly detailPrefix: string },
): Promise<RemoteRuns | undefined> {
  const config = parseEnv(RunExecutorEnv, env);
  if (config.RUN_EXECUTOR === "in-process") return undefined;
  if ((env.RUN_STORE ?? "sqlite") !== "postgresql") {
    throw new ConfigError(
      "Cannot start: RUN_EXECUTOR=kubernetes needs RUN_STORE=postgresql, the store its Jobs read runs from",
    );
  }
  const { KubernetesRunExecutor, readJobTemplate } = await import(
    "../../adapters/kubernetes/kubernetes_run_executor.ts"
  );
  let template;
  try {
    template = config.RUN_JOB_TEMPLATE_FILE === undefined
      ? undefined
      : await readJobTemplate(config.RUN_JOB_TEMPLATE_FILE);
  } catch (e) {
    throw new ConfigError(`Cannot start: RUN_JOB_TEMPLATE_FILE: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const executor = new KubernetesRunExecutor({
    api: await kubeApiFromEnv(env),
    ...(config.RUN_JOB_NAMESPACE === undefined ? {} : { namespace: config.RUN_JOB_NAMESPACE }),
    ...(template === undefined ? {} : { template }),
  });
  log.info("run_executor", { executor: "kubernetes" });
  return new RemoteRuns({
    executor,
    store,
    outcomeOfError: (error) => errorOutcome(error, { detailPrefix: options.detailPrefix }),
    log,
  });
}
