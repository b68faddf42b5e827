/**
 * The fake Kubernetes API, driven by the real `@kubernetes/client-node`: what the operator and the
 * Kubernetes run executor rely on behaves as a real API server does.
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { type KubeObject, startFakeKubernetes } from "./fake_kubernetes.ts";

const NS = "cr8tor";
const GROUP = "xlscsde.nhs.uk";
const crd = { group: GROUP, version: "v1", namespace: NS, plural: "analyticsworkspacedatasources" };
const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

function clients(kubeconfig: string) {
  const config = new k8s.KubeConfig();
  config.loadFromString(kubeconfig);
  return {
    config,
    custom: config.makeApiClient(k8s.CustomObjectsApi),
    batch: config.makeApiClient(k8s.BatchV1Api),
    core: config.makeApiClient(k8s.CoreV1Api),
  };
}

function resource(name: string, spec: KubeObject = { type: "Import" }): KubeObject {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: "AnalyticsWorkspaceDataSource",
    metadata: { name },
    spec,
  };
}

async function codeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
  } catch (e) {
    return (e as { code: number }).code;
  }
  return 200;
}

/** Waits until `check` holds, polling; fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("fake Kubernetes: create, get, 409 AlreadyExists, 404, generation and status subresource", async () => {
  await using api = await startFakeKubernetes();
  const { custom } = clients(api.kubeconfig(NS));
  const created = await custom.createNamespacedCustomObject({ ...crd, body: resource("a") });
  assert.equal(created.metadata.generation, 1);
  assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
  assert.equal(
    await codeOf(custom.createNamespacedCustomObject({ ...crd, body: resource("a") })),
    409,
  );
  assert.equal(await codeOf(custom.getNamespacedCustomObject({ ...crd, name: "b" })), 404);

  // A status write changes only the status; an object write keeps the status, and a changed spec
  // is a new generation.
  const withStatus = await custom.patchNamespacedCustomObjectStatus(
    { ...crd, name: "a", body: { status: { dataState: "Running" }, spec: { type: "Uploaded" } } },
    merge,
  );
  assert.deepEqual(withStatus.status, { dataState: "Running" });
  assert.equal(withStatus.spec.type, "Import");
  assert.equal(withStatus.metadata.generation, 1);
  const respecced = await custom.patchNamespacedCustomObject(
    { ...crd, name: "a", body: { spec: { type: "Uploaded" }, status: null } },
    merge,
  );
  assert.equal(respecced.metadata.generation, 2);
  assert.deepEqual(respecced.status, { dataState: "Running" });
  const relabelled = await custom.patchNamespacedCustomObject(
    { ...crd, name: "a", body: { metadata: { labels: { x: "y" } } } },
    merge,
  );
  assert.equal(relabelled.metadata.generation, 2);
  const jsonPatched = await custom.patchNamespacedCustomObject(
    { ...crd, name: "a", body: [{ op: "add", path: "/metadata/finalizers", value: ["f"] }] },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
  );
  assert.deepEqual(jsonPatched.metadata.finalizers, ["f"]);
});

Deno.test("fake Kubernetes: a stale resourceVersion in a replace or patch is 409 Conflict", async () => {
  await using api = await startFakeKubernetes();
  const { custom } = clients(api.kubeconfig(NS));
  const first = await custom.createNamespacedCustomObject({ ...crd, body: resource("a") });
  const stale = first.metadata.resourceVersion;
  await custom.patchNamespacedCustomObject(
    { ...crd, name: "a", body: { metadata: { labels: { n: "1" } } } },
    merge,
  );
  assert.equal(
    await codeOf(custom.replaceNamespacedCustomObject({ ...crd, name: "a", body: first })),
    409,
  );
  assert.equal(
    await codeOf(custom.patchNamespacedCustomObjectStatus(
      { ...crd, name: "a", body: { metadata: { resourceVersion: stale }, status: { x: 1 } } },
      merge,
    )),
    409,
  );
  const fresh = await custom.getNamespacedCustomObject({ ...crd, name: "a" });
  const replaced = await custom.replaceNamespacedCustomObject({
    ...crd,
    name: "a",
    body: { ...fresh, spec: { type: "Uploaded" } },
  });
  assert.equal(replaced.metadata.generation, 2);
});

Deno.test("fake Kubernetes: delete waits for finalizers; jobs, secrets and leases are served", async () => {
  await using api = await startFakeKubernetes();
  const { custom, batch, core } = clients(api.kubeconfig(NS));
  await custom.createNamespacedCustomObject({
    ...crd,
    body: { ...resource("a"), metadata: { name: "a", finalizers: ["cr8tor/cleanup"] } },
  });
  await custom.deleteNamespacedCustomObject({ ...crd, name: "a" });
  const deleting = await custom.getNamespacedCustomObject({ ...crd, name: "a" });
  assert.match(deleting.metadata.deletionTimestamp, /Z$/);
  await custom.patchNamespacedCustomObject(
    { ...crd, name: "a", body: { metadata: { finalizers: null } } },
    merge,
  );
  assert.equal(await codeOf(custom.getNamespacedCustomObject({ ...crd, name: "a" })), 404);

  const job = await batch.createNamespacedJob({
    namespace: NS,
    body: {
      metadata: { name: "j", labels: { app: "x" } },
      spec: {
        template: { spec: { containers: [{ name: "c", image: "i" }], restartPolicy: "Never" } },
      },
    },
  });
  assert.equal(job.metadata?.name, "j");
  const listed = await batch.listNamespacedJob({ namespace: NS, labelSelector: "app=x" });
  assert.equal(listed.items.length, 1);
  assert.equal(
    (await batch.listNamespacedJob({ namespace: NS, labelSelector: "app=y" })).items.length,
    0,
  );
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: "s" }, stringData: { k: "v" } },
  });
  assert.equal((await core.readNamespacedSecret({ name: "s", namespace: NS })).stringData?.k, "v");
  const coordination = clients(api.kubeconfig(NS)).config.makeApiClient(k8s.CoordinationV1Api);
  await coordination.createNamespacedLease({
    namespace: NS,
    body: { metadata: { name: "l" }, spec: { holderIdentity: "me" } },
  });
  assert.equal(
    (await coordination.readNamespacedLease({ name: "l", namespace: NS })).spec?.holderIdentity,
    "me",
  );
  await batch.deleteNamespacedJob({ name: "j", namespace: NS });
  assert.equal(await codeOf(batch.readNamespacedJob({ name: "j", namespace: NS })), 404);
});

Deno.test("fake Kubernetes: cutting a watch breaks its connection in the middle of the body", async () => {
  await using api = await startFakeKubernetes();
  const response = await fetch(`${api.url}/api/v1/namespaces/${NS}/pods?watch=true`);
  assert.equal(response.status, 200);
  await until(() => api.openWatches === 1, "the watch");
  const reading = (async () => {
    for await (const _ of response.body!) { /* nothing is sent */ }
  })();
  api.cutWatches();
  await assert.rejects(reading, /error reading a body/);
  assert.equal(api.openWatches, 0);
});

