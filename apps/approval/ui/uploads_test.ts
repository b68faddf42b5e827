import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { OidcLogin } from "../../../adapters/oidc/oidc_login.ts";
import { MemoryAuditTrail } from "../../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../../adapters/memory/memory_release_store.ts";
import { UploadQuarantine } from "../../../adapters/filesystem/upload_quarantine.ts";
import { parseApprovalPolicy } from "../../../domain/approval_policy.ts";
import type { TabularReport } from "../../../domain/tabular_checks.ts";
import { DEFAULT_UPLOAD_TYPES } from "../../../domain/upload_files.ts";
import { FakeWorld } from "../../../tests/support/apps.ts";
import { DashboardClient } from "../../../tests/support/dashboard_sign_in.ts";
import { startKeyServer, TEST_AUDIENCE } from "../../../tests/support/identity_providers.ts";
import {
  DEMO_APPROVAL_POLICY,
  DEMO_UI_CLIENT_ID,
  startDemoIdentityProvider,
} from "../../../tools/demo_identity_provider.ts";
import { personVerifierFromEnv } from "../../_shared/person_verifier_from_env.ts";
import { SCRIPT_TUS_PATH, TUS_PATH } from "./uploads.tsx";
import { runFolder } from "../../../domain/staging_layout.ts";
import { readKeySet, verifyRelease } from "../../../tools/verify_release.ts";

const BASE = "http://127.0.0.1:8000";
const LIMITS = {
  maxFileBytes: 1000,
  maxTotalBytes: 1500,
  maxFiles: 3,
  types: DEFAULT_UPLOAD_TYPES,
};

