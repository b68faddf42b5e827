/**
 * The gateway's runs API and `Prefer: respond-async`, over real HTTP: the gateway listens on a port and
 * forwards to {@link FakePublishRunsApi}, a test double of the publish service's runs API on another.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { memoryLogger } from "../_shared/log.ts";
import { RefusalTally } from "../_shared/refusals.ts";
import { listen } from "../_shared/serve.ts";
import { createApprovalApp } from "./app.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { aPublishRequest, aTransferRequest } from "../../tests/support/requests.ts";
import { APPROVAL_KEY, METADATA_KEY, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { aRunView, FakePublishRunsApi } from "../../tests/support/fake_publish_runs_api.ts";

const RUN_ID = aRunView().id as string;

/**
 * The gateway on a free port, served as in production (`listen`), forwarding to `publishBaseUrl`;
 * `await using` it to stop it.
 */
async function aGateway(
  publishBaseUrl: string,
  options: { streamIdleMs?: number; shutdownSignal?: AbortSignal; auditTrail?: MemoryAuditTrail } =
    {},
) {
  const log = memoryLogger("approval");
  const refusals = new RefusalTally({ service: "approval", log, intervalMs: 60_000 });
  const app = createApprovalApp({
    releaseStore: new MemoryReleaseStore(),
    apiKey: APPROVAL_KEY,
    log,
    refusals,
    maxBodyBytes: 64 * 1024,
    metadata: { name: "metadata", baseUrl: "http://127.0.0.1:9/", apiKey: METADATA_KEY },
    publish: { name: "publish", baseUrl: publishBaseUrl, apiKey: PUBLISH_KEY },
    timeoutMs: 5000,
    readyTimeoutMs: 1000,
    fetch: globalThis.fetch,
    streamIdleMs: options.streamIdleMs,
    shutdownSignal: options.shutdownSignal,
    auditTrail: options.auditTrail,
  });
  const server = await listen(app.fetch, {
    hostname: "127.0.0.1",
    port: 0,
    headersTimeoutMs: 10_000,
  });
  const base = `http://127.0.0.1:${server.port}`;
  return {
    log,
    /** Calls the gateway with its key (unless `headers` sets another). */
    call(path: string, init: RequestInit = {}): Promise<Response> {
      const headers = new Headers(init.headers);
      if (!headers.has("x-api-key")) headers.set("x-api-key", APPROVAL_KEY);
      return fetch(base + path, { ...init, headers });
    },
    async [Symbol.asyncDispose]() {
      refusals.close();
      await server.shutdown();
    },
  };
}

