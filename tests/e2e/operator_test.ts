/**
 * The operator and `RUN_EXECUTOR=kubernetes` end to end: the fake Kubernetes API
 * (`tests/support/fake_kubernetes.ts`) driven by the real client, the shared PostgreSQL run store, the
 * local PostgreSQL as the source, and a stand-in kubelet that runs each Job's container as a real
 * process (`deno run ... apps/publish/main.ts run <id>` with the Job's environment), its volume a
 * temporary folder.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { kubeApi } from "../../adapters/kubernetes/kube_api.ts";
import {
  defaultJobTemplate,
  KubernetesRunExecutor,
} from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { postgresClientOptions } from "../../adapters/postgres/postgres_source_database.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import {
  DATASOURCE_API,
  DEFAULT_REQUIRED_APPROVAL_TYPES,
} from "../../domain/workspace_datasource.ts";
import { errorOutcome } from "../../apps/_shared/http_errors.ts";
import { createLogger } from "../../apps/_shared/log.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { DataSourceOperator } from "../../apps/operator/operator.ts";
import { HttpSources } from "../../apps/publish/http_sources.ts";
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { MemoryFileRegistry } from "../../adapters/memory/memory_file_registry.ts";
import { RemoteRuns } from "../../application/remote_runs.ts";
import { Runner } from "../../application/runs.ts";
import { parseHttpFileSources } from "../../domain/http_file_sources.ts";
import { DEMO_APPROVAL_POLICY } from "../../tools/demo_identity_provider.ts";
import { HttpFileServer } from "../support/http_file_server.ts";
import { buildPublishService, runStoreFromEnv } from "../../apps/publish/main.ts";
import { postgresConnectionOptions, PostgresSandbox, quotePostgres } from "../support/databases.ts";
import { type KubeObject, startFakeKubernetes } from "../support/fake_kubernetes.ts";
import { processRunner, startFakeKubelet } from "../support/fake_kubelet.ts";
import { startService, writeAllowList } from "../support/processes.ts";
import { postJson } from "../support/requests.ts";
import {
  allowedLocalPostgres,
  ignorePostgres,
  LOCAL_DATABASES_WITHOUT_TLS,
  POSTGRES,
  randomName,
} from "../support/services.ts";

const NS = "jupyterhub";
const API_KEY = "publish-key-0123456789abcdef0123456789abcdef";
const REPO = new URL("../../", import.meta.url).pathname;

const DDL = `
  create table $s.patients (id int primary key, born int);
  insert into $s.patients select i, 1900 + i from generate_series(1, 40) as i;
  create table $s.attendances (id int primary key, patient int, day date);
  insert into $s.attendances select i, i % 40 + 1, date '2025-01-01' + i from generate_series(1, 90) as i;
`;

const sha512Hex = (bytes: Uint8Array) => createHash("sha512").update(bytes).digest("hex");

/** Everything one test needs: source schema, run store database, secrets, allow-list, API, kubelet. */
async function world() {
  const pg = new PostgresSandbox();
  await pg.createRole();
  const schema = randomName("awds");
  await pg.createSchema(schema, DDL);
  const database = randomName("awds_runs");
  const admin = postgres(postgresClientOptions(postgresConnectionOptions()));
  await admin.unsafe(`create database ${quotePostgres(database)}`);
  const dir = await mkdtemp(join(tmpdir(), "operator_e2e_"));
  const secrets = join(dir, "secrets");
  await Deno.mkdir(secrets);
  for (
    const [name, value] of Object.entries({
      pguser: pg.role,
      pgpassword: pg.password,
      publishserviceapikey: API_KEY,
      runstorepassword: "unused-by-trust",
    })
  ) await writeFile(join(secrets, name), value);
  const allowList = await writeAllowList(dir, [allowedLocalPostgres()]);
  const runStoreEnv = {
    RUN_STORE: "postgresql",
    RUN_STORE_POSTGRESQL_HOST: POSTGRES.host,
    RUN_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
    RUN_STORE_POSTGRESQL_DATABASE: database,
    RUN_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
    RUN_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "runstorepassword",
    RUN_STORE_POSTGRESQL_SSLMODE: "disable",
  };
  // The Job: the built-in template (hardening, limits), this checkout's publish binary, and the
  // environment a cluster's template would give (secrets, allow-list, run store).
  const template = defaultJobTemplate();
  const container = template.spec!.template.spec!.containers[0]!;
  container.command = ["deno", "run", "-A", join(REPO, "apps/publish/main.ts")];
  container.env = Object.entries({
    ...runStoreEnv,
    ...LOCAL_DATABASES_WITHOUT_TLS,
    SECRETS_MNT_PATH: secrets,
    ALLOWED_SOURCES_FILE: allowList,
    STATE_DIR: join(dir, "state"),
  }).map(([name, value]) => ({ name, value }));
  const api = await startFakeKubernetes({ maxWatchSeconds: 2 });
  const volumes = new Map<string, string>();
  const volumeDir = async (claim: string) => {
    if (!volumes.has(claim)) {
      const path = join(dir, "volumes", claim);
      await Deno.mkdir(path, { recursive: true });
      volumes.set(claim, path);
    }
    return volumes.get(claim)!;
  };
  let runContainer = processRunner(volumeDir);
  const kubelet = startFakeKubelet(api, NS, (job) => runContainer(job));
  const logs: string[] = [];
  const log = createLogger("operator", (line) => logs.push(line));
  const store = await runStoreFromEnv(
    runStoreEnv,
    new MemorySecretStore({ runstorepassword: "x" }),
    log,
  );
  const kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, api.kubeconfig(NS));
  const templateFile = join(dir, "job-template.json");
  await writeFile(templateFile, JSON.stringify(template));
  return {
    pg,
    schema,
    api,
    kubelet,
    store,
    logs,
    volumes,
    dir,
    allowList,
    runStoreEnv,
    secrets,
    kubeconfig,
    templateFile,
    template,
    /** Replaces how the kubelet runs containers. */
    setRunner(next: typeof runContainer) {
      runContainer = next;
    },
    async cleanup() {
      await kubelet.stop();
      await api.close();
      await store.close();
      await admin.unsafe(`drop database if exists ${quotePostgres(database)} with (force)`);
      await admin.end();
      await pg.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 90_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name:
    "operator e2e: an approved Import runs as one Job whose data, hashes and crate land in the volume",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const w = await world();
    const api = kubeApi(w.api.kubeconfig(NS));
    const operator = new DataSourceOperator({
      api,
      namespace: NS,
      store: w.store,
      executor: new KubernetesRunExecutor({ api, namespace: NS, template: w.template }),
      policy: {
        requiredApprovalTypes: [...DEFAULT_REQUIRED_APPROVAL_TYPES],
        allowedSources: AllowedSources.parse(await Deno.readTextFile(w.allowList)),
      },
      storageClass: "jupyter-default",
      volumeSize: "1Gi",
      identity: "op",
      leaseName: "cr8tor-operator",
      leaseSeconds: 5,
      resyncMs: 60_000,
      followMs: 300,
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      log: createLogger("operator", (line) => w.logs.push(line)),
    });
    try {
      await operator.start();
      const crd = {
        group: DATASOURCE_API.group,
        version: "v1",
        plural: DATASOURCE_API.plural,
        namespace: NS,
      };
      const resource = (name: string, tables: string[]) => ({
        apiVersion: "xlscsde.nhs.uk/v1",
        kind: "AnalyticsWorkspaceDataSource",
        metadata: { name },
        spec: {
          type: "Import",
          publisher: { organisation: "NHS Greater Manchester ICB" },
          project: { id: "d4e6" },
          displayName: "GM Attendances",
          description: "Two synthetic tables",
          license: "Testing only",
          connections: [{
            type: "postgresql",
            name: "pg",
            url: `postgresql://${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`,
            credentials: { userKey: "pguser", passwordKey: "pgpassword" },
          }],
          objects: tables.map((table) => ({
            table: { name: table, schema: w.schema, connection: "pg" },
          })),
          approvals: [
            {
              type: "INFORMATION_GOVERNANCE",
              email: "ig@nhs.net",
              name: "I G",
              approvalGiven: "2026-12-01",
            },
            { type: "DATA_ENGINEER", email: "de@nhs.net", name: "D E" },
          ],
        },
      });
      w.api.put({ ...crd, name: "gm" }, resource("gm", ["patients", "attendances"]));
      const status = await until(() => {
        const s = w.api.get({ ...crd, name: "gm" })?.status;
        return s?.dataState === "Completed" || s?.dataState === "Failed" ? s : undefined;
      }, "gm to end");
      assert.equal(status.dataState, "Completed", `${status.reason}: ${status.message}`);
      assert.equal(w.kubelet.started.length, 1);
      const [volume] = [...w.volumes.values()];
      assert.equal(status.files.length, 2);
      for (const file of status.files as KubeObject[]) {
        const bytes = await readFile(join(volume!, file.path));
        assert.equal(sha512Hex(bytes), file.sha512, file.path);
        assert.equal(bytes.length, file.bytes);
      }
      const patients = new TextDecoder().decode(
        await readFile(
          join(volume!, status.files.find((f: KubeObject) => f.path.endsWith("patients.csv")).path),
        ),
      );
      assert.equal(patients.trim().split("\n").length, 41, "header and 40 rows");
      const crate = JSON.parse(await readFile(join(volume!, status.crate), "utf8"));
      const graph = crate["@graph"] as KubeObject[];
      const files = graph.filter((e) => e["@type"] === "File");
      assert.deepEqual(
        files.map((f) => [f["@id"], f.sha512]).sort(),
        (status.files as KubeObject[]).map((f) => [
          f.path.replace(/^staging\/d4e6\/\d{8}_\d{6}\//, ""),
          f.sha512,
        ]).sort(),
      );
      assert.ok(JSON.stringify(crate).includes("ig@nhs.net"), "the approvals are in the crate");
      assert.ok(!JSON.stringify(crate).includes(w.pg.password), "no secret in the crate");
      const run = await w.store.get(status.runId);
      assert.equal(run!.state, "succeeded");

      // A table that does not exist: the Job's run fails, and the status says why.
      w.api.put({ ...crd, name: "bad" }, resource("bad", ["missing_table"]));
      const failed = await until(() => {
        const s = w.api.get({ ...crd, name: "bad" })?.status;
        return s?.dataState === "Failed" ? s : undefined;
      }, "bad to fail");
      assert.equal(failed.reason, "RUN_FAILED");
      assert.match(failed.message, /table|not found|does not exist/i);
      assert.equal(w.kubelet.started.length, 2);
    } finally {
      await operator.stop();
      await w.cleanup();
    }
  },
});