async function setUp() {
  const idp = await startDemoIdentityProvider({ redirectUris: [`${BASE}/ui/callback`] });
  const keys = await startKeyServer();
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: keys.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
  });
  assert.ok(verifier);
  const root = await Deno.makeTempDir({ prefix: "quarantine-" });
  const quarantine = await UploadQuarantine.open(join(root, "q"));
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  world.quarantine = quarantine;
  const policy = parseApprovalPolicy(DEMO_APPROVAL_POLICY);
  const app = world.approvalApp({
    gates: { policy, store: new MemoryReleaseStore(), verifier },
    dashboard: {
      login: new OidcLogin({
        issuerUrl: idp.issuer,
        clientId: DEMO_UI_CLIENT_ID,
        redirectUri: `${BASE}/ui/callback`,
      }),
      baseUrl: BASE,
      sessionTtlMs: 60 * 60_000,
      operatorRoles: ["operator"],
      uploads: {
        quarantine,
        limits: LIMITS,
        destinations: ["LSC"],
      },
    },
  });
  return {
    app,
    world,
    keys,
    quarantine,
    root,
    client: () => new DashboardClient(app, BASE),
    async [Symbol.asyncDispose]() {
      world[Symbol.dispose]();
      await keys[Symbol.asyncDispose]();
      await idp[Symbol.asyncDispose]();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** A signed-in uploader with a new data source; `tus` sends tus requests as the upload page does. */
async function anUploader(s: Awaited<ReturnType<typeof setUp>>, login = "rita") {
  const client = s.client();
  const home = await client.signIn(login);
  const csrf = DashboardClient.csrfOf(await home.text());
  const created = await client.post("/ui/uploads", {
    csrf,
    project_name: "Survey 2024",
    destination: "LSC",
  });
  assert.equal(created.status, 303);
  const page = created.headers.get("location") ?? "";
  const source = page.split("/").at(-1) ?? "";
  const tus = (method: string, path: string, headers: Record<string, string>, body?: BodyInit) =>
    client.request(path, {
      method,
      headers: { "tus-resumable": "1.0.0", "x-csrf-token": csrf, origin: BASE, ...headers },
      ...(body === undefined ? {} : { body }),
    });
  const create = (name: string, length: number) =>
    tus("POST", TUS_PATH, {
      "upload-length": String(length),
      "upload-metadata": `filename ${btoa(name)},source ${btoa(source)}`,
    });
  const patch = (location: string, offset: number, bytes: BodyInit | Uint8Array) =>
    tus("PATCH", location, {
      "content-type": "application/offset+octet-stream",
      "upload-offset": String(offset),
    }, bytes as BodyInit);
  return { client, csrf, source, page, tus, create, patch };
}

const CSV = new TextEncoder().encode("id,name,score\n1,Ann,2.5\n2,Bob,3\n3,Cy,\n");

Deno.test("tus: a chunked upload interrupted and resumed keeps every byte and its SHA-512", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const created = await u.create("survey.csv", CSV.length);
  assert.equal(created.status, 201);
  const location = new URL(created.headers.get("location") ?? "", BASE).pathname;
  assert.ok(location.startsWith(`${TUS_PATH}/`));

  assert.equal((await u.patch(location, 0, CSV.subarray(0, 10))).status, 204);
  // The connection drops mid-chunk: the body stream errors after a few bytes.
  const dropped = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(CSV.subarray(10, 17));
      controller.error(new Error("connection lost"));
    },
  });
  await u.patch(location, 10, dropped).then((r) => r.body?.cancel())
    .catch(() => {});
  const head = await u.tus("HEAD", location, {});
  const offset = Number(head.headers.get("upload-offset"));
  assert.ok(offset >= 10 && offset <= 17, `resumes from what was kept (${offset})`);
  const resumed = await u.patch(location, offset, CSV.subarray(offset));
  assert.equal(resumed.status, 204);
  assert.equal(resumed.headers.get("upload-offset"), String(CSV.length));

  const files = await s.quarantine.files(u.source);
  assert.equal(files.length, 1);
  const result = files[0]?.result;
  assert.equal(result?.sha512, createHash("sha512").update(CSV).digest("hex"));
  const checks = result?.checks as TabularReport;
  assert.equal(checks.rows, 3);
  assert.deepEqual(checks.columns.map((c) => c.inferred), ["integer", "text", "decimal"]);
  // Owner-only: folders 0700, files 0600 (never executable).
  const id = location.split("/").at(-1) ?? "";
  assert.equal((await stat(s.quarantine.pathOf(id))).mode & 0o777, 0o600);
  assert.equal((await stat(s.quarantine.root)).mode & 0o777, 0o700);

  const page = await (await u.client.request(u.page)).text();
  assert.match(page, /survey\.csv/);
  assert.match(page, /<td>Ann<\/td>/, "the uploader sees the preview");
});

Deno.test("tus: a forged offset is refused with 409; the uploader can end an unfinished upload", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const location = (await u.create("a.csv", CSV.length)).headers.get("location") ?? "";
  assert.equal((await u.patch(location, 0, CSV.subarray(0, 5))).status, 204);
  const forged = await u.patch(location, 20, CSV.subarray(20));
  assert.equal(forged.status, 409);
  await forged.body?.cancel();
  const head = await u.tus("HEAD", location, {});
  assert.equal(head.headers.get("upload-offset"), "5");
  // Termination: the uploader ends an unfinished upload; nothing of it is kept.
  const ended = await u.tus("DELETE", location, {});
  assert.equal(ended.status, 204);
  assert.deepEqual(await s.quarantine.files(u.source), []);
  assert.equal((await u.tus("HEAD", location, {})).status, 404);
});

