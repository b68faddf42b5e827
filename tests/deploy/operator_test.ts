/**
 * The operator's manifests (`k8s/crds`, `k8s/operator`, `k8s/run-jobs`): the CRD's schema accepts the
 * airlock design's examples and refuses malformed resources (and agrees with the operator's zod schema),
 * the Deployment is hardened like the services', every variable it sets is read and documented, the
 * Roles grant exactly what the code calls, and `kubectl kustomize` renders all three when installed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv/dist/ajv.js";
import {
  defaultJobTemplate,
  readJobTemplate,
} from "../../adapters/kubernetes/kubernetes_run_executor.ts";
import { DataSourceSpec } from "../../domain/workspace_datasource.ts";
import {
  commandWorks,
  type Doc,
  kustomize,
  list,
  obj,
  parseYaml,
  readmeVariables,
  readRepoFile,
  repoPath,
} from "./_deploy.ts";
import { envOf, ofKind } from "./_kubernetes_checks.ts";

const KUBECTL = await commandWorks("kubectl", ["version", "--client"]);

async function docsOf(dir: string): Promise<Doc[]> {
  const [kustomization] = parseYaml(await readRepoFile(`${dir}/kustomization.yaml`), dir);
  const docs: Doc[] = [];
  for (const resource of list(kustomization!.resources).map(String)) {
    docs.push(...parseYaml(await readRepoFile(`${dir}/${resource}`), resource));
  }
  return docs;
}

const crd = (await docsOf("k8s/crds"))[0]!;
const version = obj(list(obj(crd.spec).versions)[0]);
const schema = obj(obj(version.schema).openAPIV3Schema);
// OpenAPI's `nullable` and `format: int64` are not JSON Schema: tolerated, not checked.
const validate = new Ajv({ strict: false, validateFormats: false }).compile(schema);

/** The airlock design's Import example (docs, lsc-sde), with the schema each table is in. */
const IMPORT = {
  apiVersion: "xlscsde.nhs.uk/v1",
  kind: "AnalyticsWorkspaceDataSource",
  metadata: { name: "example-data-source-1", labels: { "xlscsde.nhs.uk/type": "import" } },
  spec: {
    type: "Import",
    publisher: {
      organisation: "NHS Greater Manchester ICB",
      contact: { name: "Shaun Turner", role: "AWMS Developer" },
    },
    project: { id: "d4e6" },
    displayName: "NWSDE Data Engineering Team Sample Dataset - GM Attendances",
    description: "Contains two sample tables\n",
    license:
      "This sample data may ONLY be used by the NW SDE Data Engineering and Technical teams\n",
    connections: [{
      type: "databricks",
      name: "databricks",
      url: "https://example-databricks-instance.xlscsde.nhs.uk/path/to/datasource.location",
      credentials: { userKey: "DatabricksUsername", passwordKey: "DatabricksPassword" },
    }],
    objects: [
      { table: { name: "patients", schema: "gm", connection: "databricks" } },
      { table: { name: "attendances", schema: "gm", connection: "databricks" } },
    ],
    approvals: [
      {
        type: "INFORMATION_GOVERNANCE",
        name: "A",
        email: "a@nhs.net",
        approvalGiven: "2026-12-01",
      },
      { type: "DATA_ENGINEER", name: "B", email: "b@nhs.net", jobTitle: "Engineer" },
    ],
  },
};

/** The design's Uploaded example. */
const UPLOADED = {
  apiVersion: "xlscsde.nhs.uk/v1",
  kind: "AnalyticsWorkspaceDataSource",
  metadata: { name: "ds-782b4a1f07234229980f75f2f651412a" },
  spec: {
    type: "Uploaded",
    publisher: { organisation: "Some Organisation", contact: { name: "Joe Bloggs", role: "RE" } },
    project: { id: "d4e6" },
    displayName: "An uploaded example dataset",
    description: "An example dataset\n",
    license: "This sample data may ONLY be used for demos\n",
    connections: [{ type: "pvc", name: "pvc-782b4a1f07234229980f75f2f651412a" }],
  },
};

/** An Uploaded resource as this operator acts on it: its destination and uploader. */
const UPLOADED_HERE = {
  ...UPLOADED,
  metadata: { name: "survey-uploads" },
  spec: {
    ...UPLOADED.spec,
    connections: undefined,
    upload: {
      destination: "LSC",
      uploader: { id: "rita", issuer: "https://login.example.org/realms/sde", name: "Rita" },
    },
  },
};

const spec = (change: Record<string, unknown>) => ({
  ...IMPORT,
  spec: { ...IMPORT.spec, ...change },
});

