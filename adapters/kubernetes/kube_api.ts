/**
 * The Kubernetes API clients the operator and the Kubernetes run executor use, from one kubeconfig: in a
 * pod the service account's (`loadFromCluster`), else `KUBECONFIG` or `~/.kube/config`, or a kubeconfig
 * text (tests). Also the small helpers every caller needs: the status code of a failed call, merge
 * patches, and "already exists" / "not found" as values rather than errors.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";

/** The API clients of one kubeconfig. */
export interface KubeApi {
  readonly config: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly batch: k8s.BatchV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly coordination: k8s.CoordinationV1Api;
  /** The namespace of the kubeconfig's current context (`default` when it names none). */
  readonly namespace: string;
}

/**
 * Where to find the cluster: a kubeconfig's text, a kubeconfig file (`KUBECONFIG` as the caller's
 * environment names it), or else the process's (in a pod the service account's).
 */
export function kubeApi(kubeconfig?: string | { readonly file: string }): KubeApi {
  const config = new k8s.KubeConfig();
  if (typeof kubeconfig === "string") config.loadFromString(kubeconfig);
  else if (kubeconfig !== undefined) config.loadFromFile(kubeconfig.file);
  else config.loadFromDefault();
  const context = config.getContextObject(config.getCurrentContext());
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    batch: config.makeApiClient(k8s.BatchV1Api),
    custom: config.makeApiClient(k8s.CustomObjectsApi),
    coordination: config.makeApiClient(k8s.CoordinationV1Api),
    namespace: context?.namespace ?? "default",
  };
}

/** Sends a patch as a JSON merge patch (RFC 7386). */
export const MERGE_PATCH = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** The HTTP status of a failed API call (`undefined` for a network error). */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Runs a create; an object that already exists is `false`, a new one `true`. */
export async function createIfAbsent(create: () => Promise<unknown>): Promise<boolean> {
  try {
    await create();
    return true;
  } catch (e) {
    if (statusOf(e) === 409) return false;
    throw e;
  }
}

/** Runs a read or delete; an object that does not exist is `undefined`. */
export async function unlessMissing<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw e;
  }
}
