import assert from "node:assert/strict";
import { OidcLogin } from "../../../adapters/oidc/oidc_login.ts";
import { MemoryAuditTrail } from "../../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../../adapters/memory/memory_release_store.ts";
import { parseApprovalPolicy } from "../../../domain/approval_policy.ts";
import { APPROVAL_KEY, FakeWorld } from "../../../tests/support/apps.ts";
import { ONCOLOGY } from "../../../tests/support/catalogs.ts";
import { DashboardClient } from "../../../tests/support/dashboard_sign_in.ts";
import { aRunView } from "../../../tests/support/fake_publish_runs_api.ts";
import { startKeyServer, TEST_AUDIENCE } from "../../../tests/support/identity_providers.ts";
import { aTransferRequest, postJson } from "../../../tests/support/requests.ts";
import {
  DEMO_APPROVAL_POLICY,
  DEMO_UI_CLIENT_ID,
  startDemoIdentityProvider,
} from "../../../tools/demo_identity_provider.ts";
import { personVerifierFromEnv } from "../../_shared/person_verifier_from_env.ts";
import { CONTENT_SECURITY_POLICY } from "./dashboard.tsx";

/** The deletion certificate the fake publish service's revoke answers with. */
const CERTIFICATE = { certificate_id: "cert-42", deleted_files: 3, sha512: "ab".repeat(64) };

async function setUp(baseUrl = "http://127.0.0.1:8000") {
  const idp = await startDemoIdentityProvider({ redirectUris: [`${baseUrl}/ui/callback`] });
  const keys = await startKeyServer();
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: keys.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
  });
  assert.ok(verifier);
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  const clock = { now: Date.now() };
  /** Runs the faked publish service answers `POST /runs/{id}/resume` for (202 and the run). */
  const resumable = new Map<string, Record<string, unknown>>();
  // The publish service's revoke (issue 16) is faked; everything else is the world's.
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    if (url.pathname === "/data-publish/revoke") {
      return Response.json({ status: "success", payload: { certificate: CERTIFICATE } });
    }
    const resume = /^\/runs\/([^/]+)\/resume$/.exec(url.pathname);
    const run = resume === null ? undefined : resumable.get(resume[1]!);
    if (run !== undefined) {
      return Response.json({ status: "success", payload: { ...run, state: "queued" } }, {
        status: 202,
      });
    }
    const target = url.hostname === "metadata.test" ? world.metadataApp() : world.publishApp();
    return await target.request(url.pathname + url.search, init);
  };
  const app = world.approvalApp({
    fetch,
    gates: {
      policy: parseApprovalPolicy({ ...DEMO_APPROVAL_POLICY, revocation_roles: ["operator"] }),
      store: new MemoryReleaseStore(),
      verifier,
    },
    dashboard: {
      login: new OidcLogin({
        issuerUrl: idp.issuer,
        clientId: DEMO_UI_CLIENT_ID,
        redirectUri: `${baseUrl}/ui/callback`,
      }),
      baseUrl,
      sessionTtlMs: 60 * 60_000,
      operatorRoles: ["operator"],
      now: () => clock.now,
    },
  });
  return {
    app,
    world,
    clock,
    resumable,
    client: () => new DashboardClient(app, baseUrl),
    async [Symbol.asyncDispose]() {
      world[Symbol.dispose]();
      await keys[Symbol.asyncDispose]();
      await idp[Symbol.asyncDispose]();
    },
  };
}

/** A release awaiting sign-off: the CLI's package, refused until approved, created it. */
async function aRelease(app: { request: (r: Request) => Response | Promise<Response> }) {
  const refused = await app.request(
    postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
  );
  assert.equal(refused.status, 409);
  return (await refused.json()).payload.release_id as string;
}

Deno.test("a demo person signs in with the code flow and PKCE, and sees what awaits them", async () => {
  await using s = await setUp();
  const id = await aRelease(s.app);
  const igor = s.client();
  const home = await igor.signIn("igor");
  assert.equal(home.status, 200);
  const html = await home.text();
  assert.match(html, /Igor \(DEMO information governance\)/);
  assert.ok(html.includes(`/ui/releases/${id}`), "the release awaits the IG approver");

  const rita = s.client();
  const ritaHome = await (await rita.signIn("rita")).text();
  assert.match(ritaHome, /Nothing awaits your decision/);
});

Deno.test("a wrong demo password signs no one in", async () => {
  await using s = await setUp();
  await assert.rejects(s.client().signIn("igor", "wrong"));
});

