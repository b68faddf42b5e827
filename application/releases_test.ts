import assert from "node:assert/strict";
import { MemoryReleaseStore } from "../adapters/memory/memory_release_store.ts";
import { parseApprovalPolicy } from "../domain/approval_policy.ts";
import { DataContractTransferRequest } from "../domain/contract.ts";
import {
  type DecidingPerson,
  newRelease,
  releaseRequestOf,
  ReleaseRevokedError,
  startRevocation,
} from "../domain/release.ts";
import type { ReleaseRun, StagingInspector } from "../ports/staging_inspector.ts";
import {
  ApprovalRequiredError,
  type DecisionAttempt,
  ReleaseRejectedError,
  Releases,
} from "./releases.ts";

const POLICY = parseApprovalPolicy({
  approval_types: {
    INFORMATION_GOVERNANCE: { roles: ["ig-approver"] },
    DATA_ENGINEER: { roles: ["data-engineer"] },
    OUTPUT_CHECKER: { roles: ["output-checker"] },
  },
  gates: [
    {
      name: "sign_off",
      before: "package",
      require: { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 },
    },
    { name: "disclosure", before: "publish", require: { OUTPUT_CHECKER: 2 } },
  ],
  approval_max_age_days: 30,
  destinations: ["LSC"],
});

const RUN: ReleaseRun = {
  project_name: "proj",
  project_start_time: "20261206_120000",
  destination: { type: "filestore", name: "LSC" },
};

const KEY = { kind: "key" as const, id: "0123456789abcdef" };
const NOW = "2026-12-06T12:00:00.000Z";

function person(id: string, roles: string[]): DecidingPerson {
  return { id, issuer: "https://idp.test", name: id, roles };
}

const ig = person("ig", ["ig-approver"]);
const de = person("de", ["data-engineer"]);
const both = person("both", ["ig-approver", "data-engineer"]);
const checkers = [1, 2, 3].map((n) => person(`oc${n}`, ["output-checker"]));

/** A publish service whose staging digest the test sets. */
class FakeStaging implements StagingInspector {
  digest: string | null = "digest-1";
  calls = 0;
  inspect(_run: ReleaseRun) {
    this.calls++;
    return Promise.resolve({
      staging_digest: this.digest,
      details: { tables: [{ table: "t", disclosure: { rows: 3 } }] },
    });
  }
}

function setUp(start = "2026-12-06T12:00:00.000Z") {
  const clock = { now: new Date(start) };
  const staging = new FakeStaging();
  const store = new MemoryReleaseStore();
  const releases = new Releases({ store, policy: POLICY, staging, now: () => clock.now });
  return { clock, staging, store, releases };
}

async function approvalRequired(promise: Promise<unknown>): Promise<ApprovalRequiredError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof ApprovalRequiredError) return e;
    throw e;
  }
  assert.fail("expected approval_required");
}

Deno.test("admit: an unmet gate is approval_required naming the release, the gate and the missing types", async () => {
  const { releases, store } = setUp();
  const e = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.equal(e.code, "approval_required");
  assert.equal(e.gate, "sign_off");
  assert.deepEqual(e.missing, { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 });
  const stored = await store.get(e.releaseId);
  assert.deepEqual(stored?.requested_by, KEY);
  // The same project run names the same release.
  const again = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.equal(again.releaseId, e.releaseId);
});

Deno.test("admit: no gate for an uncovered destination, but its release is recorded", async () => {
  const { releases, store, staging } = setUp();
  const other = { ...RUN, destination: { type: "filestore", name: "OTHER" } };
  const admission = await releases.admit("package", other, KEY);
  assert.equal(admission.staging_digest, null);
  assert.equal(admission.release.state, "open");
  assert.deepEqual(admission.release.requested_by, KEY);
  assert.deepEqual((await store.list({ limit: 10 })).releases, [admission.release]);
  assert.equal(staging.calls, 0, "nothing gated, nothing inspected");
});

Deno.test("admit: a revoking or revoked release refuses package and publish, with or without gates", async () => {
  const { store, staging, clock } = setUp();
  for (const policy of [POLICY, null]) {
    const releases = new Releases({ store, policy, staging, now: () => clock.now });
    const run = { ...RUN, project_name: policy === null ? "nopolicy" : "policy" };
    const { release } = await store.ensure(newRelease({ ...run, requested_by: KEY }, NOW));
    await store.update(
      release.id,
      (r) => startRevocation(r, { reason: "r", requested_by: KEY }, NOW),
    );
    for (const step of ["package", "publish"] as const) {
      await assert.rejects(
        releases.admit(step, run, KEY),
        (e) => e instanceof ReleaseRevokedError && e.releaseId === release.id,
      );
    }
  }
});

