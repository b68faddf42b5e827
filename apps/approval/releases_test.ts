import assert from "node:assert/strict";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { APPROVAL_KEY, FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { type KeyServer, startKeyServer } from "../../tests/support/identity_providers.ts";
import {
  aNarrowerTransferRequest,
  aPublishRequest,
  aTransferRequest,
  postJson,
} from "../../tests/support/requests.ts";
import { personVerifierFromEnv } from "../_shared/person_verifier_from_env.ts";
import { TEST_AUDIENCE } from "../../tests/support/identity_providers.ts";
import type { ApprovalGates } from "./app.ts";

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
  approval_max_age_days: 1,
  destinations: ["LSC"],
});

interface Setup {
  world: FakeWorld;
  /** Every package request body the gateway forwarded to the publish service. */
  forwardedPackages: Record<string, unknown>[];
  idp: KeyServer;
  app: ReturnType<FakeWorld["approvalApp"]>;
  clock: { now: Date };
  token(sub: string, roles: string[]): Promise<string>;
}

/**
 * A world with gates on. `beforePublish` runs when the gateway forwards a publish, after its gates were
 * checked (to change staging in between).
 */
async function setUp(
  beforePublish?: (world: FakeWorld) => Promise<void>,
  policy = POLICY,
): Promise<Setup & AsyncDisposable> {
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  const idp = await startKeyServer();
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
  });
  assert.ok(verifier);
  const clock = { now: new Date() };
  const gates: ApprovalGates = {
    policy,
    store: new MemoryReleaseStore(),
    verifier,
    now: () => clock.now,
  };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const target = url.hostname === "metadata.test" ? world.metadataApp() : world.publishApp();
    if (url.pathname === "/data-publish/publish") await beforePublish?.(world);
    if (url.pathname === "/data-publish/package") {
      forwardedPackages.push(JSON.parse(String(init?.body)));
    }
    return await target.request(url.pathname, init);
  };
  const forwardedPackages: Record<string, unknown>[] = [];
  const app = world.approvalApp({ gates, fetch });
  return {
    world,
    forwardedPackages,
    idp,
    app,
    clock,
    token: (sub, roles) => idp.sign({ sub, preferred_username: sub, realm_access: { roles } }),
    async [Symbol.asyncDispose]() {
      world[Symbol.dispose]();
      await idp[Symbol.asyncDispose]();
    },
  };
}