Deno.test("tus: an oversize file (413), a full data source, a wrong type (415), an unsafe name (400)", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const expect = async (response: Response, status: number, text?: RegExp) => {
    assert.equal(response.status, status);
    const body = await response.text();
    if (text !== undefined) assert.match(body, text);
  };
  await expect(await u.create("big.csv", 1001), 413, /larger than the 1000 bytes/);
  await expect(
    await u.tus("POST", TUS_PATH, {
      "upload-defer-length": "1",
      "upload-metadata": `filename ${btoa("later.csv")},source ${btoa(u.source)}`,
    }),
    400,
    /must declare its length/,
  );
  await expect(await u.create("run.sh", 10), 415);
  await expect(await u.create("data.csv.exe", 10), 415);
  for (const name of ["../../escape.csv", "a/b.csv", "..\\x.csv", ".hidden.csv"]) {
    await expect(await u.create(name, 10), 400, /file name/);
  }
  // A PATCH beyond the declared length is refused too.
  const location = (await u.create("small.csv", 4)).headers.get("location") ?? "";
  const beyond = await u.patch(location, 0, new TextEncoder().encode("a,b\n1,2\n"));
  assert.equal(beyond.status, 413);
  await beyond.body?.cancel();
  // An executable, whatever its extension: refused once its bytes are in, and deleted.
  const script = new TextEncoder().encode("#!/bin/sh\nrm -rf /\n");
  const scriptAt = (await u.create("tricky.csv", script.length)).headers.get("location") ?? "";
  await expect(await u.patch(scriptAt, 0, script), 415, /executable/);
  assert.deepEqual(
    (await s.quarantine.files(u.source)).map((f) => f.name),
    ["small.csv"],
    "nothing refused is kept, and nothing escaped the folder",
  );
  assert.deepEqual((await readdir(s.root)).sort(), ["q"]);
  // Total bytes: 1500 in all.
  assert.equal((await u.create("one.csv", 1000)).status, 201);
  await expect(await u.create("two.csv", 600), 413, /1500 bytes in all/);
  await expect(await u.create("three.csv", 10), 201 as number);
  await expect(await u.create("four.csv", 10), 409, /at most 3 files/);
});

Deno.test("tus: a zero-byte file is finished at creation and checked", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const created = await u.create("empty.txt", 0);
  assert.equal(created.status, 201);
  await created.body?.cancel();
  const [file] = await s.quarantine.files(u.source);
  assert.equal(file?.result?.sha512, createHash("sha512").digest("hex"));
  assert.deepEqual((file?.result?.checks as TabularReport).errors, ["The file has no header row"]);
});

Deno.test("only the uploader writes; approvers see the checks and preview; others see nothing", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const location = (await u.create("a.csv", CSV.length)).headers.get("location") ?? "";
  assert.equal((await u.patch(location, 0, CSV)).status, 204);

  const igor = s.client();
  const igorCsrf = DashboardClient.csrfOf(await (await igor.signIn("igor")).text());
  const seen = await (await igor.request(u.page)).text();
  assert.match(seen, /<td>Bob<\/td>/, "an approver sees the preview");
  assert.doesNotMatch(seen, /data-upload-source/, "but cannot upload");
  const igorHead = await igor.request(location, {
    method: "HEAD",
    headers: { "tus-resumable": "1.0.0" },
  });
  assert.equal(igorHead.status, 403);

  const otto = s.client();
  await otto.signIn("otto");
  const hidden = await otto.request(u.page);
  assert.equal(hidden.status, 404);
  assert.doesNotMatch(await hidden.text(), /Bob/);
  assert.doesNotMatch(await (await otto.request("/ui/uploads")).text(), /Survey 2024/);

  // Without the page's token or origin, or without a session, nothing is accepted.
  const noToken = await u.client.request(TUS_PATH, {
    method: "POST",
    headers: { "tus-resumable": "1.0.0", origin: BASE, "upload-length": "1" },
  });
  assert.equal(noToken.status, 403);
  await noToken.body?.cancel();
  const otherOrigin = await u.tus("DELETE", location, { origin: "https://evil.example" });
  assert.equal(otherOrigin.status, 403);
  await otherOrigin.body?.cancel();
  const anonymous = await s.app.request(`${BASE}${location}`, {
    method: "HEAD",
    headers: { "tus-resumable": "1.0.0", "x-csrf-token": igorCsrf },
  });
  assert.equal(anonymous.status, 401);
});

