import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type ApprovalPolicy, parseApprovalPolicy } from "./approval_policy.ts";
import {
  allowedActions,
  appendDecision,
  ApprovalTypeTakenError,
  awaitsPerson,
  canTransition,
  checkDecision,
  checkReleaseChange,
  completeRevocation,
  type DecidingPerson,
  type DecisionInput,
  EXPIRY_REQUESTER,
  gatesOpenedBy,
  gateStatus,
  InvalidReleaseTransitionError,
  isExpired,
  isPublishPending,
  metadataRequestsOf,
  newDecision,
  newRelease,
  NotEntitledError,
  NothingStagedToApproveError,
  type Release,
  ReleaseClosedError,
  releaseRequestOf,
  ReleaseRevokedError,
  releaseSchema,
  type ReleaseState,
  type Requester,
  SelfApprovalError,
  settlePendingPublish,
  startRevocation,
  UnknownApprovalTypeError,
  UnknownGateError,
  withPendingPublish,
  withPublication,
  withRequest,
} from "./release.ts";
import { DataContractTransferRequest } from "./contract.ts";

const POLICY_JSON = {
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
  separation_of_duties: true,
  approval_max_age_days: 30,
  destinations: ["LSC"],
};
const POLICY = parseApprovalPolicy(POLICY_JSON);
const NO_SOD = parseApprovalPolicy({ ...POLICY_JSON, separation_of_duties: false });
const ISSUER = "https://idp.example/realms/sde";
const NOW = "2026-12-06T12:00:00.000Z";
const DIGEST = "a".repeat(128);

function person(id: string, ...roles: string[]): DecidingPerson {
  return { id, issuer: ISSUER, name: `Person ${id}`, roles };
}

const ALICE = person("alice", "ig-approver", "data-engineer", "output-checker");
const BOB = person("bob", "data-engineer", "output-checker");
const CAROL = person("carol", "ig-approver", "output-checker");
const DAVE = person("dave", "output-checker");

function aRelease(requestedBy: Requester = { kind: "key", id: "0123456789abcdef" }): Release {
  return newRelease({
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: requestedBy,
  }, "2026-12-01T00:00:00.000Z");
}

function input(
  gate: string,
  approval_type: string,
  decision: DecisionInput["decision"] = "approve",
  manifest_digest: string | null = gate === "disclosure" ? DIGEST : null,
): DecisionInput {
  return { gate, approval_type, decision, manifest_digest, comment: "looks fine" };
}

/** `release` after `who` records `what` at `at` (default NOW), checked as the store does. */
function decide(
  release: Release,
  who: DecidingPerson,
  what: DecisionInput,
  at: string = NOW,
  policy: ApprovalPolicy = POLICY,
): Release {
  return appendDecision(release, newDecision(release, policy, who, what, at));
}

Deno.test("a new release is open, with no decisions, and meets no gate", () => {
  const release = aRelease();
  assert.equal(release.state, "open");
  assert.deepEqual(release.decisions, []);
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW), {
    gate: "sign_off",
    met: false,
    missing: { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 },
  });
});

Deno.test("a gate is met once every type has enough distinct, entitled people", () => {
  let release = decide(aRelease(), CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW).missing, {
    INFORMATION_GOVERNANCE: 0,
    DATA_ENGINEER: 1,
  });
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"));
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW), {
    gate: "sign_off",
    met: true,
    missing: { INFORMATION_GOVERNANCE: 0, DATA_ENGINEER: 0 },
  });
});

Deno.test("a decision records the person, the time, the comment's SHA-256, and no comment", () => {
  const decision = newDecision(
    aRelease(),
    POLICY,
    CAROL,
    input("sign_off", "INFORMATION_GOVERNANCE"),
    NOW,
  );
  assert.deepEqual({ ...decision, id: "x" }, {
    id: "x",
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "approve",
    person: { id: "carol", issuer: ISSUER, name: "Person carol" },
    at: NOW,
    comment_sha256: createHash("sha256").update("looks fine").digest("hex"),
    manifest_digest: null,
  });
  assert.ok(!JSON.stringify(decision).includes("looks fine"));
  const bare = newDecision(aRelease(), POLICY, CAROL, {
    ...input("sign_off", "INFORMATION_GOVERNANCE"),
    comment: undefined,
  }, NOW);
  assert.equal(bare.comment_sha256, null);
});