Deno.test({
  name:
    "publish e2e: RUN_EXECUTOR=kubernetes runs a package as a Job, and a dead Job fails its run with the pod's reason",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const w = await world();
    const filestore = join(w.dir, "lsc");
    await Deno.mkdir(join(filestore, "staging"), { recursive: true });
    await Deno.mkdir(join(filestore, "production"));
    // The Job mounts the same filestore as the service (a ReadWriteMany volume in a cluster).
    const withMount = structuredClone(w.template);
    withMount.spec!.template.spec!.containers[0]!.env!.push({
      name: "TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH",
      value: filestore,
    });
    await writeFile(w.templateFile, JSON.stringify(withMount));
    const service = await buildPublishService({
      ...w.runStoreEnv,
      ...LOCAL_DATABASES_WITHOUT_TLS,
      SECRETS_MNT_PATH: w.secrets,
      ALLOWED_SOURCES_FILE: w.allowList,
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: filestore,
      RUN_EXECUTOR: "kubernetes",
      RUN_JOB_TEMPLATE_FILE: w.templateFile,
      RUN_JOB_NAMESPACE: NS,
      KUBECONFIG: w.kubeconfig,
    }, () => {});
    const body = (start: string) => ({
      project_name: "Pr042",
      project_start_time: start,
      destination: { name: "LSC", type: "filestore", format: "csv" },
      source: {
        type: "postgresql",
        host_url: POSTGRES.host,
        port: POSTGRES.port,
        database: POSTGRES.database,
        credentials: { username_key: "pguser", password_key: "pgpassword" },
      },
      dataset: { name: "gm", schema_name: w.schema, tables: [{ name: "patients" }] },
    });
    try {
      const res = await service.fetch(
        postJson("/data-publish/package", body("20250611_093000"), API_KEY),
      );
      const reply = await res.json();
      assert.equal(res.status, 200, JSON.stringify(reply));
      assert.equal(w.kubelet.started.length, 1, "the package ran as one Job");
      const [job] = w.api.list({ group: "batch", version: "v1", plural: "jobs", namespace: NS });
      assert.deepEqual(job!.spec.template.spec.containers[0].args.slice(0, 1), ["run"]);
      const staged = join(
        filestore,
        "staging/Pr042/20250611_093000/data/outputs",
        w.schema,
        "patients.csv",
      );
      assert.equal((await readFile(staged, "utf8")).trim().split("\n").length, 41);

      // The next Job's pod is killed for memory before the run writes anything.
      w.setRunner(() =>
        Promise.resolve({ exitCode: 137, reason: "OOMKilled", message: "limit 1Gi" })
      );
      const dead = await service.fetch(
        postJson("/data-publish/package", body("20250611_093001"), API_KEY),
      );
      const error = await dead.json();
      assert.equal(dead.status, 502, JSON.stringify(error));
      assert.equal(error.payload.code, "run_execution_failed");
      assert.match(error.payload.detail, /OOMKilled/);
    } finally {
      await service.close?.();
      await w.cleanup();
    }
  },
});