Deno.test("every /ui response carries the security headers; the session cookie its flags", async () => {
  await using s = await setUp();
  const client = s.client();
  const signInPage = await client.request("/ui/");
  assert.equal(signInPage.status, 401);
  assert.match(await signInPage.text(), /Sign in/);
  for (const response of [signInPage, await client.signIn("dana")]) {
    if (!response.bodyUsed) await response.body?.cancel();
    assert.equal(response.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("referrer-policy"), "same-origin");
  }
  const session = client.setCookies.find((line) => line.startsWith("cr8tor_session="));
  assert.ok(session);
  assert.match(session, /HttpOnly/);
  assert.match(session, /SameSite=Lax/);
  assert.match(session, /Path=\/ui/);
  assert.doesNotMatch(session, /Secure/, "plain http on loopback cannot keep a Secure cookie");
});

Deno.test("outside loopback the cookies are Secure", async () => {
  await using s = await setUp("https://publisher.example.org");
  const client = s.client();
  await (await client.request("/ui/login")).body?.cancel();
  const login = client.setCookies.find((line) => line.startsWith("cr8tor_login="));
  assert.ok(login);
  assert.match(login, /Secure/);
  assert.match(login, /HttpOnly/);
});

Deno.test("a callback whose state this browser did not start is refused", async () => {
  await using s = await setUp();
  const client = s.client();
  await (await client.request("/ui/login")).body?.cancel();
  const forged = await client.request("/ui/callback?code=abc&state=not-the-state");
  assert.equal(forged.status, 400);
  assert.match(await forged.text(), /not the one this browser started/);
  const noCookie = await s.client().request("/ui/callback?code=abc&state=x");
  assert.equal(noCookie.status, 400);
  await noCookie.body?.cancel();
});

Deno.test("a decision goes through the form; another origin or a missing token is refused", async () => {
  await using s = await setUp();
  const id = await aRelease(s.app);
  const igor = s.client();
  await (await igor.signIn("igor")).body?.cancel();
  const page = await (await igor.request(`/ui/releases/${id}`)).text();
  const csrf = DashboardClient.csrfOf(page);
  const form = {
    csrf,
    action: "sign_off|INFORMATION_GOVERNANCE",
    decision: "approve",
    comment: "<script>alert(1)</script>",
  };

  const crossSite = await igor.post(`/ui/releases/${id}/decisions`, form, "https://evil.example");
  assert.equal(crossSite.status, 403);
  assert.match(await crossSite.text(), /not sent from this dashboard/);
  const noToken = await igor.post(`/ui/releases/${id}/decisions`, { ...form, csrf: "x" });
  assert.equal(noToken.status, 403);
  await noToken.body?.cancel();

  const done = await igor.post(`/ui/releases/${id}/decisions`, form);
  assert.equal(done.status, 303);
  const after = await (await igor.request(done.headers.get("location") ?? "")).text();
  assert.match(after, /Recorded\./);
  assert.match(after, /Igor \(DEMO information governance\)<\/td>/);

  // A type the person is not entitled to: a clear refusal, not a stack trace.
  const again = await igor.post(`/ui/releases/${id}/decisions`, {
    ...form,
    action: "sign_off|DATA_ENGINEER",
  });
  assert.equal(again.status, 403);
  const refusal = await again.text();
  assert.match(refusal, /role="alert"/);
  assert.doesNotMatch(refusal, /at .*\.ts:\d+/);
});

Deno.test("sign-out ends the session; a session expires", async () => {
  await using s = await setUp();
  const otto = s.client();
  const home = await (await otto.signIn("otto")).text();
  const out = await otto.post("/ui/logout", { csrf: DashboardClient.csrfOf(home) });
  assert.equal(out.status, 200);
  assert.match(await out.text(), /signed out/);
  const after = await otto.request("/ui/");
  assert.equal(after.status, 401);
  await after.body?.cancel();

  const dana = s.client();
  await (await dana.signIn("dana")).body?.cancel();
  s.clock.now += 61 * 60_000;
  const expired = await dana.request("/ui/");
  assert.equal(expired.status, 401);
  await expired.body?.cancel();
});

Deno.test("the static script and style are served from the app", async () => {
  await using s = await setUp();
  const client = s.client();
  const script = await client.request("/ui/static/live.js");
  assert.equal(script.status, 200);
  assert.match(script.headers.get("content-type") ?? "", /javascript/);
  await script.body?.cancel();
  const style = await client.request("/ui/static/style.css");
  assert.equal(style.status, 200);
  assert.match(style.headers.get("content-type") ?? "", /text\/css/);
  await style.body?.cancel();
});

/** Records a decision through the release page's form as `client`. */
async function decideInBrowser(
  client: DashboardClient,
  id: string,
  action: string,
  decision = "approve",
): Promise<Response> {
  const page = await (await client.request(`/ui/releases/${id}`)).text();
  return await client.post(`/ui/releases/${id}/decisions`, {
    csrf: DashboardClient.csrfOf(page),
    action,
    decision,
  });
}