Deno.test("fake Kubernetes: an informer lists, watches, re-watches after timeouts, and re-lists after 410 Gone", async () => {
  await using api = await startFakeKubernetes({ maxWatchSeconds: 1 });
  const { config, custom } = clients(api.kubeconfig(NS));
  const path = `/apis/${GROUP}/v1/namespaces/${NS}/analyticsworkspacedatasources`;
  const informer = k8s.makeInformer<KubeObject & k8s.KubernetesObject>(
    config,
    path,
    () => custom.listNamespacedCustomObject({ ...crd }),
  );
  const seen: string[] = [];
  const deleted: string[] = [];
  let errors = 0;
  informer.on("add", (o) => seen.push(`add ${o.metadata?.name}`));
  informer.on(
    "update",
    (o) => seen.push(`update ${o.metadata?.name} ${o.metadata?.labels?.n ?? ""}`),
  );
  informer.on("delete", (o) => deleted.push(o.metadata!.name!));
  informer.on("error", () => errors++);
  await custom.createNamespacedCustomObject({ ...crd, body: resource("before") });
  await informer.start();
  try {
    await until(() => seen.includes("add before"), "the listed object");
    await custom.createNamespacedCustomObject({ ...crd, body: resource("live") });
    await until(() => seen.includes("add live"), "a watched object");
    // The server closes the watch after a second: the informer watches again from where it was.
    await new Promise((r) => setTimeout(r, 1500));
    await custom.patchNamespacedCustomObject(
      { ...crd, name: "live", body: { metadata: { labels: { n: "1" } } } },
      merge,
    );
    await until(() => seen.includes("update live 1"), "an update after a watch timeout");
    // History gone while the informer was behind: its next watch gets 410, it lists again and goes on.
    const lists = () => api.requests.filter((r) => r.path === path && !r.watch).length;
    const listed = lists();
    api.compact();
    api.put({ ...crd, namespace: "elsewhere", name: "x" }, resource("x"));
    api.compact();
    await until(() => lists() > listed, "a re-list after 410 Gone", 5000);
    await custom.deleteNamespacedCustomObject({ ...crd, name: "before" });
    await until(() => deleted.includes("before"), "a deletion watched after the re-list");
    assert.equal(errors, 0);
  } finally {
    await informer.stop();
  }
});