const MALFORMED: [string, unknown][] = [
  ["no spec", { ...IMPORT, spec: undefined }],
  ["no type", spec({ type: undefined })],
  ["unknown type", spec({ type: "Exported" })],
  ["connections not a list", spec({ connections: { name: "x" } })],
  ["connection without a name", spec({ connections: [{ type: "postgresql" }] })],
  ["table without a connection", spec({ objects: [{ table: { name: "t" } }] })],
  ["object without a table", spec({ objects: [{ view: { name: "t" } }] })],
  ["approvals not a list", spec({ approvals: "yes" })],
  ["approval email not text", spec({ approvals: [{ type: "DATA_ENGINEER", email: 42 }] })],
  ["project id not text", spec({ project: { id: 7 } })],
  ["upload without an uploader", spec({ type: "Uploaded", upload: { destination: "LSC" } })],
  [
    "uploader without an issuer",
    spec({ type: "Uploaded", upload: { destination: "LSC", uploader: { id: "rita" } } }),
  ],
  [
    "upload destination empty",
    spec({ type: "Uploaded", upload: { destination: "", uploader: { id: "r", issuer: "i" } } }),
  ],
];

Deno.test("CRD: the design's examples are valid, malformed resources are refused, and the zod schema agrees", () => {
  assert.equal(crd.kind, "CustomResourceDefinition");
  assert.equal(obj(crd.spec).group, "xlscsde.nhs.uk");
  assert.deepEqual(obj(version.subresources).status, {});
  for (const example of [IMPORT, UPLOADED, UPLOADED_HERE]) {
    assert.ok(validate(JSON.parse(JSON.stringify(example))), JSON.stringify(validate.errors));
    assert.ok(DataSourceSpec.safeParse(example.spec).success, example.metadata.name);
  }
  for (const [what, resource] of MALFORMED) {
    const json = JSON.parse(JSON.stringify(resource));
    assert.equal(validate(json), false, `the CRD accepts a resource with ${what}`);
    if (json.spec !== undefined) {
      assert.equal(DataSourceSpec.safeParse(json.spec).success, false, `zod accepts ${what}`);
    }
  }
});

const operatorDocs = await docsOf("k8s/operator");

/** The operator Deployment's problems: hardening, probes, resources. */
function deploymentProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  const [deployment] = ofKind(docs, "Deployment");
  if (deployment === undefined) return ["no Deployment"];
  const pod = obj(obj(obj(deployment.spec).template).spec);
  const podSecurity = obj(pod.securityContext);
  if (podSecurity.runAsNonRoot !== true) problems.push("pod: runAsNonRoot");
  if (obj(podSecurity.seccompProfile).type !== "RuntimeDefault") problems.push("pod: seccomp");
  const [container] = list(pod.containers).map(obj);
  const security = obj(container!.securityContext);
  if (security.allowPrivilegeEscalation !== false) problems.push("allowPrivilegeEscalation");
  if (security.readOnlyRootFilesystem !== true) problems.push("readOnlyRootFilesystem");
  if (!list(obj(security.capabilities).drop).includes("ALL")) problems.push("capabilities");
  const env = envOf(container!);
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    const get = obj(obj(container![probe]).httpGet);
    if (get.port !== "http") problems.push(`${probe}: port`);
    if (get.path !== (probe === "readinessProbe" ? "/ready" : "/health")) problems.push(probe);
  }
  const port = list(container!.ports).map(obj).find((p) => p.name === "http");
  if (String(port?.containerPort) !== env.PORT) problems.push("PORT is not the http port");
  const resources = obj(container!.resources);
  if (obj(resources.requests).memory === undefined || obj(resources.limits).memory === undefined) {
    problems.push("resources");
  }
  return problems;
}

Deno.test("k8s/operator: the Deployment is hardened, probed and limited like the services", () => {
  assert.deepEqual(deploymentProblems(operatorDocs), []);
  for (const account of ofKind(operatorDocs, "ServiceAccount")) {
    assert.equal(
      account.automountServiceAccountToken,
      false,
      "only the operator's pods get a token",
    );
  }
});

/** Files whose code reads the operator's variables. */
async function operatorSources(): Promise<string> {
  const files = [
    "apps/operator/main.ts",
    "apps/_shared/config.ts",
    "apps/_shared/serve.ts",
    "apps/_shared/run_store_from_env.ts",
    "apps/_shared/state_store_from_env.ts",
    "apps/_shared/secret_store_from_env.ts",
    "apps/publish/run_executor_from_env.ts",
    "apps/_shared/http_source_scheduler.ts",
  ];
  return (await Promise.all(files.map(readRepoFile))).join("\n");
}

Deno.test("k8s/operator: every variable the Deployment sets is read by the operator and documented", async () => {
  const [deployment] = ofKind(operatorDocs, "Deployment");
  const container = obj(list(obj(obj(obj(deployment!.spec).template).spec).containers)[0]);
  const names = list(container.env).map((e) => String(obj(e).name));
  const documented = await readmeVariables();
  const code = await operatorSources();
  const problems: string[] = [];
  for (const name of names) {
    const read = name.startsWith("RUN_STORE_POSTGRESQL_")
      ? code.includes("postgresqlStateStoreEnv")
      : new RegExp(`\\b${name}\\b`).test(code);
    if (!read) problems.push(`${name} is not read by the operator`);
    if (!documented.has(name)) problems.push(`${name} is not in README's configuration table`);
  }
  assert.deepEqual(problems, []);
});