Deno.test("admit: once the gate is met the step is allowed; missing types shrink as people approve", async () => {
  const { releases } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, KEY));
  await releases.decide(id, ig, {
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "approve",
  });
  const e = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.deepEqual(e.missing, { DATA_ENGINEER: 1 });
  const outcome = await releases.decide(id, de, {
    gate: "sign_off",
    approval_type: "DATA_ENGINEER",
    decision: "approve",
    comment: "fine",
  });
  assert.deepEqual(outcome.gates_opened, ["sign_off"]);
  assert.equal(outcome.decision.manifest_digest, null);
  assert.match(outcome.decision.comment_sha256 ?? "", /^[0-9a-f]{64}$/);
  const admitted = await releases.admit("package", RUN, KEY);
  assert.equal(admitted.release.id, id);
  assert.equal(admitted.staging_digest, null);
});

Deno.test("publish gate: approvals bind to the staging digest; a change resets the gate", async () => {
  const { releases, staging } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("publish", RUN, KEY));
  const attempts: DecisionAttempt[] = [];
  for (const checker of checkers.slice(0, 2)) {
    await releases.decide(id, checker, {
      gate: "disclosure",
      approval_type: "OUTPUT_CHECKER",
      decision: "approve",
    }, (a) => attempts.push(a));
  }
  assert.deepEqual(attempts.map((a) => a.manifest_digest), ["digest-1", "digest-1"]);
  const admitted = await releases.admit("publish", RUN, KEY);
  assert.equal(admitted.release.id, id);
  assert.equal(admitted.staging_digest, "digest-1");

  staging.digest = "digest-2";
  const e = await approvalRequired(releases.admit("publish", RUN, KEY));
  assert.deepEqual(e.missing, { OUTPUT_CHECKER: 2 });
  const view = await releases.view(id, { kind: "person", person: checkers[0]! });
  assert.equal(view.staging?.staging_digest, "digest-2");
  assert.deepEqual(view.gates.find((g) => g.gate === "disclosure")?.met, false);
  assert.deepEqual(view.allowed_actions, [
    {
      gate: "disclosure",
      approval_type: "OUTPUT_CHECKER",
      decisions: ["approve", "reject", "request_changes"],
    },
  ]);
});

Deno.test("publish gate: nothing staged is approval_required and cannot be approved", async () => {
  const { releases, staging } = setUp();
  staging.digest = null;
  const { releaseId: id } = await approvalRequired(releases.admit("publish", RUN, KEY));
  await assert.rejects(
    releases.decide(id, checkers[0]!, {
      gate: "disclosure",
      approval_type: "OUTPUT_CHECKER",
      decision: "approve",
    }),
    { code: "nothing_staged_to_approve" },
  );
});

Deno.test("separation of duties through the use case: one person fills one type of a gate", async () => {
  const { releases } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, KEY));
  await releases.decide(id, both, {
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "approve",
  });
  await assert.rejects(
    releases.decide(id, both, {
      gate: "sign_off",
      approval_type: "DATA_ENGINEER",
      decision: "approve",
    }),
    { code: "approval_type_taken" },
  );
  const e = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.deepEqual(e.missing, { DATA_ENGINEER: 1 });
});

Deno.test("self approval: a person who requested the release cannot decide on it", async () => {
  const { releases } = setUp();
  const requester = { kind: "person" as const, id: ig.id, issuer: ig.issuer };
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, requester));
  await assert.rejects(
    releases.decide(id, ig, {
      gate: "sign_off",
      approval_type: "INFORMATION_GOVERNANCE",
      decision: "approve",
    }),
    { code: "self_approval" },
  );
  assert.deepEqual((await releases.view(id, { kind: "person", person: ig })).allowed_actions, []);
});

Deno.test("an approval older than approval_max_age_days no longer counts", async () => {
  const { releases, clock } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, KEY));
  for (const [p, type] of [[ig, "INFORMATION_GOVERNANCE"], [de, "DATA_ENGINEER"]] as const) {
    await releases.decide(id, p, { gate: "sign_off", approval_type: type, decision: "approve" });
  }
  await releases.admit("package", RUN, KEY);
  clock.now = new Date(clock.now.getTime() + 31 * 86_400_000);
  const e = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.deepEqual(e.missing, { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 });
});

Deno.test("a reject closes the release: its steps are refused for good", async () => {
  const { releases } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, KEY));
  await releases.decide(id, ig, {
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "reject",
    comment: "no",
  });
  await assert.rejects(releases.admit("package", RUN, KEY), ReleaseRejectedError);
  await assert.rejects(
    releases.decide(id, de, {
      gate: "sign_off",
      approval_type: "DATA_ENGINEER",
      decision: "approve",
    }),
    { code: "release_closed" },
  );
});

