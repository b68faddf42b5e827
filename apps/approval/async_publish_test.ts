/**
 * A publish accepted as a run (`Prefer: respond-async`, or a resumed run) gets its release's publication
 * (receipt, crate, files) recorded when the run ends, as a synchronous publish does (`docs/revocation.md`):
 * through `GET /runs/{id}` read through the gateway, or the release sweep, also after a gateway restart;
 * a failed run records none; a revoked release never gets one. The publish service is faked here: it
 * accepts publishes as runs and lets each test end them.
 */
import assert from "node:assert/strict";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { openSqliteReleaseStore } from "../../adapters/sqlite/sqlite_release_store.ts";
import type { ReleaseStore } from "../../ports/release_store.ts";
import { APPROVAL_KEY, FakeWorld } from "../../tests/support/apps.ts";
import { aRunView } from "../../tests/support/fake_publish_runs_api.ts";
import { aPublishRequest, postJson } from "../../tests/support/requests.ts";
import type { ApprovalService } from "./app.ts";

const CRATE = {
  "@context": "https://w3id.org/ro/crate/1.1/context",
  "@graph": [{ "@id": "ro-crate-metadata.json", "@type": "CreativeWork" }],
};
const RECEIPT = {
  jws: "eyJhbGciOiJFZERTQSJ9.eyJyZWxlYXNlIjoxfQ.c2ln",
  claims: { sub: "sha512:ab" },
};
const FILES = [{ file_path: "Pr042/data.csv", hash_value: "ab", total_bytes: 3 }];
const CERTIFICATE = { id: "cert-1", deleted: ["Pr042/data.csv"] };
const ASYNC = { prefer: "respond-async" };
const DAY = 86_400_000;

/** The fake publish service's runs and what it was sent. */
class FakePublishRuns {
  readonly runs = new Map<string, Record<string, unknown>>();
  readonly revoked: Record<string, unknown>[] = [];
  /** The status `GET /runs/{id}` answers when not 200 (a publish service in trouble). */
  getStatus = 200;
  /** A synchronous publish starts its run and never answers (the gateway's call times out). */
  hangSync = false;
  /** When the runs are created, by the publish service's clock. */
  createdAt = "2026-12-06T12:00:00.000Z";

  /** Ends run `id` as the publish service stores it: succeeded with the publish reply, or failed. */
  end(id: string, state: "succeeded" | "failed" | "cancelled" | "interrupted"): void {
    const run = this.runs.get(id);
    assert.ok(run, `no run ${id}`);
    run.state = state;
    run.finished_at = state === "interrupted" ? null : "2026-12-06T12:30:00.000Z";
    run.version = (run.version as number) + 1;
    run.outcome = state === "succeeded"
      ? {
        status: 200,
        body: {
          status: "success",
          payload: { data_published: FILES, receipt: RECEIPT, crate: CRATE },
        },
      }
      : state === "failed"
      ? {
        status: 500,
        body: { status: "error", payload: { detail: "disk full", code: "internal_error" } },
      }
      : null;
  }