function postJsonInit(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * Reads `reader` until `done(text)` holds for the text read so far, or the stream ends. Fails after
 * `boundMs` instead of hanging when what is awaited never comes (a bound, not a timing assertion).
 */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
  boundMs = 10_000,
): Promise<{ text: string; ended: boolean }> {
  const decoder = new TextDecoder();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`nothing more after ${JSON.stringify(text)}`)),
      boundMs,
    );
  });
  try {
    while (!done(text)) {
      const read = await Promise.race([reader.read(), bound]);
      if (read.done) return { text, ended: true };
      text += decoder.decode(read.value, { stream: true });
    }
    return { text, ended: false };
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for `promise`, failing after `boundMs` with `what` instead of hanging. */
async function within<T>(promise: Promise<T>, what: string, boundMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen`)), boundMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Checks `body` against what the gateway's OpenAPI document declares for `method path` and `status`. */
async function assertDeclared(
  gateway: { call(path: string): Promise<Response> },
  [method, path, status]: [string, string, number],
  body: unknown,
): Promise<void> {
  const doc = await (await gateway.call("/openapi.json")).json();
  const declared = doc.paths[path]?.[method]?.responses?.[String(status)];
  assert.ok(declared, `${method} ${path} declares ${status}`);
  const validate = new Ajv2020({ strict: false, allErrors: true })
    .compile({ ...declared.content["application/json"].schema, components: doc.components });
  assert.ok(validate(body), JSON.stringify(validate.errors));
}

function eventsIn(text: string): string[] {
  return text.split("\n\n").filter((block) => block.startsWith("id: "));
}

Deno.test("approval app forwards GET /runs/{id} and GET /runs to the publish service", async (t) => {
  await using api = new FakePublishRunsApi(PUBLISH_KEY);
  await using gateway = await aGateway(api.baseUrl);

  await t.step("a run is relayed as the publish service gave it", async () => {
    const res = await gateway.call(`/runs/${RUN_ID}`);
    assert.equal(res.status, 200);
    const json = await res.json();
    assert.deepEqual(json, { status: "success", payload: aRunView() });
    await assertDeclared(gateway, ["get", "/runs/{id}", 200], json);
    assert.equal(api.received.at(-1)?.target, `/runs/${RUN_ID}`);
    assert.equal(api.received.at(-1)?.method, "GET");
  });

  await t.step(
    "a finished run with table progress and an outcome matches the declared schema",
    async () => {
      const done = aRunView({
        id: "done-run",
        state: "succeeded",
        tables: [{
          name: "tumour_stage",
          state: "done",
          rows: 2,
          bytes: 40,
          started_at: "2025-06-11T10:00:01.000Z",
          finished_at: "2025-06-11T10:00:02.000Z",
          sha512: "a".repeat(128),
          expected_rows: { value: 2, estimate: true },
        }],
        outcome: { status: 200, body: { status: "success", payload: { data_retrieved: [] } } },
        version: 4,
      });
      api.runs.set("done-run", done);
      const res = await gateway.call("/runs/done-run");
      const json = await res.json();
      assert.deepEqual(json.payload, done);
      await assertDeclared(gateway, ["get", "/runs/{id}", 200], json);
    },
  );

  await t.step("an unknown run: the publish service's 404 is relayed", async () => {
    const res = await gateway.call("/runs/no-such-run");
    const json = await res.json();
    assert.equal(res.status, 404);
    assert.equal(json.payload.code, "run_not_found");
    assert.equal(json.payload.detail, 'Cannot find run "no-such-run"');
  });

  await t.step("the query string passes through and `next` works through the gateway", async () => {
    const res = await gateway.call("/runs?project=Pr042&limit=1");
    const json = await res.json();
    assert.equal(res.status, 200);
    assert.equal(api.received.at(-1)?.target, "/runs?project=Pr042&limit=1");
    assert.equal(json.payload.runs.length, 1);
    assert.equal(json.payload.next, "/runs?project=Pr042&limit=1&cursor=c2");
    await assertDeclared(gateway, ["get", "/runs", 200], json);
    const next = await gateway.call(json.payload.next);
    assert.equal(next.status, 200);
    await next.body?.cancel();
    assert.equal(api.received.at(-1)?.target, "/runs?project=Pr042&limit=1&cursor=c2");
  });

  await t.step("a 400 for a bad limit is relayed", async () => {
    const res = await gateway.call("/runs?limit=0");
    assert.equal(res.status, 400);
    assert.equal((await res.json()).payload.code, "invalid_request");
  });
});

Deno.test("approval app forwards Prefer: respond-async on package and publish", async (t) => {
  await using api = new FakePublishRunsApi(PUBLISH_KEY);
  await using gateway = await aGateway(api.baseUrl);
  const cases: [string, unknown][] = [
    ["package", aTransferRequest()],
    ["publish", aPublishRequest()],
  ];
  for (const [action, body] of cases) {
    await t.step(
      `${action}: 202, Location, Preference-Applied and the run, unchanged`,
      async () => {
        const res = await gateway.call(
          `/project/${action}`,
          postJsonInit(body, { prefer: "respond-async" }),
        );
        const json = await res.json();
        assert.equal(res.status, 202);
        assert.equal(api.received.at(-1)?.target, `/data-publish/${action}`);
        assert.equal(api.received.at(-1)?.headers.get("prefer"), "respond-async");
        // A publish also carries its release (`docs/revocation.md`).
        const { release, ...forwarded } = JSON.parse(api.received.at(-1)?.body ?? "");
        assert.deepEqual(forwarded, body);
        assert.equal(release === undefined, action === "package");
        assert.equal(json.status, "success");
        assert.equal(json.payload.action, action);
        assert.equal(json.payload.state, "queued");
        assert.equal(res.headers.get("location"), `/runs/${json.payload.id}`);
        assert.equal(res.headers.get("preference-applied"), "respond-async");
        await assertDeclared(gateway, ["post", `/project/${action}`, 202], json);
        const followed = await gateway.call(res.headers.get("location") ?? "");
        assert.equal(followed.status, 200);
        assert.deepEqual((await followed.json()).payload, json.payload);
      },
    );

    await t.step(`${action} without Prefer: the synchronous reply, no Prefer sent`, async () => {
      const res = await gateway.call(`/project/${action}`, postJsonInit(body));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("location"), null);
      assert.equal((await res.json()).status, "success");
      assert.equal(api.received.at(-1)?.headers.get("prefer"), null);
    });
  }

  await t.step("validate never passes Prefer on", async () => {
    const res = await gateway.call(
      "/project/validate",
      postJsonInit(aTransferRequest(), { prefer: "respond-async" }),
    );
    await res.body?.cancel();
    assert.equal(api.received.at(-1)?.target, "/data-publish/validate");
    assert.equal(api.received.at(-1)?.headers.get("prefer"), null);
  });
});

Deno.test("approval app forwards POST /runs/{id}/cancel and /resume", async (t) => {
  await using api = new FakePublishRunsApi(PUBLISH_KEY);
  await using gateway = await aGateway(api.baseUrl);

  await t.step("resume of a queued run: the publish service's 409 is relayed", async () => {
    const res = await gateway.call(`/runs/${RUN_ID}/resume`, { method: "POST" });
    const json = await res.json();
    assert.equal(res.status, 409);
    assert.equal(json.payload.code, "invalid_run_transition");
  });

  await t.step("cancel: 200 with the cancelled run; again: 200 unchanged", async () => {
    const first = await gateway.call(`/runs/${RUN_ID}/cancel`, { method: "POST" });
    const cancelled = (await first.json()).payload;
    assert.equal(first.status, 200);
    assert.equal(cancelled.state, "cancelled");
    await assertDeclared(gateway, ["post", "/runs/{id}/cancel", 200], {
      status: "success",
      payload: cancelled,
    });
    assert.equal(api.received.at(-1)?.method, "POST");
    assert.equal(api.received.at(-1)?.target, `/runs/${RUN_ID}/cancel`);
    const again = await gateway.call(`/runs/${RUN_ID}/cancel`, { method: "POST" });
    assert.equal(again.status, 200);
    assert.deepEqual((await again.json()).payload, cancelled);
  });

  await t.step("cancel and resume are audited like every POST; reads are not", async () => {
    const trail = new MemoryAuditTrail();
    await using gatewayWithTrail = await aGateway(api.baseUrl, { auditTrail: trail });
    await (await gatewayWithTrail.call(`/runs/${RUN_ID}`)).body?.cancel();
    const res = await gatewayWithTrail.call(`/runs/${RUN_ID}/resume`, { method: "POST" });
    await res.body?.cancel();
    assert.deepEqual(
      trail.records.map((r) => [r.action, r.outcome, r.status, r.error_code]),
      [[`/runs/${RUN_ID}/resume`, "error", 409, "invalid_run_transition"]],
    );
  });

  await t.step("resume of an interrupted run: 202 with Location", async () => {
    const run = aRunView({ id: "interrupted-run", state: "interrupted" });
    api.runs.set("interrupted-run", run);
    const res = await gateway.call("/runs/interrupted-run/resume", { method: "POST" });
    const json = await res.json();
    assert.equal(res.status, 202);
    assert.equal(res.headers.get("location"), "/runs/interrupted-run");
    assert.equal(json.payload.state, "queued");
    await assertDeclared(gateway, ["post", "/runs/{id}/resume", 202], json);
  });
});

Deno.test("approval app relays GET /runs/{id}/events as it arrives", async (t) => {
  await t.step(
    "events arrive one by one, Last-Event-ID is forwarded, the end is relayed",
    async () => {
      await using api = new FakePublishRunsApi(PUBLISH_KEY);
      await using gateway = await aGateway(api.baseUrl);
      const res = await gateway.call(`/runs/${RUN_ID}/events`, {
        headers: { "last-event-id": "3" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      assert.equal(res.headers.get("cache-control"), "no-cache");
      const upstream = await within(api.nextStream(), "the publish stream opening");
      assert.equal(upstream.lastEventId, "3");
      assert.equal(api.received.at(-1)?.headers.get("accept"), "text/event-stream");

      const reader = res.body!.getReader();
      upstream.send(aRunView({ state: "running", version: 4 }));
      // The second event is sent only once the first has reached the client through the gateway.
      const first = await readUntil(reader, (text) => eventsIn(text).length === 1);
      assert.deepEqual(eventsIn(first.text).map((e) => e.split("\n")[0]), ["id: 4"]);
      assert.match(first.text, /^id: 4\nevent: run\ndata: \{.*"state":"running"/);

      upstream.keepAlive();
      upstream.send(aRunView({ state: "succeeded", version: 5 }));
      upstream.end();
      const rest = await readUntil(reader, () => false);
      assert.equal(rest.ended, true);
      assert.match(rest.text, /^: keep-alive\n\nid: 5\nevent: run\ndata: /);
    },
  );

  await t.step("a client that goes away closes the publish stream", async () => {
    await using api = new FakePublishRunsApi(PUBLISH_KEY);
    await using gateway = await aGateway(api.baseUrl);
    const res = await gateway.call(`/runs/${RUN_ID}/events`);
    const upstream = await within(api.nextStream(), "the publish stream opening");
    const reader = res.body!.getReader();
    upstream.send(aRunView({ state: "running", version: 2 }));
    await readUntil(reader, (text) => eventsIn(text).length === 1);
    await reader.cancel();
    await within(upstream.closedByReader, "closing the publish stream");
  });

  await t.step("a publish stream silent past the idle bound is ended and closed", async () => {
    await using api = new FakePublishRunsApi(PUBLISH_KEY);
    await using gateway = await aGateway(api.baseUrl, { streamIdleMs: 200 });
    const res = await gateway.call(`/runs/${RUN_ID}/events`);
    const upstream = await within(api.nextStream(), "the publish stream opening");
    const reader = res.body!.getReader();
    upstream.send(aRunView({ state: "running", version: 2 }));
    await readUntil(reader, (text) => eventsIn(text).length === 1);
    await within(upstream.closedByReader, "closing the silent publish stream");
    await assert.rejects(readUntil(reader, () => false));
  });

  await t.step("at the end of a shutdown's grace period, open streams are ended", async () => {
    await using api = new FakePublishRunsApi(PUBLISH_KEY);
    const shutdown = new AbortController();
    await using gateway = await aGateway(api.baseUrl, { shutdownSignal: shutdown.signal });
    const res = await gateway.call(`/runs/${RUN_ID}/events`);
    const upstream = await within(api.nextStream(), "the publish stream opening");
    const reader = res.body!.getReader();
    upstream.send(aRunView({ state: "running", version: 2 }));
    await readUntil(reader, (text) => eventsIn(text).length === 1);
    shutdown.abort();
    await within(upstream.closedByReader, "closing the publish stream");
    await assert.rejects(readUntil(reader, () => false));
  });

  await t.step("an unknown run: the publish service's 404 is relayed as JSON", async () => {
    await using api = new FakePublishRunsApi(PUBLISH_KEY);
    await using gateway = await aGateway(api.baseUrl);
    const res = await gateway.call("/runs/no-such-run/events");
    assert.equal(res.status, 404);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal((await res.json()).payload.code, "run_not_found");
  });
});

Deno.test("approval app runs API: keys and an unreachable publish service", async (t) => {
  const routes: [string, string][] = [
    ["GET", `/runs/${RUN_ID}`],
    ["GET", "/runs?project=Pr042"],
    ["GET", `/runs/${RUN_ID}/events`],
    ["POST", `/runs/${RUN_ID}/cancel`],
    ["POST", `/runs/${RUN_ID}/resume`],
  ];

  await t.step(
    "without the gateway's key: 403, and nothing reaches the publish service",
    async () => {
      await using api = new FakePublishRunsApi(PUBLISH_KEY);
      await using gateway = await aGateway(api.baseUrl);
      for (const [method, path] of routes) {
        for (const key of ["", PUBLISH_KEY]) {
          const res = await gateway.call(path, { method, headers: { "x-api-key": key } });
          assert.equal(res.status, 403, `${method} ${path}`);
          assert.equal((await res.json()).payload.code, "forbidden");
        }
      }
      assert.equal(api.received.length, 0);
    },
  );

  await t.step("the publish service gets its own key, never the caller's", async () => {
    await using api = new FakePublishRunsApi(PUBLISH_KEY);
    await using gateway = await aGateway(api.baseUrl);
    for (const [method, path] of routes) {
      const res = await gateway.call(path, { method, headers: { "x-request-id": "cli-7" } });
      if (path.endsWith("/events")) (await api.nextStream()).end();
      const text = await res.text();
      assert.ok(!text.includes(PUBLISH_KEY), `${method} ${path} reply`);
      assert.equal(res.headers.get("x-request-id"), "cli-7");
    }
    assert.equal(api.received.length, routes.length);
    for (const request of api.received) {
      assert.equal(request.headers.get("x-api-key"), PUBLISH_KEY);
      assert.equal(request.headers.get("x-request-id"), "cli-7");
      assert.ok(![...request.headers.values()].some((v) => v.includes(APPROVAL_KEY)));
    }
    const logged = gateway.log.lines.join("\n");
    assert.ok(!logged.includes(PUBLISH_KEY) && !logged.includes(APPROVAL_KEY));
  });

  await t.step("an unreachable publish service: 502 naming it, not its key", async () => {
    await using gateway = await aGateway("http://127.0.0.1:9/");
    for (const [method, path] of routes) {
      const res = await gateway.call(path, { method });
      const json = await res.json();
      assert.equal(res.status, 502, `${method} ${path}`);
      assert.equal(json.payload.code, "sub_service_unavailable");
      assert.equal(
        json.payload.detail,
        "Error connecting to the publish service. Base url: http://127.0.0.1:9/",
      );
      assert.ok(!JSON.stringify(json).includes(PUBLISH_KEY));
    }
  });
});
