/**
 * The bounded informer against the fake API (`tests/support/fake_kubernetes.ts`) and the real client:
 * it keeps seeing changes across quiet periods longer than its watches last, and after a watch is cut
 * off in the middle, which the client itself does not notice on Deno.
 */
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { startFakeKubernetes } from "../../tests/support/fake_kubernetes.ts";
import { boundedInformer } from "./bounded_informer.ts";
import { kubeApi } from "./kube_api.ts";

const NS = "ns";
const pods = { group: "", version: "v1", plural: "pods", namespace: NS };

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

Deno.test("boundedInformer: quiet periods and cut watches do not stop it", async () => {
  await using api = await startFakeKubernetes({ maxWatchSeconds: 30 });
  const { config, core } = kubeApi(api.kubeconfig(NS));
  const restarts: string[] = [];
  const bounded = boundedInformer<k8s.V1Pod>({
    config,
    path: `/api/v1/namespaces/${NS}/pods`,
    list: () => core.listNamespacedPod({ namespace: NS }),
    timeoutSeconds: 1,
    onRestart: (why) => restarts.push(why),
  });
  const seen: string[] = [];
  bounded.informer.on("add", (pod) => seen.push(pod.metadata!.name!));
  await bounded.start();
  try {
    api.put({ ...pods, name: "first" }, { metadata: {} });
    await until(() => seen.includes("first"), "the first pod");
    // Quiet for longer than a watch lasts: the server ends it, the informer watches again.
    await new Promise((r) => setTimeout(r, 2500));
    api.put({ ...pods, name: "after-quiet" }, { metadata: {} });
    await until(() => seen.includes("after-quiet"), "a pod after a quiet period");
    assert.equal(restarts.length, 0);
    // Cut off in the middle: the client does not notice; the watchdog replaces the watch.
    await until(() => api.openWatches === 1, "an open watch");
    api.cutWatches();
    api.put({ ...pods, name: "after-cut" }, { metadata: {} });
    await until(() => seen.includes("after-cut"), "a pod after a cut watch");
    assert.ok(restarts.includes("watch_stuck"), restarts.join(","));
    const watches = api.requests.filter((r) => r.watch);
    assert.ok(watches.length >= 3);
  } finally {
    await bounded.close();
  }
});