  readonly fetch: typeof globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const method = init?.method ?? "GET";
    const headers = new Headers(init?.headers);
    if (method === "POST" && url.pathname === "/data-publish/publish") {
      const body = JSON.parse(String(init?.body));
      const sync = !/respond-async/.test(headers.get("prefer") ?? "");
      if (sync && !this.hangSync) {
        return Promise.resolve(Response.json({
          status: "success",
          payload: { data_published: FILES, receipt: RECEIPT, crate: CRATE },
        }));
      }
      const run = aRunView({
        id: crypto.randomUUID(),
        action: "publish",
        project_name: body.project_name,
        project_start_time: body.project_start_time,
        destination: body.destination,
        dataset: { source_host: null, schema_name: "", tables: null },
        created_at: this.createdAt,
      });
      this.runs.set(run.id as string, run);
      if (sync) {
        return new Promise((_, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
        });
      }
      return Promise.resolve(Response.json({ status: "success", payload: run }, {
        status: 202,
        headers: { location: `/runs/${run.id}`, "preference-applied": "respond-async" },
      }));
    }
    if (method === "POST" && url.pathname === "/data-publish/revoke") {
      this.revoked.push(JSON.parse(String(init?.body)));
      return Promise.resolve(
        Response.json({ status: "success", payload: { certificate: CERTIFICATE } }),
      );
    }
    if (method === "GET" && url.pathname === "/runs") {
      const runs = [...this.runs.values()].filter((run) =>
        run.project_name === url.searchParams.get("project")
      ).reverse();
      return Promise.resolve(Response.json({ status: "success", payload: { runs, next: null } }));
    }
    const match = /^\/runs\/([^/]+)(\/resume|\/events)?$/.exec(url.pathname);
    if (match !== null) {
      const run = this.runs.get(decodeURIComponent(match[1]!));
      if (run === undefined) {
        return Promise.resolve(Response.json({
          status: "error",
          payload: { detail: "Cannot find run", code: "run_not_found", request_id: "x" },
        }, { status: 404 }));
      }
      if (match[2] === "/resume" && method === "POST") {
        run.state = "queued";
        run.finished_at = null;
        run.version = (run.version as number) + 1;
        return Promise.resolve(Response.json({ status: "success", payload: run }, { status: 202 }));
      }
      if (match[2] === "/events") {
        // Two events, split across chunks as a network may, then the end (the run is final).
        const text =
          `id: 1\nevent: run\ndata: ${JSON.stringify({ ...run, state: "running" })}\n\n` +
          `: keep-alive\n\nid: ${run.version}\nevent: run\ndata: ${JSON.stringify(run)}\n\n`;
        const bytes = new TextEncoder().encode(text);
        const cut = [0, 7, Math.floor(bytes.length / 2), bytes.length - 3, bytes.length];
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 1; i < cut.length; i++) {
              controller.enqueue(bytes.slice(cut[i - 1], cut[i]));
            }
            controller.close();
          },
        });
        return Promise.resolve(
          new Response(body, { headers: { "content-type": "text/event-stream" } }),
        );
      }
      if (this.getStatus !== 200) {
        return Promise.resolve(Response.json({
          status: "error",
          payload: { detail: "run store unavailable", code: "run_store_unavailable" },
        }, { status: this.getStatus }));
      }
      return Promise.resolve(Response.json({ status: "success", payload: run }));
    }
    return Promise.resolve(Response.json({ status: "error", payload: {} }, { status: 404 }));
  };
}