Deno.test("a release goes through both gates in the dashboard, then shows on Published", async () => {
  await using s = await setUp();
  const id = await aRelease(s.app);
  const people: Record<string, DashboardClient> = {};
  for (const login of ["igor", "dana", "olive", "oscar", "rita", "otto"]) {
    people[login] = s.client();
    await (await people[login].signIn(login)).body?.cancel();
  }
  assert.equal(
    (await decideInBrowser(people.igor!, id, "sign_off|INFORMATION_GOVERNANCE")).status,
    303,
  );
  assert.equal((await decideInBrowser(people.dana!, id, "sign_off|DATA_ENGINEER")).status, 303);
  const packaged = await s.app.request(
    postJson("/project/package", aTransferRequest(), APPROVAL_KEY),
  );
  assert.equal(packaged.status, 200, await packaged.clone().text());

  const release = await (await people.olive!.request(`/ui/releases/${id}`)).text();
  assert.match(release, /Staging digest: <code>[0-9a-f]{64}<\/code>/);
  assert.match(release, /Request and runs/);
  assert.match(release, /<progress/);
  assert.match(release, /[0-9a-f]{128}/, "each staged table's SHA-512");
  for (const checker of ["olive", "oscar"]) {
    const done = await decideInBrowser(people[checker]!, id, "disclosure|OUTPUT_CHECKER");
    assert.equal(done.status, 303);
  }
  const published = await s.app.request(
    postJson("/project/publish", {
      project_name: "Pr042",
      project_start_time: "20250611_093000",
      destination: { name: "LSC", type: "filestore", format: "csv" },
    }, APPROVAL_KEY),
  );
  assert.equal(published.status, 200, await published.clone().text());

  const page = await (await people.rita!.request("/ui/published")).text();
  assert.match(page, /sha512sum --check manifest-sha512.txt/);
  assert.match(page, /Pr042/);
  const runs = await (await people.rita!.request("/ui/runs?project=Pr042&state=succeeded")).text();
  assert.match(runs, /package Pr042/);
  assert.doesNotMatch(runs, /Cancel run/, "no operator controls for a researcher");
});

Deno.test("only operators may cancel or resume a run", async () => {
  await using s = await setUp();
  const rita = s.client();
  const home = await (await rita.signIn("rita")).text();
  const refused = await rita.post("/ui/runs/some-run/cancel", {
    csrf: DashboardClient.csrfOf(home),
  });
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /Only operators \(roles: operator\) may cancel runs/);
  const otto = s.client();
  const ottoHome = await (await otto.signIn("otto")).text();
  const unknown = await otto.post("/ui/runs/no-such-run/cancel", {
    csrf: DashboardClient.csrfOf(ottoHome),
  });
  assert.equal(unknown.status, 404);
  assert.match(await unknown.text(), /role="alert"/);
});

Deno.test("a publish run an operator resumes in the dashboard is pending on its release", async () => {
  await using s = await setUp();
  const releaseId = await aRelease(s.app);
  const request = aTransferRequest();
  const run = aRunView({
    id: crypto.randomUUID(),
    action: "publish",
    state: "interrupted",
    project_name: request.project_name,
    project_start_time: request.project_start_time,
    destination: request.destination,
  });
  s.resumable.set(run.id as string, run);
  const otto = s.client();
  const home = await (await otto.signIn("otto")).text();
  const resumed = await otto.post(`/ui/runs/${run.id}/resume`, {
    csrf: DashboardClient.csrfOf(home),
  });
  assert.equal(resumed.status, 303);
  const view = await s.app.request(
    new Request(`http://test.local/releases/${releaseId}`, {
      headers: { "x-api-key": APPROVAL_KEY },
    }),
  );
  const pending = (await view.json()).payload.pending_publishes;
  assert.deepEqual(pending.map((p: { run_id: string }) => p.run_id), [run.id]);
});