function asPerson(token: string, path: string, body?: unknown): Request {
  return new Request(`http://test.local${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function decide(
  s: Setup,
  person: [string, string[]],
  id: string,
  gate: string,
  approvalType: string,
  decision = "approve",
  comment?: string,
) {
  const res = await s.app.request(asPerson(
    await s.token(...person),
    `/releases/${id}/decisions`,
    { gate, approval_type: approvalType, decision, ...(comment === undefined ? {} : { comment }) },
  ));
  return { status: res.status, json: await res.json() };
}

const IG: [string, string[]] = ["ig-1", ["ig-approver"]];
const DE: [string, string[]] = ["de-1", ["data-engineer"]];
const OC1: [string, string[]] = ["oc-1", ["output-checker"]];
const OC2: [string, string[]] = ["oc-2", ["output-checker"]];

Deno.test("gates on: package and publish wait for their gates, publish binds to the approved staging", async () => {
  await using s = await setUp();
  const pkg = await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  const refused = await pkg.json();
  assert.equal(pkg.status, 409, JSON.stringify(refused));
  assert.equal(refused.payload.code, "approval_required");
  assert.equal(refused.payload.gate, "sign_off");
  assert.deepEqual(refused.payload.missing, { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 });
  assert.match(refused.payload.detail, /^Cannot package yet: release .* awaits approval/);
  const id: string = refused.payload.release_id;

  assert.equal((await decide(s, IG, id, "sign_off", "INFORMATION_GOVERNANCE")).status, 200);
  const second = await decide(s, DE, id, "sign_off", "DATA_ENGINEER", "approve", "looks right");
  assert.equal(second.status, 200, JSON.stringify(second.json));
  assert.equal(second.json.payload.gates[0].met, true);
  assert.ok(s.world.approvalLog.lines.some((l) => l.includes('"gate_opened"')));

  const packaged = await s.app.request(
    postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
  );
  assert.equal(packaged.status, 200, await packaged.clone().text());

  const publish1 = await s.app.request(
    postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
  );
  const publishRefused = await publish1.json();
  assert.equal(publish1.status, 409);
  assert.equal(publishRefused.payload.gate, "disclosure");
  assert.deepEqual(publishRefused.payload.missing, { OUTPUT_CHECKER: 2 });

  const seen = await s.app.request(asPerson(await s.token(...OC1), `/releases/${id}`));
  const view = (await seen.json()).payload;
  assert.equal(seen.status, 200);
  const digest: string = view.staging.staging_digest;
  assert.match(digest, /^[0-9a-f]{64}$/);
  assert.ok(Array.isArray(view.staging.tables));
  assert.deepEqual(view.allowed_actions, [{
    gate: "disclosure",
    approval_type: "OUTPUT_CHECKER",
    decisions: ["approve", "reject", "request_changes"],
  }]);

  for (const checker of [OC1, OC2]) {
    const d = await decide(s, checker, id, "disclosure", "OUTPUT_CHECKER");
    assert.equal(d.status, 200, JSON.stringify(d.json));
    assert.equal(d.json.payload.decisions.at(-1).manifest_digest, digest);
  }

  // Staging changes after the approval: the gate resets.
  const repackaged = await s.app.request(
    postJson("/project/package", aNarrowerTransferRequest(), APPROVAL_KEY),
  );
  assert.equal(repackaged.status, 200);
  const publish2 = await s.app.request(
    postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
  );
  assert.equal(publish2.status, 409);
  assert.equal((await publish2.json()).payload.code, "approval_required");

  for (const checker of [OC1, OC2]) {
    assert.equal((await decide(s, checker, id, "disclosure", "OUTPUT_CHECKER")).status, 200);
  }
  const published = await s.app.request(
    postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
  );
  assert.equal(published.status, 200, await published.clone().text());

  // Every decision is an audit record with the person, the gate, the digest and the comment's hash only.
  const decisions = s.world.audit!.records.filter((r) => r.decision !== undefined);
  assert.equal(decisions.length, 6);
  const commented = decisions.find((r) => r.person?.id === "de-1");
  assert.equal(commented?.person?.issuer, s.idp.issuer);
  assert.equal(commented?.caller_key_id, null);
  assert.equal(commented?.decision?.gate, "sign_off");
  assert.match(commented?.decision?.comment_sha256 ?? "", /^[0-9a-f]{64}$/);
  assert.ok(!s.world.audit!.lines.join("\n").includes("looks right"), "never the comment");
  assert.equal(decisions.at(-1)?.decision?.manifest_digest === null, false);
});

Deno.test("gates on: credentials are never interchangeable", async () => {
  await using s = await setUp();
  const ig = await s.token(...IG);
  // A person's token on /project/*: refused as a missing key.
  const asPersonOnProject = await s.app.request(
    new Request("http://test.local/project/package", {
      method: "POST",
      headers: { authorization: `Bearer ${ig}`, "content-type": "application/json" },
      body: JSON.stringify(aTransferRequest()),
    }),
  );
  assert.equal(asPersonOnProject.status, 403);

  const pkg = await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  const id = (await pkg.json()).payload.release_id;
  // The key on decisions: refused, a person's token is required.
  const keyDecides = await s.app.request(postJson(`/releases/${id}/decisions`, {
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decision: "approve",
  }, APPROVAL_KEY));
  assert.equal(keyDecides.status, 401);
  assert.equal((await keyDecides.json()).payload.code, "invalid_token");

  // The key may read releases, and may decide nothing.
  const byKey = await s.app.request(
    new Request(`http://test.local/releases/${id}`, { headers: { "x-api-key": APPROVAL_KEY } }),
  );
  const keyView = (await byKey.json()).payload;
  assert.equal(byKey.status, 200);
  assert.deepEqual(keyView.allowed_actions, []);
  assert.deepEqual(keyView.requested_by.kind, "key");
  const awaitingByKey = await s.app.request(
    new Request("http://test.local/releases?awaiting=me", {
      headers: { "x-api-key": APPROVAL_KEY },
    }),
  );
  assert.equal(awaitingByKey.status, 400);

  // A person sees what they may decide, and what awaits them.
  const mine = await s.app.request(asPerson(ig, "/releases?awaiting=me"));
  const awaiting = (await mine.json()).payload;
  assert.deepEqual(awaiting.releases.map((r: { id: string }) => r.id), [id]);
  assert.deepEqual(awaiting.releases[0].allowed_actions, [{
    gate: "sign_off",
    approval_type: "INFORMATION_GOVERNANCE",
    decisions: ["approve", "reject", "request_changes"],
  }]);
  const listed = await s.app.request(asPerson(ig, "/releases?project=Pr042&limit=1"));
  const page = (await listed.json()).payload;
  assert.equal(page.releases.length, 1);
  assert.equal(page.next, null);
  assert.equal((await s.app.request(asPerson(ig, "/releases?limit=0"))).status, 400);
});

