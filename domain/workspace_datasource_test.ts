import assert from "node:assert/strict";
import { AllowedSources } from "./allowed_sources.ts";
import {
  approvalProblem,
  dataSourceNames,
  type DataSourceResource,
  DEFAULT_REQUIRED_APPROVAL_TYPES,
  planImport,
  projectStartTimeOf,
  REASON_CODES,
} from "./workspace_datasource.ts";

const allowed = new AllowedSources([{
  type: "postgresql",
  host: "db.internal",
  port: 5432,
  database: "research",
  credentials: [{ username: "pguser", password: "pgpassword" }],
}, {
  type: "databrickssql",
  host: "adb-1.azuredatabricks.net",
  port: 443,
  http_path: "/sql/1.0/warehouses/abc",
  credentials: [{ client_id: "spnid", client_secret: "spnsecret" }],
}]);
const policy = {
  requiredApprovalTypes: [...DEFAULT_REQUIRED_APPROVAL_TYPES],
  allowedSources: allowed,
};

function resource(spec: Partial<DataSourceResource["spec"]> = {}): DataSourceResource {
  return {
    apiVersion: "xlscsde.nhs.uk/v1",
    kind: "AnalyticsWorkspaceDataSource",
    metadata: {
      name: "ds",
      namespace: "jupyterhub",
      uid: "0b6c1f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
      generation: 3,
      creationTimestamp: "2026-12-06T10:11:12Z",
    },
    spec: {
      type: "Import",
      project: { id: "d4e6" },
      displayName: "Attendances",
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
        { type: "INFORMATION_GOVERNANCE", email: "ig@nhs.net" },
        { type: "data_engineer", email: "de@nhs.net" },
      ],
      ...spec,
    },
  };
}

Deno.test("planImport: an approved, allow-listed Import becomes one package request", () => {
  const plan = planImport(resource(), policy);
  assert.ok("request" in plan, JSON.stringify(plan));
  assert.equal(plan.request.project_name, "d4e6");
  assert.equal(plan.request.project_start_time, "20261206_101112");
  assert.deepEqual(plan.request.destination, {
    type: "filestore",
    name: "WORKSPACE",
    format: "csv",
  });
  assert.deepEqual(plan.request.source, {
    type: "postgresql",
    host_url: "db.internal",
    port: 5432,
    database: "research",
    credentials: { username_key: "pguser", password_key: "pgpassword" },
  });
  assert.deepEqual(plan.request.dataset.tables?.map((t) => t.name), ["patients", "attendances"]);
});

Deno.test("planImport: a Databricks connection maps to the allow-listed warehouse", () => {
  const plan = planImport(
    resource({
      connections: [{
        type: "databricks",
        name: "databricks",
        url: "https://adb-1.azuredatabricks.net/sql/1.0/warehouses/abc",
        catalog: "main",
        credentials: { userKey: "spnid", passwordKey: "spnsecret" },
      }],
      objects: [{ table: { name: "patients", schema: "gm", connection: "databricks" } }],
    }),
    policy,
  );
  assert.ok("request" in plan, JSON.stringify(plan));
  assert.equal(plan.request.source.type, "databrickssql");
});

