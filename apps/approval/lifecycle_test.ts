/**
 * The gateway side of a release's lifecycle (`docs/revocation.md`): publications recorded with their
 * receipt and crate, expiry, revocation (who may, idempotence, what it refuses afterwards), the expiry
 * sweep and the relayed release keys. The publish service is the world's, except for the three calls it
 * answers in its issue-16 shapes, faked here: publish (with `receipt` and `crate`), revoke (with a
 * `certificate`) and the release keys.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { type ApprovalPolicy, parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { APPROVAL_KEY, FakeWorld } from "../../tests/support/apps.ts";
import {
  type KeyServer,
  startKeyServer,
  TEST_AUDIENCE,
} from "../../tests/support/identity_providers.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { personVerifierFromEnv } from "../_shared/person_verifier_from_env.ts";
import type { ApprovalGates, ApprovalService } from "./app.ts";

const CRATE = {
  "@context": "https://w3id.org/ro/crate/1.1/context",
  "@graph": [{ "@id": "ro-crate-metadata.json", "@type": "CreativeWork" }],
};
const RECEIPT = {
  jws: "eyJhbGciOiJFZERTQSJ9.eyJyZWxlYXNlIjoxfQ.c2ln",
  claims: { sub: "sha512:ab" },
};
const CERTIFICATE = { id: "cert-1", release_id: "r", deleted: ["Pr042/data.csv"] };
const JWKS = { keys: [{ kty: "OKP", crv: "Ed25519", x: "abc", kid: "k1" }] };
const DAY = 86_400_000;

/** A gateway whose publish service answers publish, revoke and the release keys as issue 16 says. */
interface Lifecycle extends AsyncDisposable {
  readonly world: FakeWorld;
  readonly service: ApprovalService;
  readonly clock: { now: Date };
  /** The bodies the publish service got, by endpoint (`data-publish/publish`, `data-publish/revoke`). */
  readonly sent: { publish: Record<string, unknown>[]; revoke: Record<string, unknown>[] };
  /** The status the fake revoke answers (200 by default). */
  revokeStatus: number;
  token(sub: string, roles: string[]): Promise<string>;
  call(request: Request | string): Promise<Response>;
}

async function aLifecycle(policy?: ApprovalPolicy): Promise<Lifecycle> {
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const sent = {
    publish: [] as Record<string, unknown>[],
    revoke: [] as Record<string, unknown>[],
  };
  const state = { revokeStatus: 200 };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    if (url.pathname === "/data-publish/publish") {
      sent.publish.push(JSON.parse(String(init?.body)));
      return Response.json({
        status: "success",
        payload: {
          data_published: [{ file_path: "Pr042/data.csv", hash_value: "ab", total_bytes: 3 }],
          receipt: RECEIPT,
          crate: CRATE,
        },
      });
    }
    if (url.pathname === "/data-publish/revoke") {
      sent.revoke.push(JSON.parse(String(init?.body)));
      return state.revokeStatus === 200
        ? Response.json({ status: "success", payload: { certificate: CERTIFICATE } })
        : Response.json({ status: "error", payload: { detail: "PublishService: disk full" } }, {
          status: state.revokeStatus,
        });
    }
    if (url.pathname === "/.well-known/release-keys") return Response.json(JWKS);
    const target = url.hostname === "metadata.test" ? world.metadataApp() : world.publishApp();
    return await target.request(url.pathname, init);
  };
  let idp: KeyServer | undefined;
  let gates: ApprovalGates | undefined;
  if (policy !== undefined) {
    idp = await startKeyServer();
    const verifier = personVerifierFromEnv({
      OIDC_ISSUER_URL: idp.issuer,
      OIDC_AUDIENCE: TEST_AUDIENCE,
    });
    assert.ok(verifier);
    gates = { policy, store: new MemoryReleaseStore(), verifier, now: () => clock.now };
  }
  const service = world.approvalService({
    fetch,
    ...(gates === undefined ? {} : { gates }),
    now: () => clock.now,
  });
  return {
    world,
    service,
    clock,
    sent,
    get revokeStatus() {
      return state.revokeStatus;
    },
    set revokeStatus(status: number) {
      state.revokeStatus = status;
    },
    token: (sub, roles) => {
      assert.ok(idp);
      return idp.sign({ sub, preferred_username: sub, realm_access: { roles } });
    },
    call: async (request) =>
      await service.app.request(
        typeof request === "string"
          ? new Request(`http://test.local${request}`, { headers: { "x-api-key": APPROVAL_KEY } })
          : request,
      ),
    async [Symbol.asyncDispose]() {
      world[Symbol.dispose]();
      await idp?.[Symbol.asyncDispose]();
    },
  };
}

