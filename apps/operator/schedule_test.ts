/**
 * The HTTP-file sources' schedule run by the operator (`httpSourceSchedulerOf` says `operator`): only the
 * Lease holder looks at the clock, each slot's run is stored and dispatched as a Job (`publish run <id>`)
 * through the same `HttpSources.tick` as the publish service's, a stuck run is failed, and a look still
 * under way makes the next one skip. Against the fake Kubernetes API with the real client, an in-memory
 * run store and a stand-in kubelet.
 */
import assert from "node:assert/strict";
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { kubeApi } from "../../adapters/kubernetes/kube_api.ts";
import { KubernetesRunExecutor } from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { MemoryFileRegistry } from "../../adapters/memory/memory_file_registry.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import { RemoteRuns } from "../../application/remote_runs.ts";
import { Runner } from "../../application/runs.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { parseHttpFileSources } from "../../domain/http_file_sources.ts";
import { DEFAULT_REQUIRED_APPROVAL_TYPES } from "../../domain/workspace_datasource.ts";
import type { RunStore } from "../../ports/run_store.ts";
import { type FakeKubernetes, startFakeKubernetes } from "../../tests/support/fake_kubernetes.ts";
import {
  type ContainerEnd,
  type FakeKubelet,
  startFakeKubelet,
} from "../../tests/support/fake_kubelet.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import { createLogger } from "../_shared/log.ts";
import { HttpSources } from "../publish/http_sources.ts";
import { DataSourceOperator } from "./operator.ts";

const NS = "cr8tor";
const jobsOf = (api: FakeKubernetes) =>
  api.list({ group: "batch", version: "v1", plural: "jobs", namespace: NS });
const outcome = (e: unknown) => errorOutcome(e, { detailPrefix: "Operator: " });

const [SOURCE] = parseHttpFileSources(JSON.stringify({
  sources: [{
    name: "weekly",
    urls: ["https://files.example/a.csv"],
    destination: "LSC",
    project_name: "Pr042",
    schedule: "0 * * * *",
    run_timeout_ms: 5_400_000,
  }],
}));

/** A run store whose `list` can be held up (a slow look at the schedule). */
class SlowStore extends MemoryRunStore {
  hold: Promise<void> | undefined;
  override async list(...args: Parameters<RunStore["list"]>) {
    await this.hold;
    return await super.list(...args);
  }
}

class World implements AsyncDisposable {
  readonly store = new SlowStore();
  readonly logs: string[] = [];
  readonly operators: DataSourceOperator[] = [];
  readonly closers: (() => Promise<void>)[] = [];
  /** The schedule's clock (every replica's). */
  now = new Date("2026-12-07T01:00:10.000Z");
  /** How Jobs' containers end: by default the run is executed and succeeds. */
  containerEnd: (() => Promise<ContainerEnd>) | undefined;
  kubelet!: FakeKubelet;

  constructor(readonly api: FakeKubernetes) {}

  static async start(): Promise<World> {
    const world = new World(await startFakeKubernetes({ maxWatchSeconds: 2 }));
    world.kubelet = startFakeKubelet(world.api, NS, async (job) => {
      if (world.containerEnd !== undefined) return await world.containerEnd();
      const [, id] = job.spec.template.spec.containers[0].args as string[];
      const runner = new Runner({
        store: world.store,
        workOf: () => () =>
          Promise.resolve({
            status: 200,
            body: { status: "success", payload: {} },
            audit: {},
            logFields: {},
          }),
        outcomeOfError: outcome,
      });
      const run = await runner.runOnce(id!);
      await runner.close();
      return { exitCode: run.state === "succeeded" ? 0 : 1 };
    });
    return world;
  }

