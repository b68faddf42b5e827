/**
 * The operator against the fake Kubernetes API (`tests/support/fake_kubernetes.ts`), driven by the real
 * `@kubernetes/client-node`, with an in-memory run store and a stand-in kubelet that executes each Job's
 * run in process through the real `Runner.runOnce` (work that reports tables with their SHA-512).
 * `tests/e2e/operator_test.ts` runs the Job's real one-run process against PostgreSQL instead.
 */
import assert from "node:assert/strict";
import { kubeApi } from "../../adapters/kubernetes/kube_api.ts";
import { KubernetesRunExecutor } from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import { Runner } from "../../application/runs.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import {
  DATASOURCE_API,
  DATASOURCE_FINALIZER,
  DEFAULT_REQUIRED_APPROVAL_TYPES,
} from "../../domain/workspace_datasource.ts";
import {
  type FakeKubernetes,
  type KubeObject,
  startFakeKubernetes,
} from "../../tests/support/fake_kubernetes.ts";
import {
  type ContainerEnd,
  type FakeKubelet,
  startFakeKubelet,
} from "../../tests/support/fake_kubelet.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import { createLogger } from "../_shared/log.ts";
import { DataSourceOperator } from "./operator.ts";

const NS = "jupyterhub";
const crd = {
  group: DATASOURCE_API.group,
  version: "v1",
  plural: DATASOURCE_API.plural,
  namespace: NS,
};
const jobsOf = (api: FakeKubernetes) =>
  api.list({ group: "batch", version: "v1", plural: "jobs", namespace: NS });
const claimsOf = (api: FakeKubernetes) =>
  api.list({ group: "", version: "v1", plural: "persistentvolumeclaims", namespace: NS });

const allowed = new AllowedSources([{
  type: "postgresql",
  host: "db.internal",
  port: 5432,
  database: "research",
  credentials: [{ username: "pguser", password: "pgpassword" }],
}]);

/** An approved Import resource, with `spec` fields replaced as given. */
function dataSource(name: string, spec: KubeObject = {}): KubeObject {
  return {
    apiVersion: "xlscsde.nhs.uk/v1",
    kind: "AnalyticsWorkspaceDataSource",
    metadata: { name, labels: { "xlscsde.nhs.uk/type": "import" } },
    spec: {
      type: "Import",
      publisher: {
        organisation: "NHS Greater Manchester ICB",
        contact: { name: "S T", role: "Dev" },
      },
      project: { id: "d4e6" },
      displayName: "GM Attendances",
      description: "Two synthetic tables",
      license: "Testing only",
      connections: [{
        type: "postgresql",
        name: "pg",
        url: "postgresql://db.internal:5432/research",
        credentials: { userKey: "pguser", passwordKey: "pgpassword" },
      }],
      objects: [
        { table: { name: "patients", schema: "public", connection: "pg" } },
        { table: { name: "attendances", schema: "public", connection: "pg" } },
      ],
      approvals: [
        { type: "INFORMATION_GOVERNANCE", email: "ig@nhs.net", name: "I G" },
        { type: "DATA_ENGINEER", email: "de@nhs.net", name: "D E" },
      ],
      ...spec,
    },
  };
}

const sha = (table: string) => table.charCodeAt(0).toString(16).padStart(2, "0").repeat(64);

/** The world of one test: API, store, kubelet and operators. */
class World implements AsyncDisposable {
  readonly store = new MemoryRunStore();
  readonly logs: string[] = [];
  readonly operators: DataSourceOperator[] = [];
  kubelet!: FakeKubelet;
  /** How the next Jobs' containers end; default: the run executes and succeeds. */
  containerEnd: ((job: KubeObject) => Promise<ContainerEnd>) | undefined;

  constructor(readonly api: FakeKubernetes) {}

  static async start(): Promise<World> {
    const world = new World(await startFakeKubernetes({ maxWatchSeconds: 2 }));
    world.kubelet = startFakeKubelet(world.api, NS, (job) => world.runContainer(job));
    return world;
  }