/** Each way a resource is refused, and the reason code it gets. */
const REFUSALS: [string, Partial<DataSourceResource["spec"]>, string][] = [
  ["Uploaded", { type: "Uploaded" }, "UPLOADED_NOT_SUPPORTED"],
  ["no approvals", { approvals: [] }, "AWAITING_APPROVAL"],
  ["approval without email", { approvals: [{ type: "DATA_ENGINEER" }] }, "INVALID_APPROVAL"],
  ["approval without type", { approvals: [{ email: "a@b" }] }, "INVALID_APPROVAL"],
  [
    "one type missing",
    { approvals: [{ type: "DATA_ENGINEER", email: "de@nhs.net" }] },
    "MISSING_APPROVALS",
  ],
  [
    "one person twice",
    {
      approvals: [
        { type: "information_governance", email: "John@some.org" },
        { type: "data_engineer", email: "john@some.org" },
      ],
    },
    "DUPLICATE_APPROVER",
  ],
  ["bad project", { project: { id: "../etc" } }, "INVALID_PROJECT"],
  ["no project", { project: {} }, "INVALID_PROJECT"],
  ["no connections", { connections: [] }, "NO_CONNECTIONS"],
  ["no objects", { objects: [] }, "NO_OBJECTS"],
  [
    "unknown connection",
    { objects: [{ table: { name: "t", schema: "public", connection: "other" } }] },
    "UNKNOWN_CONNECTION",
  ],
  [
    "unknown type",
    {
      connections: [{
        type: "oracle",
        name: "pg",
        url: "oracle://x/y",
        credentials: { userKey: "a", passwordKey: "b" },
      }],
    },
    "UNRECOGNISED_CONNECTION_TYPE",
  ],
  [
    "credentials in the url",
    {
      connections: [{
        type: "postgresql",
        name: "pg",
        url: "postgresql://u:p@db.internal/research",
        credentials: { userKey: "pguser", passwordKey: "pgpassword" },
      }],
    },
    "INVALID_CONNECTION",
  ],
  [
    "no secret names",
    { connections: [{ type: "postgresql", name: "pg", url: "postgresql://db.internal/research" }] },
    "INVALID_CONNECTION",
  ],
  [
    "no schema",
    { objects: [{ table: { name: "t", connection: "pg" } }] },
    "INVALID_OBJECT",
  ],
  [
    "two schemas",
    {
      objects: [
        { table: { name: "a", schema: "one", connection: "pg" } },
        { table: { name: "b", schema: "two", connection: "pg" } },
      ],
    },
    "MULTIPLE_SOURCES",
  ],
  [
    "host not listed",
    {
      connections: [{
        type: "postgresql",
        name: "pg",
        url: "postgresql://elsewhere.internal/research",
        credentials: { userKey: "pguser", passwordKey: "pgpassword" },
      }],
    },
    "SOURCE_NOT_ALLOWED",
  ],
  [
    "secrets in swapped roles",
    {
      connections: [{
        type: "postgresql",
        name: "pg",
        url: "postgresql://db.internal/research",
        credentials: { userKey: "pgpassword", passwordKey: "pguser" },
      }],
    },
    "SOURCE_NOT_ALLOWED",
  ],
  [
    "system schema",
    { objects: [{ table: { name: "pg_authid", schema: "pg_catalog", connection: "pg" } }] },
    "SOURCE_NOT_ALLOWED",
  ],
];

Deno.test("planImport: every refusal has its precise reason code", () => {
  const seen = new Set<string>();
  for (const [what, spec, reason] of REFUSALS) {
    const plan = planImport(resource(spec), policy);
    assert.ok("reason" in plan, `${what}: not refused`);
    assert.equal(plan.reason, reason, `${what}: ${plan.message}`);
    assert.ok(!plan.message.includes("pgpassword") || what === "secrets in swapped roles", what);
    seen.add(reason);
  }
  // Every code but INVALID_RESOURCE (the operator's, for a resource its schema refuses) is reachable.
  assert.deepEqual([...REASON_CODES].filter((c) => !seen.has(c)), ["INVALID_RESOURCE"]);
});

Deno.test("approvalProblem: required types are compared without case; other types do not count", () => {
  assert.equal(
    approvalProblem([{ type: "Data_Engineer", email: "a@x" }, {
      type: "information_governance",
      email: "b@x",
    }], [
      "INFORMATION_GOVERNANCE",
      "DATA_ENGINEER",
    ]),
    undefined,
  );
  assert.equal(
    approvalProblem([{ type: "OTHER", email: "a@x" }, { type: "DATA_ENGINEER", email: "a@x" }], [
      "DATA_ENGINEER",
    ]),
    undefined,
  );
});

Deno.test("dataSourceNames: deterministic from uid and generation, valid Kubernetes names", () => {
  const uid = "0B6C1F0E-1C2D-4E5F-8A9B-0C1D2E3F4A5B";
  const a = dataSourceNames(uid, 1);
  assert.deepEqual(a, dataSourceNames(uid.toLowerCase(), 1));
  assert.notEqual(a.job, dataSourceNames(uid, 2).job);
  assert.equal(a.volumeClaim, dataSourceNames(uid, 2).volumeClaim);
  for (const name of Object.values(a)) {
    assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.ok(name.length <= 63, name);
  }
  assert.equal(projectStartTimeOf("2026-01-02T03:04:05Z"), "20260102_030405");
});