Deno.test("the requester never decides on their own release", () => {
  const mine = aRelease({ kind: "person", id: "alice", issuer: ISSUER });
  for (const decision of ["approve", "reject", "request_changes"] as const) {
    assert.throws(
      () => checkDecision(mine, POLICY, ALICE, input("sign_off", "DATA_ENGINEER", decision), NOW),
      SelfApprovalError,
    );
  }
  assert.deepEqual(allowedActions(mine, POLICY, ALICE, NOW, DIGEST), []);
});

Deno.test("the same id at another issuer is another person, and may approve", () => {
  const mine = aRelease({ kind: "person", id: "alice", issuer: "https://other.example" });
  checkDecision(mine, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW);
});

Deno.test("a release requested with a service key may be approved by anyone entitled", () => {
  const release = aRelease({ kind: "key", id: "alice" });
  checkDecision(release, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW);
});

Deno.test("a person may decide only as a type one of their roles gives", () => {
  assert.throws(
    () => checkDecision(aRelease(), POLICY, DAVE, input("sign_off", "DATA_ENGINEER"), NOW),
    NotEntitledError,
  );
  assert.throws(
    () =>
      checkDecision(aRelease(), POLICY, DAVE, input("sign_off", "DATA_ENGINEER", "reject"), NOW),
    NotEntitledError,
  );
});

Deno.test("an unknown gate, or a type the gate does not require, is refused", () => {
  assert.throws(
    () => checkDecision(aRelease(), POLICY, ALICE, input("nope", "DATA_ENGINEER"), NOW),
    UnknownGateError,
  );
  assert.throws(
    () => checkDecision(aRelease(), POLICY, ALICE, input("sign_off", "OUTPUT_CHECKER"), NOW),
    UnknownApprovalTypeError,
  );
  assert.throws(() => gateStatus(aRelease(), POLICY, "nope", NOW), UnknownGateError);
});

Deno.test("a policy that does not cover the release's destination has no gates for it", () => {
  const other = newRelease({
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "postgresql", name: "" },
    requested_by: { kind: "key", id: "k" },
  }, NOW);
  assert.throws(
    () => checkDecision(other, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW),
    UnknownGateError,
  );
  assert.deepEqual(allowedActions(other, POLICY, ALICE, NOW), []);
  assert.deepEqual(gatesOpenedBy(other, POLICY, NOW), []);
});

Deno.test("separation of duties: one person fills at most one approval type per gate", () => {
  const release = decide(aRelease(), ALICE, input("sign_off", "INFORMATION_GOVERNANCE"));
  assert.throws(
    () => checkDecision(release, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW),
    (e) => e instanceof ApprovalTypeTakenError && e.takenType === "INFORMATION_GOVERNANCE",
  );
  assert.deepEqual(
    allowedActions(release, POLICY, ALICE, NOW, DIGEST).find((a) =>
      a.gate === "sign_off" && a.approval_type === "DATA_ENGINEER"
    )?.decisions,
    ["reject", "request_changes"],
  );
});

Deno.test("separation of duties is per gate: one person may approve different gates", () => {
  const release = decide(aRelease(), ALICE, input("sign_off", "DATA_ENGINEER"));
  const next = decide(release, ALICE, input("disclosure", "OUTPUT_CHECKER"));
  assert.equal(next.decisions.length, 2);
});

Deno.test("without separation of duties one person may fill several types, each counted once", () => {
  let release = decide(aRelease(), ALICE, input("sign_off", "INFORMATION_GOVERNANCE"), NOW, NO_SOD);
  release = decide(release, ALICE, input("sign_off", "DATA_ENGINEER"), NOW, NO_SOD);
  assert.equal(gateStatus(release, NO_SOD, "sign_off", NOW).met, true);
  release = decide(release, ALICE, input("disclosure", "OUTPUT_CHECKER"), NOW, NO_SOD);
  release = decide(release, ALICE, input("disclosure", "OUTPUT_CHECKER"), NOW, NO_SOD);
  assert.deepEqual(gateStatus(release, NO_SOD, "disclosure", NOW, DIGEST).missing, {
    OUTPUT_CHECKER: 1,
  });
});

Deno.test("with separation of duties, approvals of two types by one person (recorded without it) count once", () => {
  let release = decide(aRelease(), ALICE, input("sign_off", "INFORMATION_GOVERNANCE"), NOW, NO_SOD);
  release = decide(release, ALICE, input("sign_off", "DATA_ENGINEER"), NOW, NO_SOD);
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW), {
    gate: "sign_off",
    met: false,
    missing: { INFORMATION_GOVERNANCE: 0, DATA_ENGINEER: 1 },
  });
});