Deno.test("the uploader overrides column types and marks the data source ready", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const location = (await u.create("a.csv", CSV.length)).headers.get("location") ?? "";
  assert.equal((await u.patch(location, 0, CSV)).status, 204);
  const saved = await u.client.post(`${u.page}/types`, {
    csrf: u.csrf,
    file: "a.csv",
    type_0: "text",
    type_1: "text",
    type_2: "decimal",
  });
  assert.equal(saved.status, 303);
  assert.deepEqual((await s.quarantine.source(u.source))?.column_types, {
    "a.csv": { id: "text" },
  });
  const ready = await u.client.post(`${u.page}/ready`, { csrf: u.csrf });
  assert.equal(ready.status, 303);
  const marked = await s.quarantine.source(u.source);
  assert.equal(marked?.state, "ready");
  assert.ok(marked?.release_id, "marking ready made a release");
  // The release awaits the policy's gates: the information governance approver sees it.
  const igor = s.client();
  const awaiting = await (await igor.signIn("igor")).text();
  assert.ok(awaiting.includes(`/ui/releases/${marked.release_id}`));
  assert.ok(awaiting.includes("Survey 2024"));
  const closed = await u.create("b.csv", 5);
  assert.equal(closed.status, 409);
  await closed.body?.cancel();
});

/** Records `person`'s approval for `gate|type` on release `id` through the dashboard. */
async function approve(
  s: Awaited<ReturnType<typeof setUp>>,
  login: string,
  id: string,
  action: string,
) {
  const client = s.client();
  const csrf = DashboardClient.csrfOf(await (await client.signIn(login)).text());
  const decided = await client.post(`/ui/releases/${id}/decisions`, {
    csrf,
    action,
    decision: "approve",
  });
  assert.equal(decided.status, 303, await decided.text());
}

Deno.test("upload to release: ready, both gates, staged exactly, published as a verified bag", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const location = (await u.create("survey.csv", CSV.length)).headers.get("location") ?? "";
  assert.equal((await u.patch(location, 0, CSV)).status, 204);
  assert.equal((await u.client.post(`${u.page}/ready`, { csrf: u.csrf })).status, 303);
  const releaseId = (await s.quarantine.source(u.source))?.release_id ?? "";

  // Staging waits for the first gate.
  const early = await u.client.post(`${u.page}/stage`, { csrf: u.csrf });
  assert.equal(early.status, 409);
  assert.match(await early.text(), /awaits approval at gate/);
  await approve(s, "igor", releaseId, "sign_off|INFORMATION_GOVERNANCE");
  await approve(s, "dana", releaseId, "sign_off|DATA_ENGINEER");
  const staged = await u.client.post(`${u.page}/stage`, { csrf: u.csrf });
  assert.equal(staged.status, 303, await staged.text());
  const run = {
    project: "Survey 2024",
    startTime: (await s.quarantine.source(u.source))!.project_start_time,
  };
  const staging = await s.world.filestore.staging(run);
  assert.ok(staging.digest);

  // Publishing waits for the disclosure gate, whose approvals bind to the staging digest.
  const waiting = await u.client.post(`${u.page}/publish`, { csrf: u.csrf });
  assert.equal(waiting.status, 409);
  await waiting.body?.cancel();
  await approve(s, "olive", releaseId, "disclosure|OUTPUT_CHECKER");
  await approve(s, "oscar", releaseId, "disclosure|OUTPUT_CHECKER");
  const published = await u.client.post(`${u.page}/publish`, { csrf: u.csrf });
  assert.equal(published.status, 303, await published.text());
  assert.equal((await s.quarantine.source(u.source))?.state, "published");

  // The bag holds the exact bytes uploaded, and `deno task verify-release` accepts it.
  const bag = join(s.world.base, runFolder("production", run));
  assert.deepEqual(await Deno.readFile(join(bag, "data", "outputs", "uploads", "survey.csv")), CSV);
  const keys = await (await s.world.publishApp().request("/.well-known/release-keys")).text();
  const keyFile = join(s.root, "keys.json");
  await Deno.writeTextFile(keyFile, keys);
  const checks = await verifyRelease(bag, await readKeySet(keyFile));
  assert.deepEqual(checks.filter((c) => c.ok !== true), [], JSON.stringify(checks));
  const crate = JSON.parse(await Deno.readTextFile(join(bag, "ro-crate-metadata.json")));
  assert.match(JSON.stringify(crate), /survey\.csv/);
});