  /** A replica with the schedule: its runner dispatches each run as a Job, as `main.ts` builds it. */
  async operator(identity: string): Promise<DataSourceOperator> {
    const api = kubeApi(this.api.kubeconfig(NS));
    const remote = new RemoteRuns({
      executor: new KubernetesRunExecutor({ api, namespace: NS }),
      store: this.store,
      outcomeOfError: outcome,
      pollMs: 100,
    });
    const runner = new Runner({
      store: this.store,
      workOf: () => {
        throw new Error("not executed here");
      },
      outcomeOfError: outcome,
      dispatch: (run) => remote.dispatch(run),
    });
    this.closers.push(async () => {
      remote.close();
      await runner.close();
    });
    const operator = new DataSourceOperator({
      api,
      namespace: NS,
      store: this.store,
      executor: new KubernetesRunExecutor({ api, namespace: NS }),
      policy: {
        requiredApprovalTypes: [...DEFAULT_REQUIRED_APPROVAL_TYPES],
        allowedSources: new AllowedSources([]),
      },
      storageClass: "jupyter-default",
      volumeSize: "1Gi",
      identity,
      leaseName: "cr8tor-operator",
      leaseSeconds: 2,
      resyncMs: 60_000,
      outcomeOfError: outcome,
      log: createLogger("operator", (line) => this.logs.push(line)),
      retryMs: 100,
      watchSeconds: 1,
      schedule: {
        sources: new HttpSources({
          sources: [SOURCE!],
          registry: new MemoryFileRegistry(),
          client: new NodeHttpFileClient(),
          now: () => this.now,
        }),
        runner,
        // Looked at by the test (scheduleTick), not by the timer.
        tickMs: 3_600_000,
      },
    });
    await operator.start();
    this.operators.push(operator);
    return operator;
  }

  async runs() {
    return (await this.store.list({ limit: 50 })).runs;
  }

  async until<T>(check: () => Promise<T | undefined | false>, what: string): Promise<T> {
    const end = Date.now() + 15_000;
    for (;;) {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}; logs:\n${this.logs.slice(-15).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const operator of this.operators) await operator.stop();
    for (const close of this.closers) await close();
    await this.kubelet.stop();
    await this.api.close();
  }
}

/** The two replicas, once one of them leads: [leader, follower]. */
async function twoReplicas(world: World): Promise<[DataSourceOperator, DataSourceOperator]> {
  const [a, b] = [await world.operator("a"), await world.operator("b")];
  await world.until(() => Promise.resolve(a.leader !== b.leader), "one leader");
  return a.leader ? [a, b] : [b, a];
}

Deno.test("operator schedule: with two replicas, each slot runs once, from the leader, as one Job", async () => {
  await using world = await World.start();
  const [leader, follower] = await twoReplicas(world);
  // Both look at the clock at once, several times: only the leader acts.
  const looks = await Promise.all([
    follower.scheduleTick(),
    follower.scheduleTick(),
    leader.scheduleTick(),
  ]);
  assert.deepEqual(looks, ["follower", "follower", "ran"]);
  const [run] = await world.runs();
  assert.equal((await world.runs()).length, 1);
  assert.equal(run!.action, "fetch");
  assert.equal(run!.project_start_time, "20261207_010000", "the 01:00 slot");
  const [job] = jobsOf(world.api);
  assert.equal(jobsOf(world.api).length, 1);
  assert.deepEqual(job!.spec.template.spec.containers[0].args, ["run", run!.id]);
  await world.until(
    async () => (await world.store.get(run!.id))?.state === "succeeded",
    "the Job's run to succeed",
  );

  // The same slot again: nothing new. The next slot: one more run and Job.
  assert.equal(await leader.scheduleTick(), "ran");
  assert.equal((await world.runs()).length, 1);
  world.now = new Date("2026-12-07T02:00:05.000Z");
  await follower.scheduleTick();
  assert.equal((await world.runs()).length, 1, "the follower does not run the 02:00 slot");
  await leader.scheduleTick();
  assert.equal((await world.runs()).length, 2);
  assert.equal(jobsOf(world.api).length, 2);

  // The leader stops: the other takes over and looks back over the time no one looked.
  await leader.stop();
  world.operators.splice(world.operators.indexOf(leader), 1);
  await world.until(() => Promise.resolve(follower.leader), "the follower taking over");
  world.now = new Date("2026-12-07T03:00:01.000Z");
  assert.equal(await follower.scheduleTick(), "ran");
  const starts = (await world.runs()).map((r) => r.project_start_time).sort();
  assert.deepEqual(starts, ["20261207_010000", "20261207_020000", "20261207_030000"]);
  assert.equal(jobsOf(world.api).length, 3);
});