Deno.test("before any package, the release page shows the request: source, tables, columns, types and descriptions", async () => {
  await using s = await setUp();
  s.world.catalogs = [ONCOLOGY, { ...ONCOLOGY, name: "oncology_extra" }];
  const id = await aRelease(s.app);
  const other = await s.app.request(postJson(
    "/project/package",
    aTransferRequest({
      dataset: {
        name: "Second <b>look</b>",
        schema_name: "oncology_extra",
        tables: [{ name: "tumour_stage", columns: [{ name: "stage_id" }] }],
      },
    }),
    APPROVAL_KEY,
  ));
  assert.equal(other.status, 409);
  assert.equal((await other.json()).payload.release_id, id, "the same project run, one release");
  const igor = s.client();
  await (await igor.signIn("igor")).body?.cancel();
  const response = await igor.request(`/ui/releases/${id}`);
  assert.equal(response.status, 200);
  const page = await response.text();
  assert.match(page, /Requested data/);
  assert.match(page, /postgresql db\.internal:5432/);
  assert.match(page, /research/);
  assert.match(page, /oncology_extract/);
  assert.match(page, /Tumour staging extract/);
  assert.match(page, /TNM stage lookup/);
  assert.match(page, /<code>stage_id<\/code><\/td><td>bigint<\/td><td>surrogate key<\/td>/);
  assert.match(page, /<code>stage_label<\/code><\/td><td>character varying\(20\)<\/td>/);
  assert.doesNotMatch(page, /secret_note/, "only the requested columns");
  assert.match(page, /Second &lt;b&gt;look&lt;\/b&gt;/, "every dataset, escaped");
  assert.match(page, /<code>oncology_extra<\/code>/);
  assert.doesNotMatch(page, /The metadata service could not/);
  assert.doesNotMatch(page, /sourceuser|sourcepassword|AzureKeyVault/, "never secret names");
  assert.doesNotMatch(page, /row-secret-one|\bT1\b/, "never row data");

  const api = await s.app.request(
    new Request(`http://test.local/releases/${id}`, { headers: { "x-api-key": APPROVAL_KEY } }),
  );
  assert.equal(api.status, 200);
  const { payload } = await api.json();
  assert.deepEqual(payload.request.source, {
    type: "postgresql",
    host: "db.internal",
    port: 5432,
    database: "research",
  });
  assert.deepEqual(payload.request.datasets.map((d: { schema_name: string }) => d.schema_name), [
    "oncology",
    "oncology_extra",
  ]);
  assert.doesNotMatch(JSON.stringify(payload), /sourceuser|sourcepassword|credentials/);
});

Deno.test("when the metadata service cannot describe the request, the page shows it as stored, with a notice", async () => {
  await using s = await setUp();
  const id = await aRelease(s.app);
  s.world.refuseConnections = "the source is down for maintenance";
  const igor = s.client();
  await (await igor.signIn("igor")).body?.cancel();
  const response = await igor.request(`/ui/releases/${id}`);
  assert.equal(response.status, 200);
  const page = await response.text();
  assert.match(page, /The metadata service could not describe the request now/);
  assert.match(page, /oncology_extract/);
  assert.match(page, /<code>stage_id<\/code><\/td><td>unknown<\/td>/);
  assert.match(page, /<code>stage_label<\/code>/);
  assert.doesNotMatch(page, /maintenance|Error:|at .*\.ts/, "no cause or stack trace");
  assert.ok(
    s.world.approvalLog.lines.some((line) => line.includes("ui_metadata_refused")),
    "the refusal is logged",
  );
});

Deno.test("a person with a revocation role revokes through the form; the page shows the certificate", async () => {
  await using s = await setUp();
  const id = await aRelease(s.app);
  const dana = s.client();
  await (await dana.signIn("dana")).body?.cancel();
  const danaPage = await (await dana.request(`/ui/releases/${id}`)).text();
  assert.doesNotMatch(danaPage, /Revoke release/, "no form without a revocation role");
  const refused = await dana.post(`/ui/releases/${id}/revoke`, {
    csrf: DashboardClient.csrfOf(danaPage),
    reason: "not mine to revoke",
  });
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /none of your roles is a revocation role/);

  const otto = s.client();
  await (await otto.signIn("otto")).body?.cancel();
  const page = await (await otto.request(`/ui/releases/${id}`)).text();
  assert.match(page, /Revoke release/);
  assert.match(page, /<dt>Expires<\/dt><dd>never<\/dd>/);
  const csrf = DashboardClient.csrfOf(page);
  const empty = await otto.post(`/ui/releases/${id}/revoke`, { csrf, reason: "  " });
  assert.equal(empty.status, 400);
  await empty.body?.cancel();
  const done = await otto.post(`/ui/releases/${id}/revoke`, { csrf, reason: "<b>consent</b>" });
  assert.equal(done.status, 303);
  const after = await (await otto.request(done.headers.get("location") ?? "")).text();
  assert.match(after, /<dd>revoked<\/dd>/);
  assert.match(after, /&lt;b&gt;consent&lt;\/b&gt;/, "the reason is escaped");
  assert.match(after, /Deletion certificate/);
  assert.match(after, /cert-42/);
  assert.doesNotMatch(after, /Revoke release/, "a revoked release has no form");
  const record = s.world.audit!.records.findLast((r) => r.action === `/ui/releases/${id}/revoke`);
  assert.deepEqual(record?.certificate, CERTIFICATE);
});
