import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./app_errors.ts";
import { readApprovalPolicy } from "./approval_policy_file.ts";
import { memoryLogger } from "./log.ts";

const POLICY = {
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
  revocation_roles: ["data-controller"],
  destinations: ["LSC"],
};

async function policyFile(text: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "policy_" });
  const path = join(dir, "approval-policy.json");
  await Deno.writeTextFile(path, text);
  return path;
}

function refusal(path: string): string {
  try {
    readApprovalPolicy(path, memoryLogger());
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.message;
  }
  assert.fail("the file was accepted");
}

Deno.test("without APPROVAL_POLICY_FILE there is no policy, and the log says: no gates", () => {
  for (const unset of [undefined, ""]) {
    const log = memoryLogger();
    assert.equal(readApprovalPolicy(unset, log), null);
    assert.equal(log.lines.length, 1);
    const line = JSON.parse(log.lines[0]!);
    assert.equal(line.event, "no_approval_policy");
    assert.equal(line.detail, "no approval policy: no gates");
  }
});

Deno.test("a valid policy file is read and its gates logged", async () => {
  const path = await policyFile(JSON.stringify(POLICY));
  const log = memoryLogger();
  assert.deepEqual(readApprovalPolicy(path, log), POLICY);
  const line = JSON.parse(log.lines[0]!);
  assert.equal(line.event, "approval_policy");
  assert.deepEqual(line.gates, ["sign_off before package", "disclosure before publish"]);
  assert.deepEqual(line.revocation_roles, ["data-controller"]);
  assert.equal(line.release_expiry_days, null);
  await Deno.remove(join(path, ".."), { recursive: true });
});

Deno.test("a policy naming an undeclared type stops the service, naming the file and field", async () => {
  const gates = [POLICY.gates[0], { ...POLICY.gates[1], require: { OUTPUT_CHEKER: 2 } }];
  const path = await policyFile(JSON.stringify({ ...POLICY, gates }));
  assert.equal(
    refusal(path),
    `Cannot read APPROVAL_POLICY_FILE ${path}: Invalid approval policy: ` +
      "gates[1].require.OUTPUT_CHEKER: not a declared approval type",
  );
  await Deno.remove(join(path, ".."), { recursive: true });
});

Deno.test("a file that is not JSON, or is missing, stops the service with a clear message", async () => {
  const path = await policyFile("{ approval_types: ");
  assert.match(refusal(path), /^Cannot read APPROVAL_POLICY_FILE .*: not JSON: /);
  await Deno.remove(join(path, ".."), { recursive: true });
  assert.match(refusal(path), /^Cannot read APPROVAL_POLICY_FILE .*approval-policy\.json: /);
});