/** A gateway over `store` whose publish service is `publish`, its clock `clock`. */
function aGateway(
  world: FakeWorld,
  publish: FakePublishRuns,
  clock: { now: Date },
  store?: ReleaseStore,
  timeoutMs?: number,
): ApprovalService {
  return world.approvalService({
    fetch: publish.fetch,
    now: () => clock.now,
    ...(store === undefined ? {} : { releaseStore: store }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

/** Calls the gateway with its key. */
async function call(
  service: ApprovalService,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const request = init.body === undefined
    ? new Request(`http://test.local${path}`, {
      method: init.method ?? "GET",
      headers: { "x-api-key": APPROVAL_KEY, ...init.headers },
    })
    : postJson(path, init.body, APPROVAL_KEY, init.headers);
  const res = await service.app.request(request);
  return { status: res.status, json: await res.json() };
}

/** Publishes asynchronously; returns the release id and the run id. */
async function publishAsync(service: ApprovalService, body: unknown = aPublishRequest()) {
  const { status, json } = await call(service, "/project/publish", { body, headers: ASYNC });
  assert.equal(status, 202, JSON.stringify(json));
  const runId = json.payload.id as string;
  const { json: list } = await call(service, "/releases");
  const release = list.payload.releases.find((r: { pending_publishes: { run_id: string }[] }) =>
    r.pending_publishes.some((p) => p.run_id === runId)
  );
  assert.ok(release, "the release waits for the run");
  return { releaseId: release.id as string, runId };
}

async function releaseOf(service: ApprovalService, id: string) {
  const { status, json } = await call(service, `/releases/${id}`);
  assert.equal(status, 200, JSON.stringify(json));
  return json.payload;
}

function aWorld() {
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  return world;
}

Deno.test("an async publish: pending with its expiry at once; GET /runs/{id} records receipt, crate and files", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const expiresAt = "2027-01-01T00:00:00.000Z";
  const { releaseId, runId } = await publishAsync(gateway, {
    ...aPublishRequest(),
    expires_at: expiresAt,
  });

  const pending = await releaseOf(gateway, releaseId);
  assert.equal(pending.publication, null);
  assert.equal(pending.expires_at, expiresAt, "expiry starts when the publish is asked");
  assert.deepEqual(pending.pending_publishes, [{
    run_id: runId,
    requested_at: clock.now.toISOString(),
  }]);
  assert.equal((await call(gateway, `/releases/${releaseId}/crate`)).status, 404);

  // Read while running: nothing recorded yet.
  const running = await call(gateway, `/runs/${runId}`);
  assert.equal(running.status, 200);
  assert.equal((await releaseOf(gateway, releaseId)).publication, null);

  publish.end(runId, "succeeded");
  clock.now = new Date("2026-12-06T13:00:00.000Z");
  const done = await call(gateway, `/runs/${runId}`);
  assert.equal(done.status, 200);
  assert.equal(done.json.payload.state, "succeeded", "the run is relayed as it is");

  const published = await releaseOf(gateway, releaseId);
  assert.deepEqual(published.publication, {
    published_at: "2026-12-06T12:30:00.000Z",
    receipt: RECEIPT,
    files: FILES,
  });
  assert.equal(published.expires_at, expiresAt, "the expiry set when asked is kept");
  assert.deepEqual(published.pending_publishes, []);
  const crate = await gateway.app.request(
    new Request(`http://test.local/releases/${releaseId}/crate`, {
      headers: { "x-api-key": APPROVAL_KEY },
    }),
  );
  assert.equal(crate.status, 200);
  assert.deepEqual(await crate.json(), CRATE);

  // Reading the run again changes nothing.
  await call(gateway, `/runs/${runId}`);
  assert.deepEqual(await releaseOf(gateway, releaseId), published);
});

Deno.test("the release sweep records a finished async publish; a running one stays pending", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const { releaseId, runId } = await publishAsync(gateway);

  await gateway.sweepReleases();
  assert.equal((await releaseOf(gateway, releaseId)).pending_publishes.length, 1);

  // An interrupted run may be resumed: still pending.
  publish.end(runId, "interrupted");
  await gateway.sweepReleases();
  assert.equal((await releaseOf(gateway, releaseId)).pending_publishes.length, 1);

  // The publish service cannot show it: still pending, logged, retried next time.
  publish.end(runId, "succeeded");
  publish.getStatus = 503;
  await gateway.sweepReleases();
  assert.equal((await releaseOf(gateway, releaseId)).pending_publishes.length, 1);
  assert.ok(
    world.approvalLog.lines.some((line) =>
      line.includes("release_publish_run_not_recorded") && line.includes("publish_run_unreadable")
    ),
  );

  publish.getStatus = 200;
  await gateway.sweepReleases();
  const published = await releaseOf(gateway, releaseId);
  assert.deepEqual(published.publication?.receipt, RECEIPT);
  assert.deepEqual(published.publication?.files, FILES);
  assert.deepEqual(published.pending_publishes, []);
  assert.ok(
    world.approvalLog.lines.some((line) =>
      line.includes("release_publish_run_settled") && line.includes(runId)
    ),
  );
});

Deno.test("a failed or cancelled async publish records no publication and is no longer pending", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const failed = await publishAsync(gateway);
  publish.end(failed.runId, "failed");
  await gateway.sweepReleases();
  const afterFailure = await releaseOf(gateway, failed.releaseId);
  assert.equal(afterFailure.publication, null);
  assert.deepEqual(afterFailure.pending_publishes, []);

  const cancelled = await publishAsync(gateway);
  assert.equal(cancelled.releaseId, failed.releaseId, "the same project run");
  publish.end(cancelled.runId, "cancelled");
  await call(gateway, `/runs/${cancelled.runId}`);
  const afterCancel = await releaseOf(gateway, cancelled.releaseId);
  assert.equal(afterCancel.publication, null);
  assert.deepEqual(afterCancel.pending_publishes, []);

  // A run the publish service no longer knows (pruned) is dropped, with nothing recorded.
  const gone = await publishAsync(gateway);
  publish.runs.delete(gone.runId);
  await gateway.sweepReleases();
  const afterGone = await releaseOf(gateway, gone.releaseId);
  assert.equal(afterGone.publication, null);
  assert.deepEqual(afterGone.pending_publishes, []);
});

Deno.test("a gateway restarted between the publish and the run's end still records the publication", async () => {
  using world = aWorld();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/releases.sqlite`;
    const publish = new FakePublishRuns();
    const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
    let releaseId: string;
    let runId: string;
    {
      await using store = await openSqliteReleaseStore({ path });
      ({ releaseId, runId } = await publishAsync(aGateway(world, publish, clock, store)));
    }
    // The gateway is gone; the run ends meanwhile; a new gateway opens the same store.
    publish.end(runId, "succeeded");
    await using store = await openSqliteReleaseStore({ path });
    const restarted = aGateway(world, publish, clock, store);
    await restarted.sweepReleases();
    const published = await releaseOf(restarted, releaseId);
    assert.deepEqual(published.publication?.receipt, RECEIPT);
    assert.deepEqual(published.pending_publishes, []);
    assert.equal((await call(restarted, `/releases/${releaseId}/crate`)).status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a release revoked while its publish runs never gets the publication", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const { releaseId, runId } = await publishAsync(gateway);
  const revoke = await call(gateway, `/releases/${releaseId}/revoke`, {
    body: { reason: "consent withdrawn" },
  });
  assert.equal(revoke.status, 200, JSON.stringify(revoke.json));
  assert.equal(revoke.json.payload.state, "revoked");
  assert.deepEqual(revoke.json.payload.pending_publishes, []);

  publish.end(runId, "succeeded");
  await call(gateway, `/runs/${runId}`);
  await gateway.sweepReleases();
  const revoked = await releaseOf(gateway, releaseId);
  assert.equal(revoked.state, "revoked");
  assert.equal(revoked.publication, null);
  assert.equal((await call(gateway, `/releases/${releaseId}/crate`)).status, 404);

  // And a revoked release refuses a new async publish before anything is forwarded.
  const runs = publish.runs.size;
  const again = await call(gateway, "/project/publish", {
    body: aPublishRequest(),
    headers: ASYNC,
  });
  assert.equal(again.status, 409);
  assert.equal(again.json.payload.code, "release_revoked");
  assert.equal(publish.runs.size, runs);
});

Deno.test("an expired release with a publish under way is revoked; the run's end records nothing", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const { releaseId, runId } = await publishAsync(gateway, {
    ...aPublishRequest(),
    expires_at: new Date(clock.now.getTime() + DAY).toISOString(),
  });
  clock.now = new Date(clock.now.getTime() + 2 * DAY);
  await gateway.sweepReleases();
  assert.equal((await releaseOf(gateway, releaseId)).state, "revoked");
  publish.end(runId, "succeeded");
  await gateway.sweepReleases();
  assert.equal((await releaseOf(gateway, releaseId)).publication, null);
});

Deno.test("a resumed publish run is pending on its release and recorded when it succeeds", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  // A synchronous publish first: the release exists, published, without expiry.
  const sync = await call(gateway, "/project/publish", { body: aPublishRequest() });
  assert.equal(sync.status, 200);
  const releaseId = sync.json.payload.release_id as string;
  // A publish run of the same project run, left interrupted by a publish service crash (its caller
  // waiting synchronously got an error, so the gateway never saw the run).
  const run = aRunView({
    id: crypto.randomUUID(),
    action: "publish",
    state: "interrupted",
    project_name: aPublishRequest().project_name,
    project_start_time: aPublishRequest().project_start_time,
    destination: aPublishRequest().destination,
  });
  publish.runs.set(run.id as string, run);
  const resumed = await call(gateway, `/runs/${run.id}/resume`, { method: "POST" });
  assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
  assert.deepEqual(
    (await releaseOf(gateway, releaseId)).pending_publishes.map((p: { run_id: string }) =>
      p.run_id
    ),
    [run.id],
  );

  publish.end(run.id as string, "succeeded");
  await gateway.sweepReleases();
  const published = await releaseOf(gateway, releaseId);
  assert.equal(published.publication.published_at, "2026-12-06T12:30:00.000Z");
  assert.deepEqual(published.pending_publishes, []);

  // A resumed package run, or a run of a project run without a release, changes no release.
  const elsewhere = aRunView({
    id: crypto.randomUUID(),
    action: "publish",
    state: "interrupted",
    project_name: "Pr999",
  });
  const aPackage = aRunView({ id: crypto.randomUUID(), action: "package", state: "interrupted" });
  const before = (await call(gateway, "/releases")).json.payload.releases;
  for (const other of [elsewhere, aPackage]) {
    publish.runs.set(other.id as string, other);
    const res = await call(gateway, `/runs/${other.id}/resume`, { method: "POST" });
    assert.equal(res.status, 202);
  }
  assert.deepEqual((await call(gateway, "/releases")).json.payload.releases, before);
});

Deno.test("following an async publish's events to their end records the publication", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock);
  const { releaseId, runId } = await publishAsync(gateway);
  publish.end(runId, "succeeded");
  const res = await gateway.app.request(
    new Request(`http://test.local/runs/${runId}/events`, {
      headers: { "x-api-key": APPROVAL_KEY, accept: "text/event-stream" },
    }),
  );
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.equal(text.match(/event: run/g)?.length, 2, "the stream is relayed as it came");
  const published = await releaseOf(gateway, releaseId);
  assert.deepEqual(published.publication?.receipt, RECEIPT);
  assert.deepEqual(published.pending_publishes, []);
});