Deno.test("a second approval by the same person for the same type counts once", () => {
  let release = decide(aRelease(), BOB, input("disclosure", "OUTPUT_CHECKER"));
  release = decide(release, BOB, input("disclosure", "OUTPUT_CHECKER"));
  assert.deepEqual(gateStatus(release, POLICY, "disclosure", NOW, DIGEST), {
    gate: "disclosure",
    met: false,
    missing: { OUTPUT_CHECKER: 1 },
  });
  release = decide(release, DAVE, input("disclosure", "OUTPUT_CHECKER"));
  assert.equal(gateStatus(release, POLICY, "disclosure", NOW, DIGEST).met, true);
});

Deno.test("a reject closes the release for good", () => {
  let release = decide(aRelease(), CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"));
  assert.equal(gateStatus(release, POLICY, "sign_off", NOW).met, true);
  release = decide(release, DAVE, input("disclosure", "OUTPUT_CHECKER", "reject"));
  assert.equal(release.state, "rejected");
  assert.equal(gateStatus(release, POLICY, "sign_off", NOW).met, false);
  assert.throws(
    () => checkDecision(release, POLICY, ALICE, input("disclosure", "OUTPUT_CHECKER"), NOW),
    ReleaseClosedError,
  );
  const late = newDecision(aRelease(), POLICY, ALICE, input("disclosure", "OUTPUT_CHECKER"), NOW);
  assert.throws(() => appendDecision(release, late), ReleaseClosedError);
  assert.deepEqual(allowedActions(release, POLICY, ALICE, NOW, DIGEST), []);
});

Deno.test("request_changes resets its gate: only approvals after it count", () => {
  let release = decide(aRelease(), CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER", "request_changes"));
  assert.equal(release.state, "open");
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW).missing, {
    INFORMATION_GOVERNANCE: 1,
    DATA_ENGINEER: 1,
  });
  release = decide(release, CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"));
  assert.equal(gateStatus(release, POLICY, "sign_off", NOW).met, true);
});

Deno.test("request_changes on one gate leaves the other gate as it was", () => {
  let release = decide(aRelease(), CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  release = decide(release, BOB, input("disclosure", "OUTPUT_CHECKER", "request_changes"));
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", NOW).missing, {
    INFORMATION_GOVERNANCE: 0,
    DATA_ENGINEER: 1,
  });
});

Deno.test("an approval older than approval_max_age_days no longer counts", () => {
  let release = decide(
    aRelease(),
    CAROL,
    input("sign_off", "INFORMATION_GOVERNANCE"),
    "2026-11-01T12:00:00.000Z",
  );
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"), "2026-11-20T12:00:00.000Z");
  assert.equal(gateStatus(release, POLICY, "sign_off", "2026-12-01T12:00:00.000Z").met, true);
  assert.deepEqual(gateStatus(release, POLICY, "sign_off", "2026-12-01T12:00:00.001Z"), {
    gate: "sign_off",
    met: false,
    missing: { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 0 },
  });
});

Deno.test("an expired approval no longer takes its type under separation of duties", () => {
  const release = decide(
    aRelease(),
    ALICE,
    input("sign_off", "INFORMATION_GOVERNANCE"),
    "2026-10-01T00:00:00.000Z",
  );
  checkDecision(release, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW);
});

Deno.test("a gate before publish counts only approvals of the current staging digest", () => {
  let release = decide(aRelease(), BOB, input("disclosure", "OUTPUT_CHECKER"));
  release = decide(release, DAVE, input("disclosure", "OUTPUT_CHECKER"));
  assert.equal(release.decisions[0]?.manifest_digest, DIGEST);
  assert.equal(gateStatus(release, POLICY, "disclosure", NOW, DIGEST).met, true);
  const changed = "b".repeat(128);
  assert.deepEqual(gateStatus(release, POLICY, "disclosure", NOW, changed), {
    gate: "disclosure",
    met: false,
    missing: { OUTPUT_CHECKER: 2 },
  });
  assert.equal(gateStatus(release, POLICY, "disclosure", NOW, null).met, false);
  assert.equal(gateStatus(release, POLICY, "disclosure", NOW).met, false);
});

