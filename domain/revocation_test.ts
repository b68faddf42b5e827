import assert from "node:assert/strict";
import {
  deletionCertificate,
  parseRevocationEntryName,
  PublishServiceRevokeRequest,
  revocationEntryName,
  type RevocationItem,
} from "./revocation.ts";

const REQUEST = PublishServiceRevokeRequest.parse({
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  destination: { type: "filestore", name: "LSC", format: "csv" },
  release_id: "rel-1",
  reason: "  Consent withdrawn  ",
  requested_by: { kind: "person", id: "alice", issuer: "https://idp.example" },
});

Deno.test("revocationEntryName and parseRevocationEntryName name every item one way", () => {
  const items: RevocationItem[] = [
    { kind: "file", area: "production", path: "data/outputs/onc/a.csv" },
    { kind: "file", area: "staging", path: "staging-manifest.json" },
    { kind: "table", schema: "pr042_20250611_093000_onc", table: "t.with.dots" },
    { kind: "opal_resource", project: "pr042", resource: "tre_postgresql_s_t" },
    { kind: "opal_group", project: "pr042", group: "pr042_group" },
  ];
  for (const item of items) {
    assert.deepEqual(parseRevocationEntryName(revocationEntryName(item)), item);
  }
  assert.equal(revocationEntryName(items[0]!), "production/data/outputs/onc/a.csv");
  assert.equal(parseRevocationEntryName("tumour_stage"), undefined, "a package's table entry");
});

Deno.test("PublishServiceRevokeRequest trims the reason and refuses an empty or long one", () => {
  assert.equal(REQUEST.reason, "Consent withdrawn");
  for (const reason of ["", "   ", "x".repeat(2001)]) {
    assert.equal(PublishServiceRevokeRequest.safeParse({ ...REQUEST, reason }).success, false);
  }
  assert.equal(
    PublishServiceRevokeRequest.safeParse({ ...REQUEST, requested_by: { kind: "x", id: "a" } })
      .success,
    false,
  );
});

Deno.test("deletionCertificate sorts what was removed and keeps who, why and when", () => {
  const sha = (c: string) => c.repeat(128);
  const certificate = deletionCertificate(REQUEST, {
    mode: "deleted",
    files: [
      { area: "staging", path: "a.csv", sha512: sha("1"), bytes: 1 },
      { area: "production", path: "z.csv", sha512: sha("2"), bytes: 2 },
      { area: "production", path: "b.csv", sha512: sha("3"), bytes: 3 },
    ],
    tables: [{ schema: "s", table: "b", rows: 2 }, { schema: "s", table: "a", rows: 1 }],
    opal: { project: "p", resources: ["r2", "r1", "r2"], group: null },
  }, { started_at: "2026-12-07T00:00:00.000Z", removed_at: "2026-12-07T00:00:01.000Z" });
  assert.deepEqual(
    certificate.files.map((f) => `${f.area}/${f.path}`),
    ["production/b.csv", "production/z.csv", "staging/a.csv"],
  );
  assert.deepEqual(certificate.tables.map((t) => t.table), ["a", "b"]);
  assert.deepEqual(certificate.opal?.resources, ["r1", "r2"]);
  assert.deepEqual(certificate.destination, { type: "filestore", name: "LSC" });
  assert.deepEqual(certificate.requested_by, {
    kind: "person",
    id: "alice",
    issuer: "https://idp.example",
  });
  assert.throws(() =>
    deletionCertificate(REQUEST, {
      mode: "deleted",
      files: [],
      tables: [],
      opal: null,
    }, { started_at: "yesterday", removed_at: "2026-12-07T00:00:01.000Z" })
  );
});