Deno.test({
  name:
    "operator process: SIGKILLed after its Job reached the API server, a new process makes no second Job",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const w = await world();
    const env = {
      ...w.runStoreEnv,
      KUBECONFIG: w.kubeconfig,
      WATCH_NAMESPACE: NS,
      SECRETS_MNT_PATH: w.secrets,
      ALLOWED_SOURCES_FILE: w.allowList,
      RUN_JOB_TEMPLATE_FILE: w.templateFile,
      LEADER_ELECTION_LEASE_SECONDS: "2",
      OPERATOR_RESYNC_SECONDS: "1",
    };
    // The first process's Job creation is stored, but its reply never comes.
    let hang: () => void = () => {};
    w.api.intercept(({ method, path, body }) => {
      if (method !== "POST" || !path.endsWith("/jobs")) return undefined;
      w.api.put({
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
    const first = await startService("operator", { ...env, POD_NAME: "first" });
    let second: Awaited<ReturnType<typeof startService>> | undefined;
    const crd = {
      group: DATASOURCE_API.group,
      version: "v1",
      plural: DATASOURCE_API.plural,
      namespace: NS,
    };
    const jobs = () => w.api.list({ group: "batch", version: "v1", plural: "jobs", namespace: NS });
    try {
      w.api.put({ ...crd, name: "gm" }, {
        apiVersion: "xlscsde.nhs.uk/v1",
        kind: "AnalyticsWorkspaceDataSource",
        metadata: { name: "gm" },
        spec: {
          type: "Import",
          project: { id: "d4e6" },
          connections: [{
            type: "postgresql",
            name: "pg",
            url: `postgresql://${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`,
            credentials: { userKey: "pguser", passwordKey: "pgpassword" },
          }],
          objects: [{ table: { name: "patients", schema: w.schema, connection: "pg" } }],
          approvals: [
            { type: "INFORMATION_GOVERNANCE", email: "ig@nhs.net" },
            { type: "DATA_ENGINEER", email: "de@nhs.net" },
          ],
        },
      });
      await until(() => jobs().length === 1, "the first process's Job");
      Deno.kill(first.pid, "SIGKILL");
      await first.exited;
      w.api.intercept(undefined);
      hang();
      second = await startService("operator", { ...env, POD_NAME: "second" });
      const health = await fetch(`${second.url}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      const status = await until(() => {
        const s = w.api.get({ ...crd, name: "gm" })?.status;
        return s?.dataState === "Completed" || s?.dataState === "Failed" ? s : undefined;
      }, "gm to end");
      assert.equal(status.dataState, "Completed", `${status.reason}: ${status.message}`);
      assert.equal(jobs().length, 1);
      assert.equal(w.kubelet.started.length, 1);
      assert.equal((await w.store.list({ limit: 10 })).runs.length, 1);
      const ready = await (await fetch(`${second.url}/ready`)).json();
      assert.deepEqual(ready, { status: "ready", leader: true });
    } finally {
      hang();
      await second?.stop();
      await w.cleanup();
    }
  },
});

Deno.test({
  name:
    "operator e2e: a scheduled slot's Job runs the real one-run process, which fetches the source's files into the filestore",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const w = await world();
    await using server = await HttpFileServer.start();
    server.put("/a.csv", "id\n1\n");
    server.put("/b.csv", "id\n2\n");
    const storage = join(w.dir, "lsc");
    await Deno.mkdir(join(storage, "staging"), { recursive: true });
    await Deno.mkdir(join(storage, "production"));
    const allowList = join(w.dir, "allowed-http.json");
    await writeFile(
      allowList,
      JSON.stringify({
        sources: [],
        http_sources: [{ host: "127.0.0.1", port: server.port, scheme: "http", private: true }],
      }),
    );
    const sourcesText = JSON.stringify({
      sources: [{
        name: "weekly",
        urls: [`${server.origin}/a.csv`, `${server.origin}/b.csv`],
        destination: "LSC",
        project_name: "Pr042",
        schedule: "0 * * * *",
      }],
    });
    const sourcesFile = join(w.dir, "http-sources.json");
    await writeFile(sourcesFile, sourcesText);
    // The fetch Job: the publish image with the sources file, the allow-list and the filestore.
    const template = structuredClone(w.template);
    const container = template.spec!.template.spec!.containers[0]!;
    container.env = [
      ...container.env!.filter((e) => e.name !== "ALLOWED_SOURCES_FILE"),
      { name: "ALLOWED_SOURCES_FILE", value: allowList },
      { name: "HTTP_FILE_SOURCES_FILE", value: sourcesFile },
      { name: "TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH", value: storage },
    ];
    const api = kubeApi(w.api.kubeconfig(NS));
    const remote = new RemoteRuns({
      executor: new KubernetesRunExecutor({ api, namespace: NS, template }),
      store: w.store,
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      pollMs: 300,
    });
    const runner = new Runner({
      store: w.store,
      workOf: () => {
        throw new Error("not executed here");
      },
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      dispatch: (run) => remote.dispatch(run),
    });
    const now = new Date(Date.UTC(2026, 11, 7, 1, 0, 10));
    const operator = new DataSourceOperator({
      api,
      namespace: NS,
      store: w.store,
      executor: new KubernetesRunExecutor({ api, namespace: NS, template: w.template }),
      policy: { requiredApprovalTypes: ["X"], allowedSources: new AllowedSources([]) },
      storageClass: "jupyter-default",
      volumeSize: "1Gi",
      identity: "op",
      leaseName: "cr8tor-operator",
      leaseSeconds: 5,
      resyncMs: 60_000,
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      log: createLogger("operator", (line) => w.logs.push(line)),
      schedule: {
        sources: new HttpSources({
          sources: parseHttpFileSources(sourcesText),
          registry: new MemoryFileRegistry(),
          client: new NodeHttpFileClient(),
          now: () => now,
        }),
        runner,
        tickMs: 3_600_000,
      },
    });
    try {
      await operator.start();
      await until(() => operator.leader, "the Lease");
      assert.equal(await operator.scheduleTick(), "ran");
      const [run] = (await w.store.list({ limit: 10 })).runs;
      assert.equal(run?.action, "fetch");
      const settled = await until(async () => {
        const r = await w.store.get(run!.id);
        return r !== undefined && r.state !== "queued" && r.state !== "running" ? r : undefined;
      }, "the fetch run to end");
      assert.equal(settled.state, "succeeded", JSON.stringify(settled.outcome));
      assert.equal(w.kubelet.started.length, 1);
      const folder = join(
        storage,
        "staging",
        "Pr042",
        "20261207_010000",
        "data",
        "outputs",
        "weekly",
      );
      assert.equal(await readFile(join(folder, "a.csv"), "utf8"), "id\n1\n");
      assert.equal(await readFile(join(folder, "b.csv"), "utf8"), "id\n2\n");
      // The next look at the same slot starts nothing.
      assert.equal(await operator.scheduleTick(), "ran");
      assert.equal((await w.store.list({ limit: 10 })).runs.length, 1);
    } finally {
      await operator.stop();
      remote.close();
      await runner.close();
      await w.cleanup();
    }
  },
});

Deno.test({
  name:
    "operator process: with UPLOAD_QUARANTINE_PATH an Uploaded resource gets its data source in the quarantine folder",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const w = await world();
    const quarantine = join(w.dir, "quarantine");
    const policyFile = join(w.dir, "policy.json");
    await writeFile(policyFile, JSON.stringify(DEMO_APPROVAL_POLICY));
    const sourcesFile = join(w.dir, "http-sources.json");
    await writeFile(
      sourcesFile,
      JSON.stringify({
        sources: [{
          name: "weekly",
          urls: ["https://files.example.org/a.csv"],
          destination: "LSC",
          project_name: "Pr042",
          schedule: "0 3 * * *",
        }],
      }),
    );
    const operator = await startService("operator", {
      ...w.runStoreEnv,
      KUBECONFIG: w.kubeconfig,
      WATCH_NAMESPACE: NS,
      SECRETS_MNT_PATH: w.secrets,
      ALLOWED_SOURCES_FILE: w.allowList,
      RUN_JOB_TEMPLATE_FILE: w.templateFile,
      LEADER_ELECTION_LEASE_SECONDS: "2",
      OPERATOR_RESYNC_SECONDS: "1",
      UPLOAD_QUARANTINE_PATH: quarantine,
      APPROVAL_POLICY_FILE: policyFile,
      HTTP_SOURCE_SCHEDULER: "operator",
      HTTP_FILE_SOURCES_FILE: sourcesFile,
      HTTP_SOURCE_JOB_TEMPLATE_FILE: w.templateFile,
    });
    const crd = {
      group: DATASOURCE_API.group,
      version: "v1",
      plural: DATASOURCE_API.plural,
      namespace: NS,
    };
    try {
      const starting = operator.logs.map((l) => JSON.parse(l)).find((l) =>
        l.event === "operator_starting"
      );
      assert.equal(starting?.uploads, true);
      assert.equal(starting?.schedules, true);
      const created = w.api.put({ ...crd, name: "survey" }, {
        apiVersion: "xlscsde.nhs.uk/v1",
        kind: "AnalyticsWorkspaceDataSource",
        metadata: { name: "survey" },
        spec: {
          type: "Uploaded",
          project: { id: "Survey 2024" },
          upload: {
            destination: "LSC",
            uploader: { id: "rita", issuer: "https://idp.example/realms/sde", name: "Rita" },
          },
        },
      });
      const status = await until(
        () => w.api.get({ ...crd, name: "survey" })?.status?.reason === "WAITING_FOR_FILES",
        "the data source",
      ).then(() => w.api.get({ ...crd, name: "survey" })!.status);
      const id = created.metadata.uid.replaceAll("-", "");
      assert.equal(status.uploadId, id);
      const source = JSON.parse(await readFile(join(quarantine, "sources", `${id}.json`), "utf8"));
      assert.equal(source.project_name, "Survey 2024");
      assert.deepEqual(source.owner, {
        id: "rita",
        issuer: "https://idp.example/realms/sde",
        name: "Rita",
      });
      assert.equal((await Deno.stat(quarantine)).mode! & 0o777, 0o700);
    } finally {
      await operator.stop();
      await w.cleanup();
    }
  },
});
