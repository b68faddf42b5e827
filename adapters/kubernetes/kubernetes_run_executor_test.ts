/**
 * The Kubernetes run executor against the fake API (`tests/support/fake_kubernetes.ts`) with the real
 * client: the Job it builds, a repeated launch, and the states it reads from Jobs and their pods.
 */
import assert from "node:assert/strict";
import { newRun } from "../../domain/run.ts";
import { startFakeKubernetes } from "../../tests/support/fake_kubernetes.ts";
import { kubeApi } from "./kube_api.ts";
import { jobNameOf, KubernetesRunExecutor, RUN_ID_LABEL } from "./kubernetes_run_executor.ts";

const NS = "cr8tor";
const run = newRun({
  action: "package",
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  dataset: { source_host: "db", source_engine: "postgresql", schema_name: "s", tables: null },
  destination: { type: "filestore", name: "lsc", format: "csv" },
  caller_key_id: "k",
}, "2025-06-11T09:30:00.000Z");
const jobs = { group: "batch", version: "v1", plural: "jobs", namespace: NS };

Deno.test("KubernetesRunExecutor: the Job runs `run <id>` hardened, with the data volume and env", () => {
  const executor = new KubernetesRunExecutor({ api: kubeApi(undefinedConfig()), namespace: NS });
  const job = executor.jobOf({
    run,
    volumeClaim: "claim",
    labels: { a: "b" },
    env: { RUN_CRATE: "{}" },
  });
  assert.equal(job.metadata!.name, jobNameOf(run.id, 1));
  assert.match(job.metadata!.name!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(job.metadata!.name!.length <= 63);
  assert.equal(job.metadata!.labels![RUN_ID_LABEL], run.id);
  assert.equal(job.spec!.template.metadata!.labels!.a, "b");
  const pod = job.spec!.template.spec!;
  const container = pod.containers[0]!;
  assert.deepEqual(container.args, ["run", run.id]);
  assert.equal(pod.restartPolicy, "Never");
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
  const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value]));
  assert.equal(env.TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH, "/data/run");
  assert.equal(env.RUN_CRATE, "{}");
  assert.deepEqual(
    container.volumeMounts!.filter((m) => m.name === "run-data").map((
      m,
    ) => [m.mountPath, m.subPath]),
    [["/data/run/staging", "staging"], ["/data/run/production", "production"]],
  );
  const [prepare] = pod.initContainers!;
  assert.deepEqual(prepare!.command, ["mkdir", "-p", "/volume/staging", "/volume/production"]);
  assert.deepEqual(prepare!.volumeMounts, [{ name: "run-data", mountPath: "/volume" }]);
  assert.equal(prepare!.image, container.image);
  assert.equal(prepare!.securityContext!.runAsNonRoot, true);
  // A run queued again (resumed) at a later version gets a Job of its own.
  assert.notEqual(jobNameOf(run.id, 5), jobNameOf(run.id, 1));
});

/** A kubeconfig pointing nowhere (jobOf makes no call). */
function undefinedConfig(): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]",
    "users: [{name: u, user: {token: t}}]",
    "contexts: [{name: x, context: {cluster: c, user: u, namespace: cr8tor}}]",
    "current-context: x",
  ].join("\n");
}

Deno.test("KubernetesRunExecutor: a repeated launch finds the Job; states come from the Job and its pods", async () => {
  await using api = await startFakeKubernetes();
  const executor = new KubernetesRunExecutor({ api: kubeApi(api.kubeconfig(NS)) });
  const first = await executor.launch({ run, name: "j" });
  assert.deepEqual(first, { name: "j", created: true });
  assert.deepEqual(await executor.launch({ run, name: "j" }), { name: "j", created: false });
  assert.equal(api.list(jobs).length, 1);
  assert.deepEqual(await executor.state("j"), { state: "running" });
  assert.deepEqual(await executor.state("absent"), { state: "missing" });

  const job = api.get({ ...jobs, name: "j" })!;
  api.put({ ...jobs, name: "j" }, {
    ...job,
    status: {
      conditions: [{
        type: "Failed",
        status: "True",
        reason: "DeadlineExceeded",
        message: "too long",
      }],
    },
  });
  // No pod to ask: the Job's own reason.
  assert.deepEqual(await executor.state("j"), {
    state: "failed",
    reason: "DeadlineExceeded",
    message: "too long",
  });
  api.put({ group: "", version: "v1", plural: "pods", namespace: NS, name: "j-1" }, {
    metadata: { labels: { "job-name": "j" } },
    status: { reason: "Evicted", message: "The node was low on resource: memory." },
  });
  assert.deepEqual(await executor.state("j"), {
    state: "failed",
    reason: "Evicted",
    message: "The node was low on resource: memory.",
  });
  api.put({ ...jobs, name: "j" }, {
    ...job,
    status: { conditions: [{ type: "Complete", status: "True" }] },
  });
  assert.deepEqual(await executor.state("j"), { state: "succeeded" });
  await executor.remove("j");
  await executor.remove("j");
  assert.deepEqual(await executor.state("j"), { state: "missing" });
});
