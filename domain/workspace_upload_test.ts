import assert from "node:assert/strict";
import { newUploadedDataSource, type UploadedDataSource } from "./upload_files.ts";
import type { DataSourceResource } from "./workspace_datasource.ts";
import {
  planUpload,
  type QuarantinedFileView,
  UPLOAD_REASON_CODES,
  uploadSourceIdOf,
  uploadSpecChange,
  uploadStatusOf,
} from "./workspace_upload.ts";

const UID = "0b6c1f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const policy = { destinations: ["LSC", "WORKSPACE"] };

function resource(spec: Partial<DataSourceResource["spec"]> = {}): DataSourceResource {
  return {
    apiVersion: "xlscsde.nhs.uk/v1",
    kind: "AnalyticsWorkspaceDataSource",
    metadata: {
      name: "survey",
      namespace: "jupyterhub",
      uid: UID,
      generation: 1,
      creationTimestamp: "2026-12-06T10:11:12Z",
    },
    spec: {
      type: "Uploaded",
      project: { id: "Survey 2024" },
      upload: {
        destination: "LSC",
        uploader: { id: "rita-sub", issuer: "https://idp.example/realms/sde", name: "Rita" },
      },
      ...spec,
    },
  };
}

Deno.test("planUpload() asks for the dashboard's data source, with the uid as its id", () => {
  const planned = planUpload(resource(), policy);
  assert.ok(!("reason" in planned));
  assert.deepEqual(
    planned,
    newUploadedDataSource({
      id: "0b6c1f0e1c2d4e5f8a9b0c1d2e3f4a5b",
      projectName: "Survey 2024",
      destination: "LSC",
      destinations: policy.destinations,
      owner: { id: "rita-sub", issuer: "https://idp.example/realms/sde", name: "Rita" },
      at: new Date("2026-12-06T10:11:12Z"),
    }),
  );
  assert.equal(planned.project_start_time, "20261206_101112");
  assert.equal(planned.state, "open");
  assert.equal(uploadSourceIdOf(UID), planned.id);
  // The same resource always asks for the same data source (a repeated event, another replica).
  assert.deepEqual(planUpload(resource(), policy), planned);
});

Deno.test("planUpload() refuses with a precise reason", () => {
  const cases: [string, Partial<DataSourceResource["spec"]>, string, RegExp][] = [
    ["no upload", { upload: undefined }, "INVALID_UPLOAD", /upload\.destination/],
    [
      "unknown destination",
      { upload: { destination: "ELSEWHERE", uploader: { id: "r", issuer: "i" } } },
      "INVALID_UPLOAD",
      /"ELSEWHERE".*LSC, WORKSPACE/,
    ],
    ["no project", { project: undefined }, "INVALID_PROJECT", /project\.id/],
    ["unsafe project", { project: { id: "../etc" } }, "INVALID_PROJECT", /project\.id/],
  ];
  for (const [what, spec, reason, message] of cases) {
    const planned = planUpload(resource(spec), policy);
    assert.ok("reason" in planned, what);
    assert.equal(planned.reason, reason, what);
    assert.match(planned.message, message, what);
  }
});

Deno.test("uploadSpecChange() names the fields that cannot change once the data source exists", () => {
  const planned = planUpload(resource(), policy) as UploadedDataSource;
  assert.equal(uploadSpecChange(planned, { ...planned, state: "ready" }), undefined);
  const changed = uploadSpecChange(planned, {
    ...planned,
    destination: "WORKSPACE",
    owner: { ...planned.owner, issuer: "https://other" },
  });
  assert.equal(changed?.reason, "UPLOAD_SPEC_CHANGED");
  assert.match(changed!.message, /upload\.destination, upload\.uploader cannot change/);
});

const file = (
  name: string,
  result: QuarantinedFileView["result"],
): QuarantinedFileView => ({ name, size: 10, offset: result === null ? 4 : 10, result });
const checked = (errors: string[] = []) => ({
  sha512: "ab".repeat(64),
  bytes: 10,
  refusal: null,
  checks: { errors, warnings: [], columns: [] },
});

Deno.test("uploadStatusOf() follows the data source from waiting for files to published", () => {
  const source = planUpload(resource(), policy) as UploadedDataSource;
  const cases: [string, UploadedDataSource, QuarantinedFileView[], string, string][] = [
    ["nothing yet", source, [], "Pending", "WAITING_FOR_FILES"],
    ["arriving", source, [file("a.csv", checked()), file("b.csv", null)], "Pending", "UPLOADING"],
    ["all in", source, [file("a.csv", checked())], "Pending", "FILES_UPLOADED"],
    [
      "a check error",
      source,
      [file("a.csv", checked(["Line 3 has 2 fields"]))],
      "Failed",
      "FILE_CHECKS_FAILED",
    ],
    [
      "a refused file",
      source,
      [file("a.csv", { ...checked(), refusal: "An executable" })],
      "Failed",
      "FILE_CHECKS_FAILED",
    ],
    [
      "ready",
      { ...source, state: "ready", release_id: "rel-1" },
      [file("a.csv", checked())],
      "Pending",
      "AWAITING_APPROVAL",
    ],
    [
      "staged",
      { ...source, state: "staged", release_id: "rel-1" },
      [file("a.csv", checked())],
      "Running",
      "AWAITING_PUBLICATION",
    ],
    [
      "published",
      { ...source, state: "published", release_id: "rel-1" },
      [file("a.csv", checked())],
      "Completed",
      "PUBLISHED",
    ],
  ];
  const seen = new Set<string>();
  for (const [what, s, files, state, reason] of cases) {
    const status = uploadStatusOf(s, files);
    assert.equal(status.dataState, state, what);
    assert.equal(status.reason, reason, what);
    assert.equal(status.uploadId, source.id, what);
    assert.ok((status.message ?? "").length > 0, what);
    seen.add(reason);
  }
  const published = uploadStatusOf(
    { ...source, state: "published", release_id: "rel-1" },
    [file("b.csv", checked()), file("a.csv", checked())],
  );
  assert.equal(published.releaseId, "rel-1");
  assert.deepEqual(published.files?.map((f) => f.path), ["a.csv", "b.csv"]);
  assert.match(
    uploadStatusOf(source, [file("a.csv", checked(["Line 3 has 2 fields"]))]).message ?? "",
    /a\.csv failed its checks: Line 3 has 2 fields/,
  );
  // Every status reason is reached here or by planUpload/uploadSpecChange, but the operator's own
  // (uploads off, a data source gone).
  for (const r of ["INVALID_UPLOAD", "INVALID_PROJECT", "UPLOAD_SPEC_CHANGED"]) seen.add(r);
  assert.deepEqual(UPLOAD_REASON_CODES.filter((c) => !seen.has(c)), [
    "UPLOADED_NOT_SUPPORTED",
    "UPLOAD_SOURCE_MISSING",
  ]);
});