Deno.test("a synchronous publish whose call times out: its run is pending on the release and its end recorded", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = aGateway(world, publish, clock, undefined, 100);
  publish.hangSync = true;
  const { status, json } = await call(gateway, "/project/publish", { body: aPublishRequest() });
  assert.equal(status, 504, JSON.stringify(json));
  const [runId] = [...publish.runs.keys()];
  assert.ok(runId);
  const { json: list } = await call(gateway, "/releases");
  const [release] = list.payload.releases;
  assert.deepEqual(release.pending_publishes.map((p: { run_id: string }) => p.run_id), [runId]);
  assert.equal(release.publication, null);
  assert.ok(
    world.approvalLog.lines.some((line) =>
      line.includes("release_publish_unanswered") && line.includes(runId)
    ),
  );

  publish.end(runId, "succeeded");
  await gateway.sweepReleases();
  const published = await releaseOf(gateway, release.id);
  assert.deepEqual(published.publication?.receipt, RECEIPT);
  assert.deepEqual(published.pending_publishes, []);
});

Deno.test("a synchronous publish that never reached the publish service records no run", async () => {
  using world = aWorld();
  const publish = new FakePublishRuns();
  const clock = { now: new Date("2026-12-06T12:00:00.000Z") };
  const gateway = world.approvalService({
    fetch: (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      if (url.pathname === "/data-publish/publish") {
        return Promise.reject(new TypeError("connection refused"));
      }
      return publish.fetch(input, init);
    },
    now: () => clock.now,
  });
  const { status } = await call(gateway, "/project/publish", { body: aPublishRequest() });
  assert.equal(status, 502);
  const { json: list } = await call(gateway, "/releases");
  assert.deepEqual(list.payload.releases[0].pending_publishes, []);
  assert.ok(
    world.approvalLog.lines.some((line) =>
      line.includes("release_publish_unanswered") && line.includes('"run_id":null')
    ),
  );
});