Deno.test("a gate before package ignores the digest", () => {
  const decision = newDecision(aRelease(), POLICY, CAROL, {
    ...input("sign_off", "INFORMATION_GOVERNANCE"),
    manifest_digest: DIGEST,
  }, NOW);
  assert.equal(decision.manifest_digest, null);
});

Deno.test("approving a gate before publish with nothing staged is refused; rejecting is not", () => {
  assert.throws(
    () =>
      checkDecision(
        aRelease(),
        POLICY,
        BOB,
        input("disclosure", "OUTPUT_CHECKER", "approve", null),
        NOW,
      ),
    NothingStagedToApproveError,
  );
  checkDecision(
    aRelease(),
    POLICY,
    BOB,
    input("disclosure", "OUTPUT_CHECKER", "reject", null),
    NOW,
  );
});

Deno.test("allowedActions lists, per gate and type, what the person may still decide", () => {
  assert.deepEqual(allowedActions(aRelease(), POLICY, BOB, NOW, DIGEST), [
    {
      gate: "sign_off",
      approval_type: "DATA_ENGINEER",
      decisions: ["approve", "reject", "request_changes"],
    },
    {
      gate: "disclosure",
      approval_type: "OUTPUT_CHECKER",
      decisions: ["approve", "reject", "request_changes"],
    },
  ]);
  assert.deepEqual(allowedActions(aRelease(), POLICY, BOB, NOW, null)[1], {
    gate: "disclosure",
    approval_type: "OUTPUT_CHECKER",
    decisions: ["reject", "request_changes"],
  });
  assert.deepEqual(allowedActions(aRelease(), POLICY, person("eve", "visitor"), NOW), []);
});