  /** The container: `run <id>` through the real Runner.runOnce, work that stages two tables. */
  async runContainer(job: KubeObject): Promise<ContainerEnd> {
    if (this.containerEnd !== undefined) return await this.containerEnd(job);
    const [mode, id] = job.spec.template.spec.containers[0].args as string[];
    assert.equal(mode, "run");
    const runner = new Runner({
      store: this.store,
      workOf: (run) => ({ onProgress }) => {
        const tables = (run.request as { dataset: { tables: { name: string }[] } }).dataset.tables;
        for (const { name } of tables) {
          onProgress({
            table: name,
            rows: 3,
            bytes: 100,
            done: { sha512: sha(name), reused: false },
          });
        }
        return Promise.resolve({
          status: 200,
          body: { status: "success", payload: {} },
          audit: {},
          logFields: {},
        });
      },
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "" }),
    });
    const run = await runner.runOnce(id!);
    await runner.close();
    return { exitCode: run.state === "succeeded" ? 0 : 1 };
  }

  async operator(identity = `op-${this.operators.length + 1}`): Promise<DataSourceOperator> {
    const api = kubeApi(this.api.kubeconfig(NS));
    const operator = new DataSourceOperator({
      api,
      namespace: NS,
      store: this.store,
      executor: new KubernetesRunExecutor({ api, namespace: NS }),
      policy: {
        requiredApprovalTypes: [...DEFAULT_REQUIRED_APPROVAL_TYPES],
        allowedSources: allowed,
      },
      storageClass: "jupyter-default",
      volumeSize: "1Gi",
      identity,
      leaseName: "cr8tor-operator",
      leaseSeconds: 2,
      resyncMs: 60_000,
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      log: createLogger("operator", (line) => this.logs.push(line)),
      retryMs: 100,
      followMs: 200,
      watchSeconds: 1,
    });
    await operator.start();
    this.operators.push(operator);
    return operator;
  }

  create(resource: KubeObject): KubeObject {
    return this.api.put({ ...crd, name: resource.metadata.name }, resource);
  }

  get(name: string): KubeObject | undefined {
    return this.api.get({ ...crd, name });
  }

  async until<T>(check: () => T | undefined | false, what: string, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}; logs:\n${this.logs.slice(-15).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits for the resource's status to reach `state` for its current generation. */
  statusOf(name: string, state: string): Promise<KubeObject> {
    return this.until(() => {
      const r = this.get(name);
      return r?.status?.dataState === state && r.status.observedGeneration === r.metadata.generation
        ? r.status
        : undefined;
    }, `${name} ${state}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const operator of this.operators) await operator.stop();
    await this.kubelet.stop();
    await this.api.close();
  }
}

Deno.test("operator: every refusal is a precise status, and nothing is created", async (t) => {
  await using world = await World.start();
  await world.operator();
  const cases: [string, KubeObject, string, string][] = [
    [
      "missing",
      dataSource("missing", { approvals: [{ type: "DATA_ENGINEER", email: "de@x" }] }),
      "Pending",
      "MISSING_APPROVALS",
    ],
    ["none", dataSource("none", { approvals: [] }), "Pending", "AWAITING_APPROVAL"],
    [
      "duplicate",
      dataSource("duplicate", {
        approvals: [
          { type: "INFORMATION_GOVERNANCE", email: "john@some.org" },
          { type: "DATA_ENGINEER", email: "John@some.org" },
        ],
      }),
      "Failed",
      "DUPLICATE_APPROVER",
    ],
    [
      "notallowed",
      dataSource("notallowed", {
        connections: [{
          type: "postgresql",
          name: "pg",
          url: "postgresql://other.internal:5432/research",
          credentials: { userKey: "pguser", passwordKey: "pgpassword" },
        }],
      }),
      "Failed",
      "SOURCE_NOT_ALLOWED",
    ],
    [
      "roles",
      dataSource("roles", {
        connections: [{
          type: "postgresql",
          name: "pg",
          url: "postgresql://db.internal:5432/research",
          credentials: { userKey: "pgpassword", passwordKey: "pguser" },
        }],
      }),
      "Failed",
      "SOURCE_NOT_ALLOWED",
    ],
    [
      "uploaded",
      dataSource("uploaded", { type: "Uploaded", connections: [{ type: "pvc", name: "p" }] }),
      "NotSupported",
      "UPLOADED_NOT_SUPPORTED",
    ],
    ["malformed", dataSource("malformed", { type: "Exported" }), "Failed", "INVALID_RESOURCE"],
    ["noobjects", dataSource("noobjects", { objects: [] }), "Failed", "NO_OBJECTS"],
  ];
  for (const [name, resource, state, reason] of cases) {
    await t.step(`${reason} → ${state}`, async () => {
      world.create(resource);
      const status = await world.statusOf(name, state);
      assert.equal(status.reason, reason);
      assert.equal(status.statusText, reason);
      assert.equal(status.conditions[0].type, "Ready");
      assert.equal(status.conditions[0].status, state === "Pending" ? "Unknown" : "False");
      assert.ok(status.message.length > 0);
      assert.ok(!JSON.stringify(status).includes('pgpassword"'), "no secret value is shown");
    });
  }
  assert.equal(jobsOf(world.api).length, 0);
  assert.equal(claimsOf(world.api).length, 0);
  assert.equal((await world.store.list({ limit: 10 })).runs.length, 0);
  // A refused resource gets no finalizer (nothing to clean up).
  assert.equal(world.get("duplicate")!.metadata.finalizers, undefined);

  await t.step("approvals added: a new generation runs", async () => {
    const pending = world.get("missing")!;
    world.create({
      ...pending,
      spec: { ...pending.spec, approvals: dataSource("x").spec.approvals },
      metadata: { ...pending.metadata, generation: 2 },
    });
    const status = await world.statusOf("missing", "Completed");
    assert.equal(status.observedGeneration, 2);
  });
});

Deno.test("operator: an approved Import gets one volume, one run, one Job, and Completed with files and hashes", async () => {
  await using world = await World.start();
  await world.operator();
  const created = world.create(dataSource("gm"));
  const status = await world.statusOf("gm", "Completed");
  const uid = created.metadata.uid.replaceAll("-", "");
  assert.equal(status.runId, `awds-${uid}-g1`);
  assert.equal(status.jobName, `awds-${uid}-g1`);
  assert.equal(status.reason, "COMPLETED");
  assert.equal(status.stage, "Published");
  assert.equal(status.conditions[0].status, "True");
  const folder = `staging/d4e6/${
    created.metadata.creationTimestamp.replace(/[^0-9]/g, "").replace(/^(\d{8})(\d{6})$/, "$1_$2")
  }`;
  assert.deepEqual(status.files, [
    {
      path: `${folder}/data/outputs/public/attendances.csv`,
      bytes: 100,
      sha512: sha("attendances"),
    },
    { path: `${folder}/data/outputs/public/patients.csv`, bytes: 100, sha512: sha("patients") },
  ]);
  assert.equal(status.crate, `${folder}/ro-crate-metadata.json`);
  assert.deepEqual(world.get("gm")!.metadata.finalizers, [DATASOURCE_FINALIZER]);

  const [job] = jobsOf(world.api);
  assert.equal(jobsOf(world.api).length, 1);
  const pod = job!.spec.template.spec;
  const container = pod.containers[0];
  assert.deepEqual(container.args, ["run", status.runId]);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(container.securityContext.capabilities, { drop: ["ALL"] });
  assert.ok(container.resources.limits.memory);
  assert.equal(job!.spec.backoffLimit, 1);
  assert.ok(job!.spec.activeDeadlineSeconds > 0);
  assert.ok(job!.spec.ttlSecondsAfterFinished > 0);
  const env = Object.fromEntries(container.env.map((e: KubeObject) => [e.name, e.value]));
  assert.equal(env.TARGET_STORAGE_ACCOUNT_WORKSPACE_SDE_MNT_PATH, "/data/run");
  assert.equal(JSON.parse(env.RUN_CRATE).approvals.length, 2);
  const [claim] = claimsOf(world.api);
  assert.equal(claim!.spec.storageClassName, "jupyter-default");
  assert.deepEqual(
    pod.volumes.find((v: KubeObject) => v.name === "run-data").persistentVolumeClaim,
    { claimName: claim!.metadata.name },
  );
  const runs = (await world.store.list({ limit: 10 })).runs;
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.state, "succeeded");

  // Repeated events (a relabel, a resync) change nothing: still one Job, no new status write.
  const version = world.get("gm")!.metadata.resourceVersion;
  world.create({
    ...world.get("gm")!,
    metadata: { ...world.get("gm")!.metadata, labels: { a: "b" } },
  });
  await world.operators[0]!.resyncAll();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(jobsOf(world.api).length, 1);
  assert.equal(Number(world.get("gm")!.metadata.resourceVersion), Number(version) + 1);

  // A changed spec is a new generation with its own run and Job.
  const current = world.get("gm")!;
  world.create({
    ...current,
    spec: { ...current.spec, objects: [current.spec.objects[0]] },
    metadata: { ...current.metadata, generation: 2 },
  });
  const second = await world.statusOf("gm", "Completed");
  assert.equal(second.runId, `awds-${uid}-g2`);
  assert.equal(second.files.length, 1);
  assert.equal(jobsOf(world.api).length, 2);
  assert.equal(claimsOf(world.api).length, 1);
});

Deno.test("operator: a failing Job is Failed with the pod's reason, and its run failed", async () => {
  await using world = await World.start();
  world.containerEnd = () =>
    Promise.resolve({ exitCode: 137, reason: "OOMKilled", message: "memory limit 1Gi" });
  await world.operator();
  world.create(dataSource("oom"));
  const status = await world.statusOf("oom", "Failed");
  assert.equal(status.reason, "JOB_FAILED");
  assert.match(status.message, /OOMKilled/);
  assert.match(status.message, /exited with code 137/);
  const run = await world.store.get(status.runId);
  assert.equal(run!.state, "failed");
  assert.equal((run!.outcome!.body as KubeObject).payload.code, "run_execution_failed");
  assert.equal(jobsOf(world.api).length, 1);
});

Deno.test("operator: killed in the middle of a reconcile and restarted, it makes no second Job", async () => {
  await using world = await World.start();
  // The first operator's Job creation reaches the API server, but the operator never hears back.
  let hang: () => void = () => {};
  world.api.intercept(({ method, path, body }) => {
    if (method !== "POST" || !path.endsWith("/jobs")) return undefined;
    world.api.put({
      group: "batch",
      version: "v1",
      plural: "jobs",
      namespace: NS,
      name: body!.metadata.name,
    }, body!);
    return new Promise<Response>((resolve) =>
      hang = () => resolve(new Response("{}", { status: 503 }))
    );
  });
  const first = await world.operator("first");
  world.create(dataSource("crash"));
  await world.until(() => jobsOf(world.api).length === 1, "the first Job");
  world.api.intercept(undefined);
  const stopping = first.stop();
  hang();
  await stopping;
  world.operators.splice(0, 1);
  await world.operator("second");
  const status = await world.statusOf("crash", "Completed");
  assert.equal(jobsOf(world.api).length, 1);
  assert.equal(status.jobName, jobsOf(world.api)[0]!.metadata.name);
  assert.equal((await world.store.list({ limit: 10 })).runs.length, 1);
});

Deno.test("operator: a watch cut off is noticed and replaced; lost history means a new list", async () => {
  await using world = await World.start();
  await world.operator();
  world.create(dataSource("before"));
  await world.statusOf("before", "Completed");
  await world.until(() => world.api.openWatches === 2, "both watches open");
  world.api.cutWatches();
  world.api.compact();
  // No resync for a minute: only the informers can bring the new resource in.
  world.create(dataSource("after"));
  await world.statusOf("after", "Completed");
  assert.equal(jobsOf(world.api).length, 2);
  assert.ok(world.logs.some((l) => l.includes('"watch_restarted"') && l.includes("watch_stuck")));
});

Deno.test("operator: two replicas elect one leader, and make one Job", async () => {
  await using world = await World.start();
  const [a, b] = [await world.operator("a"), await world.operator("b")];
  await world.until(() => a.leader !== b.leader, "one leader");
  for (let i = 0; i < 3; i++) world.create(dataSource(`ds${i}`));
  for (let i = 0; i < 3; i++) await world.statusOf(`ds${i}`, "Completed");
  assert.equal(jobsOf(world.api).length, 3);
  const lease = world.api.get({
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    namespace: NS,
    name: "cr8tor-operator",
  })!;
  const leader = a.leader ? a : b;
  const follower = a.leader ? b : a;
  assert.equal(lease.spec.holderIdentity, a.leader ? "a" : "b");
  assert.equal(follower.reconciled.size, 0, "the follower reconciled nothing");
  // The leader stops (releasing the Lease): the other takes over and acts on new resources.
  await leader.stop();
  world.operators.splice(world.operators.indexOf(leader), 1);
  await world.until(() => follower.leader, "the follower taking over");
  world.create(dataSource("later"));
  await world.statusOf("later", "Completed");
  assert.equal(jobsOf(world.api).length, 4);
});

Deno.test("operator: deleting the resource removes its Jobs and volume, cancels its run, then the finalizer", async () => {
  await using world = await World.start();
  // The Job never ends: the run is still active when the resource is deleted.
  let release: () => void = () => {};
  world.containerEnd = () => new Promise((resolve) => release = () => resolve({ exitCode: 1 }));
  await world.operator();
  world.create(dataSource("gone"));
  const running = await world.statusOf("gone", "Running");
  await world.until(() => world.kubelet.started.length === 1, "the Job's pod");
  const api = kubeApi(world.api.kubeconfig(NS));
  await api.custom.deleteNamespacedCustomObject({ ...crd, name: "gone" });
  await world.until(() => world.get("gone") === undefined, "the resource gone");
  assert.equal(jobsOf(world.api).length, 0);
  assert.equal(claimsOf(world.api).length, 0);
  assert.equal((await world.store.get(running.runId))!.state, "cancelled");
  release();
});