Deno.test("staging refuses a quarantined file changed since it was uploaded", async () => {
  await using s = await setUp();
  const u = await anUploader(s);
  const location = (await u.create("survey.csv", CSV.length)).headers.get("location") ?? "";
  assert.equal((await u.patch(location, 0, CSV)).status, 204);
  assert.equal((await u.client.post(`${u.page}/ready`, { csrf: u.csrf })).status, 303);
  const releaseId = (await s.quarantine.source(u.source))?.release_id ?? "";
  await approve(s, "igor", releaseId, "sign_off|INFORMATION_GOVERNANCE");
  await approve(s, "dana", releaseId, "sign_off|DATA_ENGINEER");
  const id = location.split("/").at(-1) ?? "";
  const tampered = new Uint8Array(CSV);
  tampered[5] = 0x58;
  await Deno.writeFile(s.quarantine.pathOf(id), tampered);
  const refused = await u.client.post(`${u.page}/stage`, { csrf: u.csrf });
  assert.equal(refused.status, 409);
  assert.match(await refused.text(), /no longer has the SHA-512/);
  const run = {
    project: "Survey 2024",
    startTime: (await s.quarantine.source(u.source))!.project_start_time,
  };
  assert.equal((await s.world.filestore.staging(run)).digest, null, "nothing staged");
  assert.equal((await s.quarantine.source(u.source))?.state, "ready");
});

Deno.test("a script with a person's bearer token creates a data source and resumes an upload", async () => {
  await using s = await setUp();
  const token = await s.keys.sign({ sub: "script-user", realm_access: { roles: ["researcher"] } });
  const call = (method: string, path: string, headers: Record<string, string>, body?: BodyInit) =>
    s.app.request(`${BASE}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0", ...headers },
      ...(body === undefined ? {} : { body }),
    });
  const created = await call(
    "POST",
    "/uploads/sources",
    { "content-type": "application/json" },
    JSON.stringify({ project_name: "Scripted", destination: "LSC" }),
  );
  assert.equal(created.status, 201);
  const source = (await created.json()).payload.id as string;
  const upload = await call("POST", SCRIPT_TUS_PATH, {
    "upload-length": String(CSV.length),
    "upload-metadata": `filename ${btoa("s.csv")},source ${btoa(source)}`,
  });
  assert.equal(upload.status, 201);
  const location = upload.headers.get("location") ?? "";
  assert.ok(location.startsWith(`${SCRIPT_TUS_PATH}/`));
  const patch = (offset: number, bytes: Uint8Array) =>
    call("PATCH", location, {
      "content-type": "application/offset+octet-stream",
      "upload-offset": String(offset),
    }, bytes as BodyInit);
  assert.equal((await patch(0, CSV.subarray(0, 7))).status, 204);
  const head = await call("HEAD", location, {});
  assert.equal(head.headers.get("upload-offset"), "7");
  assert.equal((await patch(7, CSV.subarray(7))).status, 204);
  const [file] = await s.quarantine.files(source);
  assert.equal(file?.result?.sha512, createHash("sha512").update(CSV).digest("hex"));

  // Without a token, or with the service key only, nothing is accepted.
  const anonymous = await s.app.request(`${BASE}${location}`, {
    method: "HEAD",
    headers: { "tus-resumable": "1.0.0" },
  });
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  // Another person's token sees no such data source.
  const other = await s.keys.sign({ sub: "someone-else", realm_access: { roles: ["researcher"] } });
  const foreign = await s.app.request(`${BASE}${location}`, {
    method: "HEAD",
    headers: { authorization: `Bearer ${other}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(foreign.status, 404);
  await foreign.body?.cancel();
});