Deno.test("concurrent decisions on one store are all recorded and the gate opens once", async () => {
  const { releases, store } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("publish", RUN, KEY));
  const outcomes = await Promise.all(checkers.map((checker) =>
    releases.decide(id, checker, {
      gate: "disclosure",
      approval_type: "OUTPUT_CHECKER",
      decision: "approve",
    })
  ));
  assert.equal((await store.get(id))?.decisions.length, 3);
  assert.equal(outcomes.filter((o) => o.gates_opened.includes("disclosure")).length, 1);
  await releases.admit("publish", RUN, KEY);
});

Deno.test("awaiting: open releases the person can still decide, oldest first", async () => {
  const { releases, clock } = setUp();
  const first = await approvalRequired(releases.admit("package", RUN, KEY));
  clock.now = new Date(clock.now.getTime() + 1000);
  const second = await approvalRequired(
    releases.admit("package", { ...RUN, project_name: "proj2" }, KEY),
  );
  assert.deepEqual(
    (await releases.awaiting(ig)).map((r) => r.id),
    [first.releaseId, second.releaseId],
  );
  await releases.decide(first.releaseId, ig, {
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "approve",
  });
  assert.deepEqual((await releases.awaiting(ig)).map((r) => r.id), [second.releaseId]);
  assert.deepEqual((await releases.awaiting(de)).map((r) => r.id), [
    first.releaseId,
    second.releaseId,
  ]);
  // A key sees releases but may decide nothing.
  const listed = await releases.list({ limit: 10 }, { kind: "key" });
  assert.deepEqual(listed.releases.map((r) => r.id), [second.releaseId, first.releaseId]);
  assert.ok(listed.releases.every((r) => r.allowed_actions.length === 0));
});

/** A validated package request for dataset (schema) `schema`, as the gateway gets it. */
function packageRequest(schema: string) {
  return DataContractTransferRequest.parse({
    ...RUN,
    destination: { ...RUN.destination, format: "csv" },
    source: {
      type: "postgresql",
      host_url: "db.example",
      port: 5432,
      database: "warehouse",
      credentials: { username_key: "db-user", password_key: "db-password" },
    },
    dataset: {
      name: `Dataset ${schema}`,
      schema_name: schema,
      tables: [{ name: "person", columns: [{ name: "id", description: "The person" }] }],
    },
  });
}

Deno.test("admit records the package request on the release; views show it without secret names", async () => {
  const { releases, store } = setUp();
  const { releaseId: id } = await approvalRequired(
    releases.admit("package", RUN, KEY, releaseRequestOf(packageRequest("cohort"))),
  );
  const stored = await store.get(id);
  assert.equal(stored?.request?.credentials.username_key, "db-user");
  const view = await releases.view(id, { kind: "person", person: ig });
  assert.deepEqual(view.request, {
    source: { type: "postgresql", host: "db.example", port: 5432, database: "warehouse" },
    datasets: [{
      name: "Dataset cohort",
      schema_name: "cohort",
      description: null,
      tables: [{
        name: "person",
        description: null,
        columns: [{ name: "id", description: "The person" }],
      }],
    }],
  });
  assert.doesNotMatch(JSON.stringify(view), /db-user|db-password|credentials/);
  const [body] = await releases.metadataRequests(id);
  assert.deepEqual(
    DataContractTransferRequest.parse(body).source,
    packageRequest("cohort").source,
  );
});

Deno.test("admit records every dataset a project run requests, once each, in the order asked", async () => {
  const { releases } = setUp();
  for (const schema of ["cohort", "outcomes", "cohort"]) {
    await approvalRequired(
      releases.admit("package", RUN, KEY, releaseRequestOf(packageRequest(schema))),
    );
  }
  const { releaseId: id } = await approvalRequired(releases.admit("publish", RUN, KEY));
  const view = await releases.view(id, { kind: "key" });
  assert.deepEqual(view.request?.datasets.map((d) => d.schema_name), ["cohort", "outcomes"]);
  assert.equal((await releases.metadataRequests(id)).length, 2);
});

Deno.test("a release named without a request shows none and asks the metadata service nothing", async () => {
  const { releases } = setUp();
  const { releaseId: id } = await approvalRequired(releases.admit("package", RUN, KEY));
  assert.equal((await releases.view(id, { kind: "key" })).request, null);
  assert.deepEqual(await releases.metadataRequests(id), []);
});
