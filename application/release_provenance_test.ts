import assert from "node:assert/strict";
import { Ed25519ReleaseSigner } from "../adapters/crypto/ed25519_release_signer.ts";
import { MemoryRunStore } from "../adapters/memory/memory_run_store.ts";
import { MemorySecretStore } from "../adapters/memory/memory_secret_store.ts";
import { ReleaseKeyUnavailableError } from "../ports/release_signer.ts";
import { PublishServicePublishRequest } from "../domain/contract.ts";
import { newRun, type Run } from "../domain/run.ts";
import { aPublishRequest, aTransferRequest } from "../tests/support/requests.ts";
import { testReleaseSigner } from "../tests/support/release_signing.ts";
import { releaseSigning } from "./release_provenance.ts";

const STAGED_TABLES = [{
  name: "patients",
  description: "One row per patient",
  columns: [{ name: "id", datatype: "integer", description: null }],
}];

async function storedRun(
  store: MemoryRunStore,
  action: "package" | "publish",
  request: Record<string, unknown>,
  state: Run["state"],
  at: string,
): Promise<Run> {
  const run = newRun({
    action,
    project_name: request.project_name as string,
    project_start_time: request.project_start_time as string,
    dataset: { source_host: "db.internal", schema_name: "oncology", tables: null },
    destination: request.destination as Run["destination"],
    caller_key_id: "gateway-key",
    request: request as Run["request"],
  }, at);
  await store.create(run, { exclusive: false });
  const stored = await store.update(run.id, run.version, {
    state,
    started_at: at,
    finished_at: state === "running" ? null : at,
  });
  return stored;
}

Deno.test("releaseSigning gathers the succeeded package runs of the same project start and destination, never credentials", async () => {
  await using store = new MemoryRunStore();
  const packageRequest = aTransferRequest();
  const kept = await storedRun(
    store,
    "package",
    packageRequest,
    "succeeded",
    "2025-06-11T09:31:00.000Z",
  );
  await storedRun(store, "package", packageRequest, "failed", "2025-06-11T09:32:00.000Z");
  await storedRun(
    store,
    "package",
    aTransferRequest({ project_start_time: "20250612_093000" }),
    "succeeded",
    "2025-06-11T09:33:00.000Z",
  );
  await storedRun(
    store,
    "package",
    aTransferRequest({ destination: { type: "filestore", name: "OTHER", format: "csv" } }),
    "succeeded",
    "2025-06-11T09:34:00.000Z",
  );
  const request = PublishServicePublishRequest.parse(aPublishRequest({
    release: {
      id: "rel-7",
      requested_by: { kind: "key", id: "gateway-key" },
      decisions: [],
      expires_at: null,
    },
  }));
  const publish = await storedRun(store, "publish", request, "running", "2025-06-11T09:40:00.000Z");
  const signer = await testReleaseSigner();
  const signing = await releaseSigning(request, publish, {
    runs: store,
    signer,
    service: { name: "cr8tor-publisher-ts", version: "1.0.0" },
    license: { id: "CC-BY-4.0", name: "CC-BY-4.0" },
    now: () => new Date("2025-06-11T09:41:00.000Z"),
  });
  const files = [{ path: "data/outputs/oncology/patients.csv", bytes: 5, sha512: "a".repeat(128) }];
  const provenance = signing.provenance({
    files,
    datasets: [{ schema_name: "oncology", tables: STAGED_TABLES, disclosure: null }],
  });

  assert.equal(provenance.release_id, "rel-7");
  assert.deepEqual(provenance.packages.map((p) => p.run_id), [kept.id]);
  assert.deepEqual(provenance.packages[0]?.agent, { kind: "key", id: "gateway-key" });
  assert.deepEqual(provenance.publish, {
    run_id: publish.id,
    agent: { kind: "key", id: "gateway-key" },
    started_at: "2025-06-11T09:40:00.000Z",
    ended_at: "2025-06-11T09:41:00.000Z",
    status: "completed",
  });
  assert.deepEqual(provenance.source, {
    engine: "postgresql",
    host: "db.internal",
    port: 5432,
    database: "research",
  });
  assert.deepEqual(provenance.datasets, [{
    schema_name: "oncology",
    name: (packageRequest.dataset as { name?: string }).name ?? null,
    description: (packageRequest.dataset as { description?: string }).description ?? null,
    tables: STAGED_TABLES,
    disclosure: null,
  }]);
  assert.deepEqual(provenance.files, files);
  assert.deepEqual(provenance.destination, { type: "filestore", name: "LSC", format: "csv" });
  const text = JSON.stringify(provenance);
  for (const secretName of ["username_key", "password_key", "sourceuser", "sourcepassword"]) {
    assert.ok(!text.includes(secretName), `${secretName} is not in the provenance`);
  }

  const signed = await signing.sign({
    receipt_version: 1,
    release_id: provenance.release_id,
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    subject: { kind: "bagit-tagmanifest-sha512", sha512: "b".repeat(128) },
    signed_at: "2025-06-11T09:41:00.000Z",
  });
  assert.equal(signed.claims.kid, (await signer.keySet()).keys[0]?.kid);
});

Deno.test("releaseSigning refuses before anything is published when the signing key cannot be read", async () => {
  await using store = new MemoryRunStore();
  const request = PublishServicePublishRequest.parse(aPublishRequest());
  const publish = await storedRun(store, "publish", request, "running", "2025-06-11T09:40:00.000Z");
  const signer = new Ed25519ReleaseSigner({
    secrets: new MemorySecretStore({ "release-key": "not a key" }),
    keySecretName: "release-key",
  });
  await assert.rejects(
    releaseSigning(request, publish, {
      runs: store,
      signer,
      service: { name: "cr8tor-publisher-ts", version: "1.0.0" },
      license: { id: "CC-BY-4.0", name: "CC-BY-4.0" },
    }),
    ReleaseKeyUnavailableError,
  );
});