Deno.test("a release awaits a person while a gate misses a type they may approve and have not", () => {
  let release = aRelease();
  assert.ok(awaitsPerson(release, POLICY, CAROL, NOW, DIGEST));
  release = decide(release, CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  release = decide(release, CAROL, input("disclosure", "OUTPUT_CHECKER"));
  assert.ok(!awaitsPerson(release, POLICY, CAROL, NOW, DIGEST));
  assert.ok(awaitsPerson(release, POLICY, BOB, NOW, DIGEST));
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"));
  release = decide(release, DAVE, input("disclosure", "OUTPUT_CHECKER"));
  assert.ok(!awaitsPerson(release, POLICY, BOB, NOW, DIGEST));
  assert.ok(!awaitsPerson(release, POLICY, person("eve", "visitor"), NOW, DIGEST));
});

Deno.test("gatesOpenedBy names the gate the latest decision opened, once", () => {
  let release = decide(aRelease(), CAROL, input("sign_off", "INFORMATION_GOVERNANCE"));
  assert.deepEqual(gatesOpenedBy(release, POLICY, NOW), []);
  release = decide(release, BOB, input("sign_off", "DATA_ENGINEER"));
  assert.deepEqual(gatesOpenedBy(release, POLICY, NOW), ["sign_off"]);
  release = decide(release, ALICE, input("sign_off", "DATA_ENGINEER"));
  assert.deepEqual(gatesOpenedBy(release, POLICY, NOW), []);
  assert.deepEqual(gatesOpenedBy(aRelease(), POLICY, NOW), []);
});

Deno.test("a release stored before requests were recorded reads as one without a request", () => {
  const old = {
    id: "r1",
    project_name: "proj",
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: { kind: "key", id: "k" },
    created_at: "2026-12-06T12:00:00.000Z",
    state: "open",
    decisions: [],
  };
  const release = releaseSchema.parse(old);
  assert.equal(release.request, undefined);
  assert.deepEqual(metadataRequestsOf(release), []);
  assert.equal(withRequest(release, null), undefined);
  assert.equal(release.publication, null);
  assert.equal(release.expires_at, null);
  assert.equal(release.revocation, null);
});

Deno.test("release state transitions: revoked only through revoking, and revoked is final", () => {
  const table: [ReleaseState, ReleaseState, boolean][] = [
    ["open", "open", true],
    ["open", "rejected", true],
    ["open", "revoking", true],
    ["open", "revoked", false],
    ["rejected", "rejected", true],
    ["rejected", "open", false],
    ["rejected", "revoking", true],
    ["rejected", "revoked", false],
    ["revoking", "revoking", true],
    ["revoking", "revoked", true],
    ["revoking", "open", false],
    ["revoking", "rejected", false],
    ["revoked", "revoked", true],
    ["revoked", "open", false],
    ["revoked", "rejected", false],
    ["revoked", "revoking", false],
  ];
  for (const [from, to, allowed] of table) {
    assert.equal(canTransition(from, to), allowed, `${from} -> ${to}`);
    const release = { ...aRelease(), state: from };
    if (allowed) {
      assert.equal(checkReleaseChange(release, { ...release, state: to }).state, to);
    } else {
      assert.throws(
        () => checkReleaseChange(release, { ...release, state: to }),
        InvalidReleaseTransitionError,
        `${from} -> ${to}`,
      );
    }
  }
});

const A_PUBLICATION = {
  published_at: NOW,
  receipt: { jws: "a.b.c", claims: { release_id: "r" } },
  crate: { "@graph": [] },
};

Deno.test("a revocation records who, why and when; asking again changes nothing", () => {
  const published = withPublication(aRelease(), A_PUBLICATION, "2026-12-07T12:00:00.000Z");
  assert.deepEqual(published.publication, A_PUBLICATION);
  const key = { kind: "key", id: "k" } as const;
  const revoking = startRevocation(published, { reason: "consent", requested_by: key }, NOW);
  assert.equal(revoking.state, "revoking");
  assert.deepEqual(revoking.revocation, {
    reason: "consent",
    requested_by: key,
    requested_at: NOW,
    completed_at: null,
    certificate: null,
  });
  const later = "2026-12-06T13:00:00.000Z";
  assert.deepEqual(
    startRevocation(revoking, { reason: "other", requested_by: EXPIRY_REQUESTER }, later),
    revoking,
  );
  const revoked = completeRevocation(revoking, { certificate_id: "c" }, later);
  assert.equal(revoked.state, "revoked");
  assert.equal(revoked.revocation?.completed_at, later);
  assert.deepEqual(revoked.revocation?.certificate, { certificate_id: "c" });
  assert.deepEqual(completeRevocation(revoked, { other: true }, NOW), revoked);
  assert.deepEqual(startRevocation(revoked, { reason: "x", requested_by: key }, NOW), revoked);
  assert.throws(() => completeRevocation(published, {}, NOW), InvalidReleaseTransitionError);
});

Deno.test("a revoking or revoked release takes no decision and no publication", () => {
  const revoking = startRevocation(aRelease(), {
    reason: "r",
    requested_by: EXPIRY_REQUESTER,
  }, NOW);
  for (const release of [revoking, completeRevocation(revoking, {}, NOW)]) {
    assert.throws(
      () => checkDecision(release, POLICY, ALICE, input("sign_off", "DATA_ENGINEER"), NOW),
      (e) => e instanceof ReleaseRevokedError && e.code === "release_revoked",
    );
    const decision = newDecision(
      aRelease(),
      POLICY,
      ALICE,
      input("sign_off", "DATA_ENGINEER"),
      NOW,
    );
    assert.throws(() => appendDecision(release, decision), ReleaseRevokedError);
    assert.throws(() => withPublication(release, A_PUBLICATION, null), ReleaseRevokedError);
  }
});

Deno.test("a pending publish run starts the expiry now and records its publication when it succeeds", () => {
  const expires = "2026-12-20T12:00:00.000Z";
  const pending = withPendingPublish(aRelease(), "run-1", expires, NOW);
  assert.deepEqual(pending.pending_publishes, [{ run_id: "run-1", requested_at: NOW }]);
  assert.equal(pending.expires_at, expires);
  assert.equal(pending.publication, null);
  // The same run again (an attached request) is pending once; another run is pending too.
  const later = "2026-12-06T12:05:00.000Z";
  assert.deepEqual(withPendingPublish(pending, "run-1", expires, later), pending);
  const two = withPendingPublish(pending, "run-2", expires, later);
  assert.deepEqual(two.pending_publishes.map((p) => p.run_id), ["run-1", "run-2"]);
  assert.equal(isPublishPending(two, "run-2"), true);

  const settled = settlePendingPublish(two, "run-1", {
    succeeded: true,
    publication: A_PUBLICATION,
  });
  assert.deepEqual(settled.publication, A_PUBLICATION);
  assert.equal(settled.expires_at, expires);
  assert.deepEqual(settled.pending_publishes.map((p) => p.run_id), ["run-2"]);
  // Settling again, or a run the release does not wait for, changes nothing.
  assert.deepEqual(
    settlePendingPublish(settled, "run-1", { succeeded: true, publication: null }),
    settled,
  );
  assert.deepEqual(settlePendingPublish(settled, "other", { succeeded: false }), settled);
  // A failed run drops its pending entry and keeps the publication there is.
  const failed = settlePendingPublish(settled, "run-2", { succeeded: false });
  assert.deepEqual(failed.pending_publishes, []);
  assert.deepEqual(failed.publication, A_PUBLICATION);
  // A succeeded run whose reply had no valid receipt and crate keeps the previous publication.
  const noReceipt = settlePendingPublish(
    withPendingPublish(failed, "run-3", expires, later),
    "run-3",
    { succeeded: true, publication: null },
  );
  assert.deepEqual(noReceipt.publication, A_PUBLICATION);
  assert.deepEqual(noReceipt.pending_publishes, []);
});

Deno.test("a revocation drops pending publish runs; a revoked release never gets their publication", () => {
  const pending = withPendingPublish(aRelease(), "run-1", null, NOW);
  const revoking = startRevocation(pending, { reason: "r", requested_by: EXPIRY_REQUESTER }, NOW);
  assert.deepEqual(revoking.pending_publishes, []);
  assert.throws(() => withPendingPublish(revoking, "run-2", null, NOW), ReleaseRevokedError);
  const settled = settlePendingPublish(revoking, "run-1", {
    succeeded: true,
    publication: A_PUBLICATION,
  });
  assert.equal(settled.publication, null);
  // A revoking release stored with a pending run (before revocations dropped them) only loses it.
  const stored = releaseSchema.parse({ ...revoking, pending_publishes: pending.pending_publishes });
  const dropped = settlePendingPublish(stored, "run-1", {
    succeeded: true,
    publication: A_PUBLICATION,
  });
  assert.equal(dropped.publication, null);
  assert.deepEqual(dropped.pending_publishes, []);
  assert.equal(dropped.state, "revoking");
});

Deno.test("a release stored before pending publishes were kept reads with none", () => {
  const { pending_publishes: _pending, ...old } = aRelease();
  assert.deepEqual(releaseSchema.parse(old).pending_publishes, []);
});

Deno.test("a release is expired from its expires_at on, until its revocation starts", () => {
  const release = withPublication(aRelease(), A_PUBLICATION, NOW);
  assert.equal(isExpired(release, "2026-12-06T11:59:59.999Z"), false);
  assert.equal(isExpired(release, NOW), true);
  assert.equal(isExpired(withPublication(aRelease(), A_PUBLICATION, null), NOW), false);
  const revoking = startRevocation(release, { reason: "x", requested_by: EXPIRY_REQUESTER }, NOW);
  assert.equal(isExpired(revoking, "2027-01-01T00:00:00.000Z"), false);
});

Deno.test("releaseRequestOf keeps where the data comes from and what is asked, never secrets", () => {
  const request = releaseRequestOf(DataContractTransferRequest.parse({
    project_name: "proj",
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: "LSC", format: "csv" },
    source: {
      type: "databrickssql",
      host_url: "https://adb.example",
      http_path: "/sql/1.0/warehouses/abc",
      catalog: "main",
      credentials: { spn_clientid: "spn-id", spn_secret: "spn-secret" },
    },
    dataset: { schema_name: "cohort" },
  }));
  assert.deepEqual(request.source, {
    type: "databrickssql",
    host: "https://adb.example",
    port: 443,
    database: "main",
    http_path: "/sql/1.0/warehouses/abc",
  });
  assert.deepEqual(request.datasets, [{
    name: null,
    schema_name: "cohort",
    description: null,
    tables: null,
  }]);
  const release = releaseSchema.parse({
    id: "r1",
    project_name: "proj",
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: { kind: "key", id: "k" },
    created_at: "2026-12-06T12:00:00.000Z",
    state: "open",
    decisions: [],
    request,
  });
  const [body] = metadataRequestsOf(release);
  const again = DataContractTransferRequest.parse(body);
  assert.equal(again.source.type, "databrickssql");
  assert.deepEqual(again.source.credentials, {
    spn_clientid: "spn-id",
    spn_secret: "spn-secret",
    username_key: "",
    password_key: "",
  });
  assert.equal(withRequest(release, request), undefined, "the same dataset again changes nothing");
});