Deno.test("operator schedule: a stuck run is failed after its source's timeout, and the next slot runs", async () => {
  await using world = await World.start();
  // The Jobs' pods never end: the run stays with its execution.
  let release: () => void = () => {};
  const ended = new Promise<ContainerEnd>((resolve) => release = () => resolve({ exitCode: 1 }));
  world.containerEnd = () => ended;
  try {
    const operator = await world.operator("a");
    await world.until(() => Promise.resolve(operator.leader), "the Lease");
    await operator.scheduleTick();
    const [run] = await world.runs();
    // Its process claimed it and then hung.
    await world.store.claim(run!.id, () => world.now.toISOString());
    assert.equal((await world.store.get(run!.id))?.state, "running");

    // The 02:00 slot while it still runs (within its 90-minute timeout): skipped, not run beside it.
    world.now = new Date("2026-12-07T02:00:01.000Z");
    await operator.scheduleTick();
    assert.equal((await world.runs()).length, 1);
    assert.equal((await world.store.get(run!.id))?.state, "running");
    assert.ok(world.logs.some((l) => l.includes('"http_source_schedule_skipped"')));
    // At 03:00 it has run for nearly two hours: stuck, failed, and the 03:00 slot runs.
    world.now = new Date("2026-12-07T03:00:01.000Z");
    await operator.scheduleTick();
    const failed = await world.store.get(run!.id);
    assert.equal(failed?.state, "failed");
    assert.equal(
      (failed?.outcome?.body as { payload: { code: string } }).payload.code,
      "http_source_run_timed_out",
    );
    assert.ok(world.logs.some((l) => l.includes('"http_source_run_stuck"')));
    const starts = (await world.runs()).map((r) => r.project_start_time).sort();
    assert.deepEqual(starts, ["20261207_010000", "20261207_030000"], "the 03:00 slot then ran");
    assert.equal(jobsOf(world.api).length, 2);
  } finally {
    release();
  }
});

Deno.test("operator schedule: a look still under way makes the next one skip", async () => {
  await using world = await World.start();
  const operator = await world.operator("a");
  await world.until(() => Promise.resolve(operator.leader), "the Lease");
  let resume: () => void = () => {};
  world.store.hold = new Promise((resolve) => resume = resolve);
  const first = operator.scheduleTick();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await operator.scheduleTick(), "overlap");
  assert.ok(world.logs.some((l) => l.includes('"http_source_schedule_overlap"')));
  world.store.hold = undefined;
  resume();
  assert.equal(await first, "ran");
  assert.equal((await world.runs()).length, 1);
  assert.equal(jobsOf(world.api).length, 1);
});

Deno.test("operator schedule: an operator without one does not look", async () => {
  await using world = await World.start();
  const api = kubeApi(world.api.kubeconfig(NS));
  const operator = new DataSourceOperator({
    api,
    namespace: NS,
    store: world.store,
    executor: new KubernetesRunExecutor({ api, namespace: NS }),
    policy: { requiredApprovalTypes: ["X"], allowedSources: new AllowedSources([]) },
    storageClass: "s",
    volumeSize: "1Gi",
    identity: "a",
    leaseName: "cr8tor-operator",
    leaseSeconds: 2,
    resyncMs: 60_000,
    outcomeOfError: outcome,
    log: createLogger("operator", () => {}),
    watchSeconds: 1,
  });
  await operator.start();
  world.operators.push(operator);
  await world.until(() => Promise.resolve(operator.leader), "the Lease");
  assert.equal(await operator.scheduleTick(), "off");
  assert.equal((await world.runs()).length, 0);
});