Deno.test("gates on: refused decisions are audited; an expired approval no longer counts", async () => {
  await using s = await setUp();
  const pkg = await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  const id = (await pkg.json()).payload.release_id;

  const notEntitled = await decide(s, DE, id, "sign_off", "INFORMATION_GOVERNANCE");
  assert.equal(notEntitled.status, 403);
  assert.equal(notEntitled.json.payload.code, "not_entitled");
  const refusedRecord = s.world.audit!.records.at(-1);
  assert.equal(refusedRecord?.error_code, "not_entitled");
  assert.equal(refusedRecord?.person?.id, "de-1");
  assert.equal(refusedRecord?.decision?.approval_type, "INFORMATION_GOVERNANCE");

  assert.equal((await decide(s, IG, id, "sign_off", "INFORMATION_GOVERNANCE")).status, 200);
  assert.equal((await decide(s, DE, id, "sign_off", "DATA_ENGINEER")).status, 200);
  s.clock.now = new Date(s.clock.now.getTime() + 2 * 86_400_000);
  const late = await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  assert.equal(late.status, 409);
  assert.deepEqual((await late.json()).payload.missing, {
    INFORMATION_GOVERNANCE: 1,
    DATA_ENGINEER: 1,
  });
});

Deno.test("gates on: staging that changes between the gate check and the publish is 409 staging_changed", async () => {
  let repackage = false;
  await using s = await setUp(async (world) => {
    if (!repackage) return;
    const res = await world.publishApp().request(
      postJson("/data-publish/package", aNarrowerTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 200);
  });
  const pkg = await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  const id = (await pkg.json()).payload.release_id;
  await decide(s, IG, id, "sign_off", "INFORMATION_GOVERNANCE");
  await decide(s, DE, id, "sign_off", "DATA_ENGINEER");
  assert.equal(
    (await s.app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY))).status,
    200,
  );
  for (const checker of [OC1, OC2]) {
    assert.equal((await decide(s, checker, id, "disclosure", "OUTPUT_CHECKER")).status, 200);
  }
  repackage = true;
  const res = await s.app.request(postJson("/project/publish", aPublishRequest(), APPROVAL_KEY));
  const json = await res.json();
  assert.equal(res.status, 409, JSON.stringify(json));
  assert.equal(json.payload.code, "staging_changed");
  assert.deepEqual([...Deno.readDirSync(`${s.world.base}/production`)], [], "nothing moved");
});

Deno.test("gates off: package goes through as before, and its release is recorded for the key", async () => {
  using world = new FakeWorld();
  const app = world.approvalApp();
  const res = await app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  assert.equal(res.status, 200);
  const releases = await app.request(
    new Request("http://test.local/releases", { headers: { "x-api-key": APPROVAL_KEY } }),
  );
  const json = await releases.json();
  assert.equal(releases.status, 200, JSON.stringify(json));
  assert.equal(json.payload.releases.length, 1);
  const [release] = json.payload.releases;
  assert.equal(release.state, "open");
  assert.equal(release.requested_by.kind, "key");
  assert.deepEqual(release.gates, []);
  assert.deepEqual(release.allowed_actions, []);
  const decisions = await app.request(
    postJson(`/releases/${release.id}/decisions`, {
      gate: "sign_off",
      approval_type: "X",
      decision: "approve",
    }, APPROVAL_KEY),
  );
  assert.equal(decisions.status, 404, "no decisions without a policy");
});

