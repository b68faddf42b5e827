/**
 * `Uploaded` resources: the operator against the fake Kubernetes API (driven by the real
 * `@kubernetes/client-node`) and the approval service's dashboard app, sharing one quarantine area. The
 * operator makes the data source the dashboard would, the uploader uploads into it with tus, marks it
 * ready, and the release goes through the gates to a published bag, while the resource's status follows.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";
import { kubeApi } from "../../adapters/kubernetes/kube_api.ts";
import { KubernetesRunExecutor } from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import { OidcLogin } from "../../adapters/oidc/oidc_login.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { runFolder } from "../../domain/staging_layout.ts";
import { DEFAULT_UPLOAD_TYPES } from "../../domain/upload_files.ts";
import {
  DATASOURCE_API,
  DATASOURCE_FINALIZER,
  DEFAULT_REQUIRED_APPROVAL_TYPES,
} from "../../domain/workspace_datasource.ts";
import { FakeWorld } from "../../tests/support/apps.ts";
import { DashboardClient } from "../../tests/support/dashboard_sign_in.ts";
import {
  type FakeKubernetes,
  type KubeObject,
  startFakeKubernetes,
} from "../../tests/support/fake_kubernetes.ts";
import { startKeyServer, TEST_AUDIENCE } from "../../tests/support/identity_providers.ts";
import {
  DEMO_APPROVAL_POLICY,
  DEMO_UI_CLIENT_ID,
  startDemoIdentityProvider,
} from "../../tools/demo_identity_provider.ts";
import { readKeySet, verifyRelease } from "../../tools/verify_release.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import { createLogger } from "../_shared/log.ts";
import { personVerifierFromEnv } from "../_shared/person_verifier_from_env.ts";
import { TUS_PATH } from "../approval/ui/uploads.tsx";
import { DataSourceOperator } from "./operator.ts";

const NS = "jupyterhub";
const BASE = "http://127.0.0.1:8000";
const crd = {
  group: DATASOURCE_API.group,
  version: "v1",
  plural: DATASOURCE_API.plural,
  namespace: NS,
};
const CSV = new TextEncoder().encode("id,name,score\n1,Ann,2.5\n2,Bob,3\n3,Cy,\n");

/** The approval service's dashboard with uploads, and the operator, over one quarantine area. */
async function setUp(options: { uploads?: boolean } = {}) {
  const idp = await startDemoIdentityProvider({ redirectUris: [`${BASE}/ui/callback`] });
  const keys = await startKeyServer();
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: keys.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
  });
  assert.ok(verifier);
  const root = await Deno.makeTempDir({ prefix: "operator-uploads-" });
  const quarantine = await UploadQuarantine.open(join(root, "q"));
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  world.quarantine = quarantine;
  const policy = parseApprovalPolicy(DEMO_APPROVAL_POLICY);
  const app = world.approvalApp({
    gates: { policy, store: new MemoryReleaseStore(), verifier },
    dashboard: {
      login: new OidcLogin({
        issuerUrl: idp.issuer,
        clientId: DEMO_UI_CLIENT_ID,
        redirectUri: `${BASE}/ui/callback`,
      }),
      baseUrl: BASE,
      sessionTtlMs: 60 * 60_000,
      operatorRoles: ["operator"],
      uploads: {
        quarantine,
        limits: {
          maxFileBytes: 1000,
          maxTotalBytes: 1500,
          maxFiles: 3,
          types: DEFAULT_UPLOAD_TYPES,
        },
        destinations: ["LSC"],
      },
    },
  });
  const kube: FakeKubernetes = await startFakeKubernetes({ maxWatchSeconds: 2 });
  const logs: string[] = [];
  const api = kubeApi(kube.kubeconfig(NS));
  const operators: DataSourceOperator[] = [];
  /** Starts an operator replica, with or without uploads. */
  const startOperator = async (uploads: boolean) => {
    const operator = new DataSourceOperator({
      api,
      namespace: NS,
      store: new MemoryRunStore(),
      executor: new KubernetesRunExecutor({ api, namespace: NS }),
      policy: {
        requiredApprovalTypes: [...DEFAULT_REQUIRED_APPROVAL_TYPES],
        allowedSources: new AllowedSources([]),
      },
      storageClass: "jupyter-default",
      volumeSize: "1Gi",
      identity: `op-${operators.length + 1}`,
      leaseName: "cr8tor-operator",
      leaseSeconds: 2,
      resyncMs: 60_000,
      outcomeOfError: (e) => errorOutcome(e, { detailPrefix: "Operator: " }),
      log: createLogger("operator", (line) => logs.push(line)),
      retryMs: 100,
      followMs: 200,
      watchSeconds: 1,
      ...(uploads
        ? { uploads: { sources: quarantine, policy: { destinations: ["LSC"] }, pollMs: 100 } }
        : {}),
    });
    await operator.start();
    operators.push(operator);
    return operator;
  };
  const operator = await startOperator(options.uploads !== false);

  const get = (name: string): KubeObject | undefined => kube.get({ ...crd, name });
  const until = async <T>(check: () => T | undefined | false, what: string, ms = 15_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}; logs:\n${logs.slice(-15).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return {
    app,
    world,
    quarantine,
    root,
    kube,
    api,
    logs,
    operator,
    startOperator,
    idp,
    get,
    until,
    client: () => new DashboardClient(app, BASE),
    create: (name: string, spec: KubeObject = {}) =>
      kube.put({ ...crd, name }, {
        apiVersion: "xlscsde.nhs.uk/v1",
        kind: "AnalyticsWorkspaceDataSource",
        metadata: { name },
        spec: {
          type: "Uploaded",
          project: { id: "Survey 2024" },
          displayName: "Survey",
          upload: {
            destination: "LSC",
            uploader: { id: "rita", issuer: idp.issuer, name: "Rita" },
          },
          ...spec,
        },
      }),
    /** The status once its reason is `reason` for the current generation. */
    reason: (name: string, reason: string) =>
      until(() => {
        const r = get(name);
        return r?.status?.reason === reason &&
            r.status.observedGeneration === r.metadata.generation
          ? r.status as KubeObject
          : undefined;
      }, `${name} ${reason}`),
    async [Symbol.asyncDispose]() {
      for (const o of operators) await o.stop();
      await kube.close();
      world[Symbol.dispose]();
      await keys[Symbol.asyncDispose]();
      await idp[Symbol.asyncDispose]();
      await Deno.remove(root, { recursive: true });
    },
  };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

/** A person signed in to the dashboard, with their CSRF token. */
async function signedIn(s: Setup, login: string) {
  const client = s.client();
  const csrf = DashboardClient.csrfOf(await (await client.signIn(login)).text());
  return { client, csrf };
}

async function approve(s: Setup, login: string, id: string, action: string) {
  const { client, csrf } = await signedIn(s, login);
  const decided = await client.post(`/ui/releases/${id}/decisions`, {
    csrf,
    action,
    decision: "approve",
  });
  assert.equal(decided.status, 303, await decided.text());
}

Deno.test("operator: an Uploaded resource's data source takes files, goes through the gates, and is Completed once published", async () => {
  await using s = await setUp();
  const created = s.create("survey");
  const waiting = await s.reason("survey", "WAITING_FOR_FILES");
  const id = created.metadata.uid.replaceAll("-", "");
  assert.equal(waiting.uploadId, id);
  assert.equal(waiting.dataState, "Pending");
  assert.equal(waiting.conditions[0].status, "Unknown");
  assert.deepEqual(s.get("survey")!.metadata.finalizers, [DATASOURCE_FINALIZER]);
  const source = await s.quarantine.source(id);
  assert.equal(source?.project_name, "Survey 2024");
  assert.equal(source?.destination, "LSC");
  assert.equal(source?.state, "open");
  assert.equal(source?.owner.id, "rita");

  // The uploader finds it on the dashboard, as if she had made it there, and uploads with tus.
  const rita = await signedIn(s, "rita");
  const list = await (await rita.client.request("/ui/uploads")).text();
  assert.ok(list.includes(`/ui/uploads/${id}`), "the uploader's dashboard lists it");
  const tus = (method: string, path: string, headers: Record<string, string>, body?: BodyInit) =>
    rita.client.request(path, {
      method,
      headers: { "tus-resumable": "1.0.0", "x-csrf-token": rita.csrf, origin: BASE, ...headers },
      ...(body === undefined ? {} : { body }),
    });
  const upload = await tus("POST", TUS_PATH, {
    "upload-length": String(CSV.length),
    "upload-metadata": `filename ${btoa("survey.csv")},source ${btoa(id)}`,
  });
  assert.equal(upload.status, 201);
  const location = new URL(upload.headers.get("location") ?? "", BASE).pathname;
  const patch = (offset: number, bytes: Uint8Array) =>
    tus("PATCH", location, {
      "content-type": "application/offset+octet-stream",
      "upload-offset": String(offset),
    }, bytes as BodyInit);
  assert.equal((await patch(0, CSV.subarray(0, 10))).status, 204);
  const uploading = await s.reason("survey", "UPLOADING");
  assert.match(uploading.message, /0 of 1 file/);
  assert.equal((await patch(10, CSV.subarray(10))).status, 204);
  const uploaded = await s.reason("survey", "FILES_UPLOADED");
  assert.deepEqual(uploaded.files, [{
    path: "survey.csv",
    bytes: CSV.length,
    sha512: createHash("sha512").update(CSV).digest("hex"),
  }]);

  // Marked ready: its release awaits the gates.
  const page = `/ui/uploads/${id}`;
  assert.equal((await rita.client.post(`${page}/ready`, { csrf: rita.csrf })).status, 303);
  const ready = await s.reason("survey", "AWAITING_APPROVAL");
  const releaseId = (await s.quarantine.source(id))!.release_id!;
  assert.equal(ready.releaseId, releaseId);
  await approve(s, "igor", releaseId, "sign_off|INFORMATION_GOVERNANCE");
  await approve(s, "dana", releaseId, "sign_off|DATA_ENGINEER");
  const staged = await rita.client.post(`${page}/stage`, { csrf: rita.csrf });
  assert.equal(staged.status, 303, await staged.text());
  const awaiting = await s.reason("survey", "AWAITING_PUBLICATION");
  assert.equal(awaiting.dataState, "Running");
  await approve(s, "olive", releaseId, "disclosure|OUTPUT_CHECKER");
  await approve(s, "oscar", releaseId, "disclosure|OUTPUT_CHECKER");
  const published = await rita.client.post(`${page}/publish`, { csrf: rita.csrf });
  assert.equal(published.status, 303, await published.text());
  const done = await s.reason("survey", "PUBLISHED");
  assert.equal(done.dataState, "Completed");
  assert.equal(done.conditions[0].status, "True");
  assert.equal(done.releaseId, releaseId);

  // The same publish path as the dashboard's: a bag that verify-release accepts.
  const run = { project: "Survey 2024", startTime: source!.project_start_time };
  const bag = join(s.world.base, runFolder("production", run));
  assert.deepEqual(await Deno.readFile(join(bag, "data", "outputs", "uploads", "survey.csv")), CSV);
  const keys = await (await s.world.publishApp().request("/.well-known/release-keys")).text();
  const keyFile = join(s.root, "keys.json");
  await Deno.writeTextFile(keyFile, keys);
  const checks = await verifyRelease(bag, await readKeySet(keyFile));
  assert.deepEqual(checks.filter((c) => c.ok !== true), [], JSON.stringify(checks));

  // Deleted once published: the finalizer comes off; the published data source is kept.
  await s.api.custom.deleteNamespacedCustomObject({ ...crd, name: "survey" });
  await s.until(() => s.get("survey") === undefined, "the resource gone");
  assert.equal((await s.quarantine.source(id))?.state, "published");
  assert.ok(s.logs.some((l) => l.includes('"upload_source_kept"')));
});

Deno.test("operator: an invalid Uploaded resource is Failed with its reason, and nothing is made", async (t) => {
  await using s = await setUp();
  const cases: [string, KubeObject, string, RegExp][] = [
    [
      "noupload",
      { upload: undefined },
      "INVALID_UPLOAD",
      /upload\.destination and upload\.uploader/,
    ],
    [
      "elsewhere",
      { upload: { destination: "PROD", uploader: { id: "rita", issuer: "https://x" } } },
      "INVALID_UPLOAD",
      /Unknown destination "PROD".*expected one of LSC/,
    ],
    ["badproject", { project: { id: "../etc" } }, "INVALID_PROJECT", /project\.id/],
  ];
  for (const [name, spec, reason, message] of cases) {
    await t.step(reason, async () => {
      s.create(name, spec);
      const status = await s.reason(name, reason);
      assert.equal(status.dataState, "Failed");
      assert.equal(status.conditions[0].status, "False");
      assert.match(status.message, message);
      assert.equal(s.get(name)!.metadata.finalizers, undefined, "no finalizer");
    });
  }
  assert.deepEqual(await s.quarantine.sources(), [], "no data source was made");
  await t.step("a malformed one (the API server let it through)", async () => {
    s.create("malformed", { upload: { destination: "LSC", uploader: { id: "rita" } } });
    const status = await s.reason("malformed", "INVALID_RESOURCE");
    assert.match(status.message, /issuer/);
  });
});

Deno.test("operator: an Uploaded data source whose spec changes, or that vanishes, is Failed; deleting an open one removes it and its files", async () => {
  await using s = await setUp();
  const created = s.create("changing");
  await s.reason("changing", "WAITING_FOR_FILES");
  const id = created.metadata.uid.replaceAll("-", "");
  // A file arrives through the script's route: its bytes are in the quarantine area.
  const rita = await signedIn(s, "rita");
  const upload = await rita.client.request(TUS_PATH, {
    method: "POST",
    headers: {
      "tus-resumable": "1.0.0",
      "x-csrf-token": rita.csrf,
      origin: BASE,
      "upload-length": String(CSV.length),
      "content-type": "application/offset+octet-stream",
      "upload-metadata": `filename ${btoa("a.csv")},source ${btoa(id)}`,
    },
    body: CSV,
  });
  assert.equal(upload.status, 201);
  await s.reason("changing", "FILES_UPLOADED");

  // Project, destination and uploader are fixed once the data source exists.
  const current = s.get("changing")!;
  s.kube.put({ ...crd, name: "changing" }, {
    ...current,
    spec: { ...current.spec, project: { id: "Other" } },
    metadata: { ...current.metadata, generation: 2 },
  });
  const changed = await s.reason("changing", "UPLOAD_SPEC_CHANGED");
  assert.match(changed.message, /project\.id cannot change/);
  assert.equal((await s.quarantine.source(id))?.project_name, "Survey 2024", "left as it was");

  // Deleting it: the open data source and its files are removed, then the finalizer.
  const [file] = await s.quarantine.files(id);
  await s.api.custom.deleteNamespacedCustomObject({ ...crd, name: "changing" });
  await s.until(() => s.get("changing") === undefined, "the resource gone");
  assert.equal(await s.quarantine.source(id), undefined);
  assert.deepEqual(await s.quarantine.files(id), []);
  await assert.rejects(Deno.stat(s.quarantine.pathOf(file!.id)), Deno.errors.NotFound);

  // A data source removed behind the operator's back is not made again silently.
  const other = s.create("vanishing");
  await s.reason("vanishing", "WAITING_FOR_FILES");
  await s.quarantine.removeSource(other.metadata.uid.replaceAll("-", ""));
  const missing = await s.reason("vanishing", "UPLOAD_SOURCE_MISSING");
  assert.equal(missing.dataState, "Failed");
});

Deno.test("operator: without an upload quarantine, Uploaded resources are NotSupported until an operator with one takes over", async () => {
  await using s = await setUp({ uploads: false });
  s.create("survey");
  const status = await s.reason("survey", "UPLOADED_NOT_SUPPORTED");
  assert.equal(status.dataState, "NotSupported");
  assert.deepEqual(await s.quarantine.sources(), []);
  // Uploads turned on (a new operator, the same generation): the resource is acted on.
  await s.operator.stop();
  await s.startOperator(true);
  const waiting = await s.reason("survey", "WAITING_FOR_FILES");
  assert.equal((await s.quarantine.sources()).length, 1);
  assert.equal(waiting.observedGeneration, 1);
});
