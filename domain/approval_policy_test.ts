import assert from "node:assert/strict";
import {
  gatesBefore,
  InvalidApprovalPolicyError,
  isEntitled,
  mayRevoke,
  parseApprovalPolicy,
  policyCovers,
} from "./approval_policy.ts";

/** The example policy of issue 14 and docs/approvals.md. */
const EXAMPLE = {
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
  release_expiry_days: 365,
  revocation_roles: ["data-controller"],
  destinations: ["LSC"],
};

function refusal(json: unknown): string {
  try {
    parseApprovalPolicy(json);
  } catch (e) {
    assert.ok(e instanceof InvalidApprovalPolicyError);
    assert.equal(e.code, "invalid_approval_policy");
    return e.message;
  }
  assert.fail("the policy was accepted");
}

Deno.test("the example policy parses as given", () => {
  assert.deepEqual(parseApprovalPolicy(EXAMPLE), EXAMPLE);
});

Deno.test("separation of duties is on and approvals last 30 days unless said otherwise", () => {
  const { separation_of_duties: _s, approval_max_age_days: _a, ...rest } = EXAMPLE;
  const policy = parseApprovalPolicy(rest);
  assert.equal(policy.separation_of_duties, true);
  assert.equal(policy.approval_max_age_days, 30);
});

Deno.test("releases never expire and nobody revokes unless the policy says so", () => {
  const { release_expiry_days: _e, revocation_roles: _r, ...rest } = EXAMPLE;
  const policy = parseApprovalPolicy(rest);
  assert.equal(policy.release_expiry_days, undefined);
  assert.deepEqual(policy.revocation_roles, []);
  assert.equal(mayRevoke(policy, ["data-controller"]), false);
  assert.equal(mayRevoke(parseApprovalPolicy(EXAMPLE), ["x", "data-controller"]), true);
  assert.match(refusal({ ...EXAMPLE, release_expiry_days: 0 }), /release_expiry_days/);
  assert.match(refusal({ ...EXAMPLE, revocation_roles: [""] }), /revocation_roles/);
});

Deno.test("a gate requiring an undeclared type is refused, naming the field path", () => {
  const gates = [EXAMPLE.gates[0], { ...EXAMPLE.gates[1], require: { OUTPUT_CHECKERS: 2 } }];
  assert.match(
    refusal({ ...EXAMPLE, gates }),
    /gates\[1\]\.require\.OUTPUT_CHECKERS: not a declared approval type/,
  );
});

Deno.test("unknown keys are refused at every level, by path", () => {
  assert.match(refusal({ ...EXAMPLE, extra: 1 }), /extra: unknown field/);
  assert.match(
    refusal({ ...EXAMPLE, approval_types: { X: { roles: ["r"], colour: "red" } }, gates: [] }),
    /approval_types\.X\.colour: unknown field/,
  );
  assert.match(
    refusal({ ...EXAMPLE, gates: [{ ...EXAMPLE.gates[0], after: "x" }] }),
    /gates\[0\]\.after: unknown field/,
  );
});

Deno.test("bad values are refused with their path", () => {
  assert.match(
    refusal({ ...EXAMPLE, gates: [{ ...EXAMPLE.gates[0], before: "load" }] }),
    /gates\[0\]\.before:/,
  );
  assert.match(
    refusal({ ...EXAMPLE, gates: [{ ...EXAMPLE.gates[1], require: { OUTPUT_CHECKER: 0 } }] }),
    /gates\[0\]\.require\.OUTPUT_CHECKER:/,
  );
  assert.match(
    refusal({ ...EXAMPLE, gates: [{ ...EXAMPLE.gates[1], require: {} }] }),
    /gates\[0\]\.require: must require at least one approval type/,
  );
  assert.match(refusal({ ...EXAMPLE, approval_max_age_days: 0 }), /approval_max_age_days:/);
  assert.match(refusal({ ...EXAMPLE, destinations: [] }), /destinations:/);
  assert.match(
    refusal({ ...EXAMPLE, destinations: ["LSC", "LSC"] }),
    /destinations\[1\]: named twice/,
  );
  assert.match(
    refusal({ ...EXAMPLE, approval_types: { X: { roles: [] } }, gates: [] }),
    /approval_types\.X\.roles:/,
  );
  assert.match(refusal([]), /\(policy\):/);
});

Deno.test("two gates with one name are refused", () => {
  const gates = [EXAMPLE.gates[0], { ...EXAMPLE.gates[1], name: "sign_off" }];
  assert.match(refusal({ ...EXAMPLE, gates }), /gates\[1\]\.name: gate "sign_off" is named twice/);
});

Deno.test("gatesBefore: the gates of a step, none for an uncovered destination or without a policy", () => {
  const policy = parseApprovalPolicy(EXAMPLE);
  const lsc = { type: "filestore", name: "LSC" };
  assert.deepEqual(gatesBefore(policy, "package", lsc).map((g) => g.name), ["sign_off"]);
  assert.deepEqual(gatesBefore(policy, "publish", lsc).map((g) => g.name), ["disclosure"]);
  assert.deepEqual(gatesBefore(policy, "package", { type: "filestore", name: "OTHER" }), []);
  assert.deepEqual(gatesBefore(policy, "publish", { type: "postgresql", name: "" }), []);
  assert.deepEqual(gatesBefore(null, "package", lsc), []);
});

Deno.test("a policy covers PostgreSQL destinations by the name postgresql, filestores by name", () => {
  const policy = parseApprovalPolicy({ ...EXAMPLE, destinations: ["postgresql"] });
  assert.equal(policy.destinations.length, 1);
  assert.ok(policyCovers(policy, { type: "postgresql", name: "" }));
  assert.ok(!policyCovers(policy, { type: "filestore", name: "LSC" }));
});

Deno.test("several gates may guard one step", () => {
  const gates = [...EXAMPLE.gates, {
    name: "second",
    before: "package",
    require: { DATA_ENGINEER: 1 },
  }];
  const policy = parseApprovalPolicy({ ...EXAMPLE, gates });
  const names = gatesBefore(policy, "package", { type: "filestore", name: "LSC" }).map((g) =>
    g.name
  );
  assert.deepEqual(names, ["sign_off", "second"]);
});

Deno.test("a person is entitled to a type when one of their roles is listed for it", () => {
  const policy = parseApprovalPolicy(EXAMPLE);
  assert.ok(isEntitled(policy, "OUTPUT_CHECKER", ["x", "output-checker"]));
  assert.ok(!isEntitled(policy, "OUTPUT_CHECKER", ["data-engineer"]));
  assert.ok(!isEntitled(policy, "toString", ["output-checker"]));
  assert.ok(!isEntitled(policy, "NOPE", ["output-checker"]));
});