/** `POLICY` with only some of its gates, for `destinations`. */
function policyWith(gateNames: string[], destinations = ["LSC"]) {
  return parseApprovalPolicy({
    approval_types: {
      INFORMATION_GOVERNANCE: { roles: ["ig-approver"] },
      DATA_ENGINEER: { roles: ["data-engineer"] },
      OUTPUT_CHECKER: { roles: ["output-checker"] },
    },
    gates: POLICY.gates.filter((gate) => gateNames.includes(gate.name)),
    approval_max_age_days: 1,
    destinations,
  });
}

/** What the publish service staged for the run: checked tables and unchecked datasets. */
async function stagedChecks(world: FakeWorld) {
  const res = await world.publishApp().request(
    postJson("/data-publish/staging", aPublishRequest(), PUBLISH_KEY),
  );
  const { tables, unchecked_datasets } = (await res.json()).payload;
  return { tables: tables.map((t: { table: string }) => t.table), unchecked: unchecked_datasets };
}

const CHECKED = { tables: ["tumour_stage"], unchecked: [] };
const UNCHECKED = { tables: [], unchecked: ["oncology"] };

Deno.test("gates on: a package whose publish is gated asks the publish service for the pre-checks", async (t) => {
  await t.step("a gate before publish covers the destination: disclosure_checks true", async () => {
    await using s = await setUp(undefined, policyWith(["disclosure"]));
    const res = await s.app.request(
      postJson("/project/package", aTransferRequest({ disclosure_checks: false }), APPROVAL_KEY),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(s.forwardedPackages.length, 1);
    assert.equal(s.forwardedPackages[0]!.disclosure_checks, true);
    assert.equal(s.forwardedPackages[0]!.project_name, "Pr042");
    assert.deepEqual(await stagedChecks(s.world), CHECKED);
  });

  await t.step("the whole policy: the approved package carries the flag too", async () => {
    await using s = await setUp();
    const refused = await s.app.request(
      postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
    );
    const id: string = (await refused.json()).payload.release_id;
    assert.equal((await decide(s, IG, id, "sign_off", "INFORMATION_GOVERNANCE")).status, 200);
    assert.equal((await decide(s, DE, id, "sign_off", "DATA_ENGINEER")).status, 200);
    const res = await s.app.request(
      postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(s.forwardedPackages.map((body) => body.disclosure_checks), [true]);
    assert.deepEqual(await stagedChecks(s.world), CHECKED);
  });

  await t.step("only a gate before package: no flag, nothing checked", async () => {
    await using s = await setUp(undefined, policyWith(["sign_off"]));
    const refused = await s.app.request(
      postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
    );
    const id: string = (await refused.json()).payload.release_id;
    assert.equal((await decide(s, IG, id, "sign_off", "INFORMATION_GOVERNANCE")).status, 200);
    assert.equal((await decide(s, DE, id, "sign_off", "DATA_ENGINEER")).status, 200);
    const res = await s.app.request(
      postJson("/project/package", aTransferRequest({ disclosure_checks: true }), APPROVAL_KEY),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(s.forwardedPackages.map((body) => "disclosure_checks" in body), [false]);
    assert.deepEqual(await stagedChecks(s.world), UNCHECKED);
  });

  await t.step("a publish gate for other destinations only: no flag", async () => {
    await using s = await setUp(undefined, policyWith(["sign_off", "disclosure"], ["OTHER"]));
    const res = await s.app.request(
      postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(s.forwardedPackages.map((body) => "disclosure_checks" in body), [false]);
    assert.deepEqual(await stagedChecks(s.world), UNCHECKED);
  });
});

Deno.test("gates off: package is forwarded without disclosure_checks, even when the caller sends it", async () => {
  using world = new FakeWorld();
  const forwarded: Record<string, unknown>[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    if (url.pathname === "/data-publish/package") forwarded.push(JSON.parse(String(init?.body)));
    const target = url.hostname === "metadata.test" ? world.metadataApp() : world.publishApp();
    return await target.request(url.pathname, init);
  };
  const app = world.approvalApp({ fetch });
  for (const body of [aTransferRequest(), aTransferRequest({ disclosure_checks: true })]) {
    const res = await app.request(postJson("/project/package", body, APPROVAL_KEY));
    assert.equal(res.status, 200, await res.clone().text());
  }
  assert.deepEqual(forwarded.map((body) => "disclosure_checks" in body), [false, false]);
  assert.deepEqual(await stagedChecks(world), UNCHECKED);
});
