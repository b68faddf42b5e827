import assert from "node:assert/strict";
import { newRun, type Run } from "./run.ts";
import type { DataSourceResource } from "./workspace_datasource.ts";
import {
  dataSourceCrateText,
  DataSourceDescription,
  dataSourceProvenance,
  describeDataSource,
} from "./workspace_datasource_crate.ts";

const resource: DataSourceResource = {
  apiVersion: "xlscsde.nhs.uk/v1",
  kind: "AnalyticsWorkspaceDataSource",
  metadata: {
    name: "gm",
    namespace: "jupyterhub",
    uid: "0b6c1f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    generation: 2,
    creationTimestamp: "2026-12-06T10:11:12Z",
  },
  spec: {
    type: "Import",
    publisher: { organisation: "NHS GM ICB" },
    project: { id: "d4e6" },
    displayName: "GM Attendances",
    description: "Two tables",
    license: "Testing only",
    approvals: [
      {
        type: "INFORMATION_GOVERNANCE",
        email: "ig@nhs.net",
        name: "I G",
        approvalGiven: "2026-12-01",
      },
      { type: "DATA_ENGINEER", email: "de@nhs.net" },
    ],
  },
};

function succeededRun(): Run {
  const run = newRun({
    action: "package",
    project_name: "d4e6",
    project_start_time: "20261206_101112",
    dataset: { source_host: "db", source_engine: "postgresql", schema_name: "gm", tables: null },
    destination: { type: "filestore", name: "WORKSPACE", format: "csv" },
    caller_key_id: "cr8tor-operator",
    request: {
      source: {
        type: "postgresql",
        host_url: "db.internal",
        port: 5432,
        database: "research",
        credentials: { username_key: "pguser", password_key: "pgpassword" },
      },
    },
  }, "2026-12-06T10:11:13.000Z");
  return {
    ...run,
    id: "awds-0b6c-g2",
    state: "succeeded",
    started_at: "2026-12-06T10:11:14.000Z",
    finished_at: "2026-12-06T10:11:20.000Z",
    tables: [{
      name: "patients",
      state: "done",
      rows: 40,
      bytes: 300,
      started_at: "2026-12-06T10:11:14.000Z",
      finished_at: "2026-12-06T10:11:15.000Z",
      sha512: "a".repeat(128),
      expected_rows: null,
    }],
  };
}

const files = [{ path: "data/outputs/gm/patients.csv", bytes: 300, sha512: "a".repeat(128) }];
const service = { name: "cr8tor-publish", version: "1.0.0" };

Deno.test("describeDataSource: what the Job is told, and it parses back", () => {
  const description = describeDataSource(resource);
  assert.deepEqual(
    DataSourceDescription.parse(JSON.parse(JSON.stringify(description))),
    description,
  );
  assert.equal(description.approvals[1]!.name, null);
});

Deno.test("dataSourceProvenance: approvals become sign-offs by email, files and source kept, no secret", () => {
  const p = dataSourceProvenance(describeDataSource(resource), succeededRun(), files, service);
  assert.equal(p.release_id, `${resource.metadata.uid}/2`);
  assert.deepEqual(p.decisions.map((d) => [d.approval_type, d.person.id, d.decision, d.at]), [
    ["INFORMATION_GOVERNANCE", "ig@nhs.net", "approve", "2026-12-01T00:00:00.000Z"],
    // No approval time: the resource's creation.
    ["DATA_ENGINEER", "de@nhs.net", "approve", "2026-12-06T10:11:12.000Z"],
  ]);
  assert.equal(p.decisions[0]!.person.issuer, "kubernetes:jupyterhub/gm");
  assert.deepEqual(p.source, {
    engine: "postgresql",
    host: "db.internal",
    port: 5432,
    database: "research",
  });
  assert.deepEqual(p.files, files);
  assert.equal(p.publish.status, "completed");
  assert.equal(p.license.name, "Testing only");
  const text = dataSourceCrateText(describeDataSource(resource), succeededRun(), files, service);
  const crate = JSON.parse(text);
  const file = (crate["@graph"] as Record<string, unknown>[]).find((e) => e["@type"] === "File");
  assert.equal(file!["@id"], "data/outputs/gm/patients.csv");
  assert.ok(!text.includes("pgpassword") && !text.includes("pguser"), "no secret names either");
});