/** A POST with a person's bearer token. */
function asPerson(token: string, path: string, body: unknown): Request {
  return new Request(`http://test.local${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Publishes `body` through the gateway; returns the reply's JSON. */
async function publish(l: Lifecycle, body: unknown = aPublishRequest()) {
  const res = await l.call(postJson("/project/publish", body, APPROVAL_KEY));
  return { status: res.status, json: await res.json() };
}

/** Checks `body` against what the gateway's OpenAPI document declares for `method path` and `status`. */
async function assertDeclared(
  l: Lifecycle,
  [method, path, status]: [string, string, number],
  body: unknown,
): Promise<void> {
  const doc = await (await l.call("/openapi.json")).json();
  const declared = doc.paths[path]?.[method]?.responses?.[String(status)];
  assert.ok(declared, `${method} ${path} declares ${status}`);
  const validate = new Ajv2020({ strict: false, allErrors: true })
    .compile({ ...declared.content["application/json"].schema, components: doc.components });
  assert.ok(validate(body), JSON.stringify(validate.errors));
}

Deno.test("a publish through the gateway forwards its release and records receipt, crate and expiry", async () => {
  await using l = await aLifecycle();
  const packaged = await l.call(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
  assert.equal(packaged.status, 200);
  const [before] = (await (await l.call("/releases")).json()).payload.releases;
  const notYet = await l.call(`/releases/${before.id}/crate`);
  assert.equal(notYet.status, 404);
  assert.equal((await notYet.json()).payload.code, "release_not_published");

  const expiresAt = "2027-01-01T00:00:00+01:00";
  const { status, json } = await publish(l, { ...aPublishRequest(), expires_at: expiresAt });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.payload.release_id, before.id);
  assert.deepEqual(json.payload.receipt, RECEIPT);
  assert.equal(json.payload.crate, undefined, "the crate is not relayed");
  await assertDeclared(l, ["post", "/project/publish", 200], json);

  const forwarded = l.sent.publish.at(-1);
  assert.equal(forwarded?.expires_at, undefined, "the gateway's expires_at is not forwarded as is");
  assert.deepEqual(forwarded?.release, {
    id: before.id,
    requested_by: before.requested_by,
    decisions: [],
    expires_at: "2026-12-31T23:00:00.000Z",
  });

  const res = await l.call(`/releases/${before.id}`);
  const view = await res.json();
  assert.equal(view.payload.expires_at, "2026-12-31T23:00:00.000Z");
  assert.deepEqual(view.payload.publication, {
    published_at: l.clock.now.toISOString(),
    receipt: RECEIPT,
    files: [{ file_path: "Pr042/data.csv", hash_value: "ab", total_bytes: 3 }],
  });
  await assertDeclared(l, ["get", "/releases/{id}", 200], view);

  const crate = await l.call(`/releases/${before.id}/crate`);
  assert.equal(crate.status, 200);
  assert.equal(crate.headers.get("content-type"), "application/ld+json");
  assert.deepEqual(await crate.json(), CRATE);
});

Deno.test("a requested expiry must be in the future and at most ten years away", async () => {
  await using l = await aLifecycle();
  for (const expiresAt of ["2026-12-06T11:59:59Z", "2036-12-31T00:00:00Z"]) {
    const { status, json } = await publish(l, { ...aPublishRequest(), expires_at: expiresAt });
    assert.equal(status, 422, expiresAt);
    assert.equal(json.payload.code, "invalid_expiry");
  }
  const { status } = await publish(l, { ...aPublishRequest(), expires_at: "tomorrow" });
  assert.equal(status, 422);
  assert.equal(l.sent.publish.length, 0, "nothing was forwarded");
});

Deno.test("the policy's release_expiry_days sets the expiry when the request names none", async () => {
  await using l = await aLifecycle(parseApprovalPolicy({
    approval_types: {},
    gates: [],
    release_expiry_days: 30,
    destinations: ["LSC"],
  }));
  const { status, json } = await publish(l);
  assert.equal(status, 200, JSON.stringify(json));
  const expected = new Date(l.clock.now.getTime() + 30 * DAY).toISOString();
  assert.equal((l.sent.publish.at(-1)?.release as { expires_at: string }).expires_at, expected);
});

Deno.test("without a policy the key revokes: revoked with the certificate, audited, idempotent", async () => {
  await using l = await aLifecycle();
  const { json } = await publish(l);
  const id = json.payload.release_id;
  const res = await l.call(
    postJson(`/releases/${id}/revoke`, { reason: "consent withdrawn" }, APPROVAL_KEY),
  );
  const revoked = await res.json();
  assert.equal(res.status, 200, JSON.stringify(revoked));
  assert.equal(revoked.payload.state, "revoked");
  assert.equal(revoked.payload.revocation.reason, "consent withdrawn");
  assert.equal(revoked.payload.revocation.requested_by.kind, "key");
  assert.deepEqual(revoked.payload.revocation.certificate, CERTIFICATE);
  await assertDeclared(l, ["post", "/releases/{id}/revoke", 200], revoked);
  assert.deepEqual(l.sent.revoke, [{
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC", format: "csv" },
    release_id: id,
    reason: "consent withdrawn",
    requested_by: revoked.payload.revocation.requested_by,
  }]);
  const record = l.world.audit!.records.findLast((r) => r.action === `/releases/${id}/revoke`);
  assert.deepEqual(record?.certificate, CERTIFICATE);

  const again = await l.call(postJson(`/releases/${id}/revoke`, { reason: "again" }, APPROVAL_KEY));
  assert.equal(again.status, 200);
  assert.deepEqual((await again.json()).payload.revocation, revoked.payload.revocation);
  assert.equal(l.sent.revoke.length, 1, "a revoked release is not revoked again");
  assert.equal((await (await l.call(`/releases/${id}`)).json()).payload.state, "revoked");

  for (
    const [path, body] of [["/project/package", aTransferRequest()], [
      "/project/publish",
      aPublishRequest(),
    ]] as const
  ) {
    const refused = await l.call(postJson(path, body, APPROVAL_KEY));
    const payload = (await refused.json()).payload;
    assert.equal(refused.status, 409, path);
    assert.equal(payload.code, "release_revoked");
    assert.equal(payload.release_id, id);
  }
  assert.equal(l.sent.publish.length, 1, "a revoked run is not published again");
});

Deno.test("a failed revocation leaves the release revoking; asking again retries it", async () => {
  await using l = await aLifecycle();
  const { json } = await publish(l);
  const id = json.payload.release_id;
  l.revokeStatus = 500;
  const failed = await l.call(
    postJson(`/releases/${id}/revoke`, { reason: "first" }, APPROVAL_KEY),
  );
  assert.equal(failed.status, 502);
  assert.equal((await failed.json()).payload.code, "revocation_failed");
  const stuck = (await (await l.call(`/releases/${id}`)).json()).payload;
  assert.equal(stuck.state, "revoking");
  assert.equal(stuck.revocation.certificate, null);
  const publishing = await l.call(postJson("/project/publish", aPublishRequest(), APPROVAL_KEY));
  assert.equal(publishing.status, 409, "a revoking run is not published");

  l.revokeStatus = 200;
  const retried = await l.call(
    postJson(`/releases/${id}/revoke`, { reason: "second" }, APPROVAL_KEY),
  );
  const view = (await retried.json()).payload;
  assert.equal(retried.status, 200);
  assert.equal(view.state, "revoked");
  assert.equal(view.revocation.reason, "first", "the first reason is kept");
  assert.equal(l.sent.revoke.length, 2);
});

Deno.test("a revoke body needs a reason of 1 to 2000 characters", async () => {
  await using l = await aLifecycle();
  const { json } = await publish(l);
  for (const body of [{}, { reason: "" }, { reason: "x".repeat(2001) }]) {
    const res = await l.call(
      postJson(`/releases/${json.payload.release_id}/revoke`, body, APPROVAL_KEY),
    );
    assert.equal(res.status, 422, JSON.stringify(body));
  }
  assert.equal(l.sent.revoke.length, 0);
});

Deno.test("with a policy, only a person holding a revocation role revokes", async () => {
  await using l = await aLifecycle(parseApprovalPolicy({
    approval_types: { OUTPUT_CHECKER: { roles: ["output-checker"] } },
    gates: [{ name: "late", before: "publish", require: { OUTPUT_CHECKER: 1 } }],
    revocation_roles: ["revoker"],
    destinations: ["OTHER"],
  }));
  const { status, json } = await publish(l);
  assert.equal(status, 200, JSON.stringify(json));
  const id = json.payload.release_id;
  const path = `/releases/${id}/revoke`;

  const byKey = await l.call(postJson(path, { reason: "r" }, APPROVAL_KEY));
  assert.equal(byKey.status, 401, "a key cannot revoke when people sign in");
  const byChecker = await l.call(asPerson(await l.token("carol", ["output-checker"]), path, {
    reason: "r",
  }));
  assert.equal(byChecker.status, 403);
  assert.equal((await byChecker.json()).payload.code, "not_entitled_to_revoke");
  assert.equal(l.sent.revoke.length, 0);

  const res = await l.call(
    asPerson(await l.token("rita", ["revoker"]), path, { reason: "breach" }),
  );
  const view = (await res.json()).payload;
  assert.equal(res.status, 200, JSON.stringify(view));
  assert.equal(view.state, "revoked");
  assert.equal(view.revocation.requested_by.kind, "person");
  assert.equal(view.revocation.requested_by.id, "rita");
  assert.deepEqual(
    l.sent.revoke[0]?.requested_by,
    view.revocation.requested_by,
    "the publish service is told who, issuer included",
  );

  const decision = await l.call(asPerson(
    await l.token("carol", ["output-checker"]),
    `/releases/${id}/decisions`,
    { gate: "late", approval_type: "OUTPUT_CHECKER", decision: "approve" },
  ));
  assert.equal(decision.status, 409);
  assert.equal((await decision.json()).payload.code, "release_revoked");
});

Deno.test("the expiry sweep revokes expired releases and retries stuck revocations", async () => {
  await using l = await aLifecycle();
  const tomorrow = new Date(l.clock.now.getTime() + DAY).toISOString();
  const { json } = await publish(l, { ...aPublishRequest(), expires_at: tomorrow });
  const expiring = json.payload.release_id;
  const other = await publish(l, { ...aPublishRequest({ project_name: "Pr043" }) });
  const never = other.json.payload.release_id;

  await l.service.sweepReleases();
  assert.equal(l.sent.revoke.length, 0, "nothing expired yet");

  l.clock.now = new Date(l.clock.now.getTime() + DAY);
  l.revokeStatus = 503;
  await l.service.sweepReleases();
  const stuck = (await (await l.call(`/releases/${expiring}`)).json()).payload;
  assert.equal(stuck.state, "revoking");
  assert.deepEqual(stuck.revocation.requested_by, { kind: "system", id: "expiry" });
  assert.equal(stuck.revocation.reason, "expired");
  assert.ok(
    l.world.approvalLog.lines.some((line) => line.includes("release_revocation_failed")),
  );

  l.revokeStatus = 200;
  await l.service.sweepReleases();
  assert.equal(l.sent.revoke.length, 1, "a fresh revoking release is left to its request");

  l.clock.now = new Date(l.clock.now.getTime() + 61_000);
  await l.service.sweepReleases();
  const revoked = (await (await l.call(`/releases/${expiring}`)).json()).payload;
  assert.equal(revoked.state, "revoked");
  assert.deepEqual(revoked.revocation.certificate, CERTIFICATE);
  const expiries = (l.world.audit as MemoryAuditTrail).records.filter((r) =>
    r.action === "release_expiry"
  );
  assert.equal(expiries.length, 1, "the sweep's revocation is on the record, once");
  assert.deepEqual(expiries[0]?.certificate, CERTIFICATE);
  assert.equal(expiries[0]?.caller_key_id, null);
  assert.equal(expiries[0]?.project_name, revoked.project_name);
  assert.equal((await (await l.call(`/releases/${never}`)).json()).payload.state, "open");
  await l.service.sweepReleases();
  assert.equal(l.sent.revoke.length, 2, "a revoked release is swept no more");
});

Deno.test("the expiry sweep leaves a release revoking while its audit record cannot be written", async () => {
  await using l = await aLifecycle();
  const tomorrow = new Date(l.clock.now.getTime() + DAY).toISOString();
  const { json } = await publish(l, { ...aPublishRequest(), expires_at: tomorrow });
  const id = json.payload.release_id;
  const audit = l.world.audit as MemoryAuditTrail;
  const expiries = () => audit.records.filter((r) => r.action === "release_expiry");

  l.clock.now = new Date(l.clock.now.getTime() + DAY);
  audit.failAppends("disk full");
  await l.service.sweepReleases();
  assert.equal(l.sent.revoke.length, 1, "the publish service deleted and certified");
  assert.equal((await (await l.call(`/releases/${id}`)).json()).payload.state, "revoking");
  assert.equal(expiries().length, 0);
  assert.ok(
    l.world.approvalLog.lines.some((line) =>
      line.includes("release_revocation_failed") && line.includes("audit_unavailable")
    ),
  );

  audit.failAppends(undefined);
  l.clock.now = new Date(l.clock.now.getTime() + 61_000);
  await l.service.sweepReleases();
  const revoked = (await (await l.call(`/releases/${id}`)).json()).payload;
  assert.equal(revoked.state, "revoked");
  assert.equal(expiries().length, 1, "on the record once the trail is writable");
  assert.deepEqual(expiries()[0]?.certificate, revoked.revocation.certificate);
});

Deno.test("GET /.well-known/release-keys relays the publish service's keys, without a key", async () => {
  await using l = await aLifecycle();
  const res = await l.service.app.request("http://test.local/.well-known/release-keys");
  assert.equal(res.status, 200);
  const json = await res.json();
  assert.deepEqual(json, JWKS);
  await assertDeclared(l, ["get", "/.well-known/release-keys", 200], json);
});