/** A Role's rules as `group/resource: verbs`. */
function rulesOf(docs: Doc[], name: string): Record<string, string[]> {
  const role = ofKind(docs, "Role").find((r) => obj(r.metadata).name === name);
  assert.ok(role !== undefined, `no Role ${name}`);
  const rules: Record<string, string[]> = {};
  for (const rule of list(role.rules).map(obj)) {
    for (const group of list(rule.apiGroups)) {
      for (const resource of list(rule.resources)) {
        rules[`${group}/${resource}`] = list(rule.verbs).map(String).sort();
      }
    }
  }
  return rules;
}

Deno.test("RBAC: the operator and the publish service get exactly the verbs their code uses", async () => {
  assert.deepEqual(rulesOf(operatorDocs, "cr8tor-operator"), {
    "xlscsde.nhs.uk/analyticsworkspacedatasources": ["get", "list", "patch", "watch"],
    "xlscsde.nhs.uk/analyticsworkspacedatasources/status": ["patch"],
    "batch/jobs": ["create", "delete", "get", "list", "watch"],
    "/pods": ["list"],
    "/persistentvolumeclaims": ["create", "delete"],
    "coordination.k8s.io/leases": ["create", "get", "update"],
  });
  assert.deepEqual(rulesOf(await docsOf("k8s/run-jobs"), "cr8tor-publish-run-jobs"), {
    "batch/jobs": ["create", "get"],
    "/pods": ["list"],
  });
  // No Secret access at all: the Jobs mount theirs, the operator reads only its own files.
  for (const dir of ["k8s/operator", "k8s/run-jobs"]) {
    for (const role of ofKind(await docsOf(dir), "Role")) {
      assert.ok(!JSON.stringify(role.rules).includes("secrets"), dir);
    }
  }
});

Deno.test("k8s/operator: the Job template is a hardened Job, and its allow-list is the base's", async () => {
  const template = await readJobTemplate(repoPath("k8s/operator/job-template.yaml"));
  assert.equal(template.spec?.backoffLimit, 1);
  assert.ok((template.spec?.activeDeadlineSeconds ?? 0) > 0);
  assert.ok((template.spec?.ttlSecondsAfterFinished ?? 0) > 0);
  const pod = template.spec!.template.spec!;
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.automountServiceAccountToken, false);
  const container = pod.containers[0]!;
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.ok(container.resources?.limits?.memory);
  assert.equal(
    await readRepoFile("k8s/operator/allowed-sources.json"),
    await readRepoFile("k8s/base/allowed-sources.json"),
  );
});

Deno.test({
  name: "kubectl kustomize renders k8s/crds, k8s/operator and k8s/run-jobs",
  ignore: !KUBECTL,
  fn: async () => {
    assert.equal(ofKind(await kustomize("k8s/crds"), "CustomResourceDefinition").length, 1);
    const rendered = await kustomize("k8s/operator");
    assert.deepEqual(deploymentProblems(rendered), []);
    assert.equal(ofKind(rendered, "ConfigMap").length, 3);
    assert.equal(ofKind(await kustomize("k8s/run-jobs"), "RoleBinding").length, 1);
  },
});

/** The JSON array of a Dockerfile stage's `CMD`. */
function cmdOf(dockerfile: string, stage: string): string[] {
  const body = dockerfile.split(/^FROM /m).find((s) => s.includes(` AS ${stage}\n`));
  assert.ok(body !== undefined, `no stage ${stage}`);
  const line = body.split("\n").find((l) => l.startsWith("CMD "));
  return JSON.parse(line!.slice(4));
}

Deno.test("Dockerfile: the operator image runs its start task's permissions; Jobs run the publish image's command", async () => {
  const dockerfile = await readRepoFile("Dockerfile");
  const tasks = JSON.parse(await readRepoFile("deno.json")).tasks as Record<string, string>;
  const flags = (task: string) => task.split(/\s+/).filter((a) => a.startsWith("--allow-"));
  const operator = cmdOf(dockerfile, "operator");
  assert.deepEqual(
    operator.filter((a) => a.startsWith("--allow-")),
    flags(tasks["start:operator"]!),
  );
  assert.equal(operator.at(-1), "apps/operator/main.ts");
  // Writes: only the upload quarantine's data sources (`Uploaded` resources); no native library.
  assert.ok(!operator.includes("--allow-ffi") && !operator.includes("--allow-run"));
  assert.match(dockerfile, /AS operator\nENV PORT=8004\nEXPOSE 8004\n/);
  const template = await readJobTemplate(repoPath("k8s/operator/job-template.yaml"));
  assert.deepEqual(template.spec!.template.spec!.containers[0]!.command, [
    "deno",
    ...cmdOf(dockerfile, "publish"),
  ]);
  // The template the operator uses when none is mounted runs the same command.
  assert.deepEqual(
    defaultJobTemplate().spec!.template.spec!.containers[0]!.command,
    template.spec!.template.spec!.containers[0]!.command,
  );
});
