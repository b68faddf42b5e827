import assert from "node:assert/strict";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, METADATA_KEY, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { createServiceApp } from "./create_app.ts";
import { memoryLogger } from "./log.ts";

const URL_BASE = "http://test.local";

async function envelope(res: Response) {
  const json = await res.json();
  assert.ok(json.status === "success" || json.status === "error", "status is success or error");
  assert.equal(typeof json.payload, "object");
  if (json.status === "error") {
    assert.equal(typeof json.payload.detail, "string");
    assert.equal(typeof json.payload.code, "string");
    assert.equal(json.payload.request_id, res.headers.get("x-request-id"));
  }
  return json;
}

Deno.test("createServiceApp() authentication", async (t) => {
  using world = new FakeWorld();
  const app = world.metadataApp();
  const cases: [string, Record<string, string>][] = [
    ["missing key", {}],
    ["empty key", { "x-api-key": "" }],
    ["wrong key", { "x-api-key": "wrong-key-0123456789" }],
    ["key with extra suffix", { "x-api-key": METADATA_KEY + "x" }],
    ["key prefix", { "x-api-key": METADATA_KEY.slice(0, -1) }],
    ["another service's key", { "x-api-key": PUBLISH_KEY }],
  ];
  for (const [name, headers] of cases) {
    await t.step(`answers 403 for a ${name}`, async () => {
      const res = await app.request(`${URL_BASE}/metadata/project`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(aTransferRequest()),
      });
      assert.equal(res.status, 403);
      const json = await envelope(res);
      assert.equal(
        json.payload.detail,
        "MetadataService: Could not validate API key. Please provide a valid API key in the header.",
      );
    });
  }

  await t.step("matches the header name case-insensitively", async () => {
    const res = await app.request(`${URL_BASE}/metadata/project`, {
      method: "POST",
      headers: { "content-type": "application/json", "X-API-KEY": METADATA_KEY },
      body: JSON.stringify(aTransferRequest()),
    });
    assert.equal(res.status, 200);
  });

  for (const path of ["/health", "/ready", "/openapi.json", "/docs"]) {
    await t.step(`lets GET ${path} through without a key`, async () => {
      const res = await app.request(`${URL_BASE}${path}`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  }
});

Deno.test("createServiceApp() error envelopes", async (t) => {
  using world = new FakeWorld();
  const app = world.publishApp();

  await t.step("answers 404 with the envelope for an unknown route", async () => {
    const res = await app.request(postJson("/data-publish/nope", {}, PUBLISH_KEY));
    assert.equal(res.status, 404);
    const json = await envelope(res);
    assert.equal(
      json.payload.detail,
      "PublishService: Url: http://test.local/data-publish/nope. Error: Not Found",
    );
  });

  await t.step("answers 405 with Allow for a wrong method on a known route", async () => {
    const res = await app.request(`${URL_BASE}/data-publish/validate`, {
      headers: { "x-api-key": PUBLISH_KEY },
    });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "POST");
    const json = await envelope(res);
    assert.match(json.payload.detail, /Method Not Allowed$/);
  });

  await t.step("answers 422 for a body that is not JSON", async () => {
    const res = await app.request(postJson("/data-publish/publish", "{not json", PUBLISH_KEY));
    assert.equal(res.status, 422);
    const json = await envelope(res);
    assert.deepEqual(json.payload.issues, [{ path: "body", message: "not valid JSON" }]);
  });

  await t.step("answers 422 for a JSON body that is not an object", async () => {
    for (const body of ["[]", "42", '"text"', "null"]) {
      const res = await app.request(postJson("/data-publish/publish", body, PUBLISH_KEY));
      assert.equal(res.status, 422, body);
      await envelope(res);
    }
  });

  await t.step("answers 415 for a body without a JSON content type", async () => {
    const res = await app.request(`${URL_BASE}/data-publish/publish`, {
      method: "POST",
      headers: { "x-api-key": PUBLISH_KEY },
      body: JSON.stringify(aPublishRequest()),
    });
    assert.equal(res.status, 415);
    await envelope(res);
  });

  await t.step("lists every offending field in detail and issues", async () => {
    const body = aPublishRequest({
      project_name: "../etc",
      project_start_time: "2025",
      destination: { type: "filestore", name: "LSC", format: "CSV" },
    });
    const res = await app.request(postJson("/data-publish/publish", body, PUBLISH_KEY));
    assert.equal(res.status, 422);
    const json = await envelope(res);
    const paths = json.payload.issues.map((i: { path: string }) => i.path).sort();
    assert.deepEqual(paths, ["destination.format", "project_name", "project_start_time"]);
    for (const path of paths) assert.ok(json.payload.detail.includes(path), path);
    assert.match(json.payload.detail, /^PublishService: Invalid request body: /);
  });

  await t.step("answers 413 for a body over the limit, before parsing it", async () => {
    const big = JSON.stringify(aPublishRequest({ padding: "x".repeat(70 * 1024) }));
    const res = await app.request(postJson("/data-publish/publish", big, PUBLISH_KEY));
    assert.equal(res.status, 413);
    await envelope(res);
  });

  await t.step("answers 500 without internals when something unexpected breaks", async () => {
    world.catalogs = [null as never];
    const res = await world.metadataApp().request(
      postJson("/metadata/project", aTransferRequest(), METADATA_KEY),
    );
    assert.equal(res.status, 500);
    const json = await envelope(res);
    assert.match(json.payload.detail, /^MetadataService: Internal server error; .* request id /);
    assert.ok(world.metadataLog.lines.some((l) => l.includes('"unhandled_error"')));
  });
});

Deno.test("createServiceApp() request ids", async (t) => {
  using world = new FakeWorld();
  const app = world.metadataApp();
  await t.step("sets x-request-id on every reply", async () => {
    const res = await app.request(`${URL_BASE}/health`);
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });
  await t.step("keeps a caller's well-formed x-request-id", async () => {
    const res = await app.request(`${URL_BASE}/health`, {
      headers: { "x-request-id": "cli-run-42" },
    });
    assert.equal(res.headers.get("x-request-id"), "cli-run-42");
  });
});

Deno.test("createServiceApp() health, readiness and documentation", async (t) => {
  using world = new FakeWorld();
  const app = world.publishApp();

  await t.step("GET /health answers alive", async () => {
    const res = await app.request(`${URL_BASE}/health`);
    assert.deepEqual(await res.json(), {
      status: "success",
      payload: { service: "publish", alive: true },
    });
  });

  await t.step("GET /ready with the key reports each check and names the failed one", async () => {
    const withKey = { headers: { "x-api-key": PUBLISH_KEY } };
    let res = await app.request(`${URL_BASE}/ready`, withKey);
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).payload.checks, [{ name: "filestore LSC", ok: true }]);
    world.breakFilestore("staging");
    res = await app.request(`${URL_BASE}/ready`, withKey);
    assert.equal(res.status, 503);
    const json = await envelope(res);
    assert.equal(
      json.payload.detail,
      "PublishService: Not ready: filestore LSC: Cannot use the staging area: it does not exist",
    );
  });

  await t.step("GET /ready without the key says only ready or not", async () => {
    using fresh = new FakeWorld();
    const publish = fresh.publishApp();
    const headers: [string, Record<string, string>][] = [
      ["no key", {}],
      ["a wrong key", { "x-api-key": "wrong-key-0123456789" }],
      ["another service's key", { "x-api-key": METADATA_KEY }],
    ];
    for (const [name, given] of headers) {
      const ready = await publish.request(`${URL_BASE}/ready`, { headers: given });
      assert.equal(ready.status, 200, name);
      assert.deepEqual(await ready.json(), { status: "success", payload: { ready: true } }, name);
    }
    fresh.breakFilestore("staging");
    for (const [name, given] of headers) {
      const notReady = await publish.request(`${URL_BASE}/ready`, { headers: given });
      assert.equal(notReady.status, 503, name);
      const json = await envelope(notReady);
      assert.deepEqual(Object.keys(json.payload).sort(), ["code", "detail", "request_id"], name);
      assert.equal(json.payload.detail, "PublishService: Not ready", name);
      assert.equal(json.payload.code, "not_ready");
      assert.doesNotMatch(JSON.stringify(json), /staging|filestore|LSC|cr8tor-filestore/, name);
    }
  });

  await t.step(
    "GET /openapi.json is OpenAPI 3.1 with the service's routes and the key scheme",
    async () => {
      const doc = await (await app.request(`${URL_BASE}/openapi.json`)).json();
      assert.equal(doc.openapi, "3.1.0");
      assert.deepEqual(Object.keys(doc.paths).sort(), [
        "/.well-known/release-keys",
        "/data-publish/package",
        "/data-publish/package-upload",
        "/data-publish/publish",
        "/data-publish/read/rows",
        "/data-publish/read/tables",
        "/data-publish/revoke",
        "/data-publish/staging",
        "/data-publish/validate",
        "/health",
        "/http-sources",
        "/http-sources/{name}/files",
        "/http-sources/{name}/run",
        "/ready",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/cancel",
        "/runs/{id}/events",
        "/runs/{id}/resume",
      ]);
      assert.deepEqual(doc.components.securitySchemes.ApiKey, {
        type: "apiKey",
        in: "header",
        name: "x-api-key",
      });
      assert.deepEqual(doc.paths["/data-publish/validate"].post.security, [{ ApiKey: [] }]);
    },
  );

  await t.step("GET /docs serves Swagger UI (api_docs_test.ts has the rest)", async () => {
    const res = await app.request(`${URL_BASE}/docs`);
    const html = await res.text();
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.match(html, /<script src="docs\/assets\/[\w.-]+\/swagger-ui-bundle\.js"><\/script>/);
    assert.doesNotMatch(html, /https?:\/\//, "no absolute URL");
  });
});

const ECHO_KEY = "echo-key-0123456789";

/** A service with one route that echoes its JSON body, with short body limits. */
function echoService(bodyReading = { timeoutMs: 400, idleTimeoutMs: 150, maxConcurrent: 2 }) {
  const log = memoryLogger("echo");
  const audit = new MemoryAuditTrail();
  const app = createServiceApp({
    service: "publish",
    title: "Echo",
    apiKey: ECHO_KEY,
    log,
    maxBodyBytes: 1024,
    readiness: () => Promise.resolve([]),
    detailPrefix: "",
    auditTrail: audit,
    bodyReading,
  });
  app.post("/echo", async (c) => c.json({ status: "success", payload: await c.req.json() }, 200));
  return { app, log, audit };
}

/**
 * A request body that sends `chunk` every `everyMs` for ever (until cancelled), counting how many chunks
 * were pulled from it.
 */
function trickle(chunk: string, everyMs: number) {
  const state = { pulled: 0, cancelled: false };
  const bytes = new TextEncoder().encode(chunk);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (state.pulled > 0) await new Promise((r) => setTimeout(r, everyMs));
      state.pulled++;
      controller.enqueue(bytes);
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { body, state };
}

function post(path: string, body: BodyInit, headers: Record<string, string>): Request {
  return new Request(`${URL_BASE}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

Deno.test("createServiceApp() checks the key before it reads a byte of the body", async (t) => {
  const cases: [string, Record<string, string>][] = [
    ["no key", {}],
    ["a wrong key", { "x-api-key": "wrong-key-0123456789" }],
    ["no key, on a public path", {}],
  ];
  for (const [name, headers] of cases) {
    await t.step(`${name}: 403 at once for a body that never ends`, async () => {
      const { app, audit } = echoService();
      const { body, state } = trickle("{", 50);
      const path = name.includes("public") ? "/health" : "/echo";
      const started = performance.now();
      const res = await app.request(post(path, body, headers));
      assert.equal(res.status, 403);
      assert.equal((await envelope(res)).payload.code, "forbidden");
      assert.ok(performance.now() - started < 100, "answered without waiting for the body");
      assert.equal(state.pulled, 0, "not a byte of the body was read");
      assert.deepEqual(audit.lines, [], "no audit record per refusal");
      await body.cancel();
    });
  }

  await t.step("no key and a declared length of 10 GB: 403, body unread", async () => {
    const { app } = echoService();
    const { body, state } = trickle("{", 50);
    const res = await app.request(post("/echo", body, { "content-length": "10000000000" }));
    assert.equal(res.status, 403);
    assert.equal(state.pulled, 0);
    await res.body?.cancel();
    await body.cancel();
  });
});

Deno.test("createServiceApp() reads a body within its size, time and concurrency limits", async (t) => {
  const key = { "x-api-key": ECHO_KEY };

  await t.step("a body within the limits reaches the route", async () => {
    const { app } = echoService();
    const res = await app.request(post("/echo", '{"a":[1,2]}', key));
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).payload, { a: [1, 2] });
  });

  await t.step("a streamed (chunked) body within the limits reaches the route", async () => {
    const { app } = echoService();
    const parts = ['{"a":', "[1,", "2]}"].map((p) => new TextEncoder().encode(p));
    const res = await app.request(
      post("/echo", ReadableStream.from(parts), { ...key, "transfer-encoding": "chunked" }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).payload, { a: [1, 2] });
  });

  await t.step("a declared length over the limit: 413 before a byte is read", async () => {
    const { app, audit } = echoService();
    const { body, state } = trickle("{", 50);
    const res = await app.request(post("/echo", body, { ...key, "content-length": "2000" }));
    assert.equal(res.status, 413);
    assert.equal((await envelope(res)).payload.code, "body_too_large");
    assert.equal(state.pulled, 0);
    assert.deepEqual(audit.records.map((r) => [r.status, r.error_code]), [[413, "body_too_large"]]);
    await body.cancel();
  });

  await t.step("an undeclared body that grows over the limit: 413, reading stops", async () => {
    const { app } = echoService();
    const { body, state } = trickle("x".repeat(100), 1);
    const res = await app.request(post("/echo", body, key));
    assert.equal(res.status, 413);
    await res.body?.cancel();
    assert.ok(state.pulled <= 12, `read ${state.pulled} chunks of 100 bytes for a 1024-byte limit`);
    assert.ok(state.cancelled, "the body was cancelled");
  });

  await t.step(
    "a body that goes silent: 408 after the idle timeout, connection closed",
    async () => {
      const { app, audit } = echoService();
      const { body, state } = trickle('{"a":', 10_000);
      const started = performance.now();
      const res = await app.request(post("/echo", body, key));
      const took = performance.now() - started;
      assert.equal(res.status, 408);
      assert.equal(res.headers.get("connection"), "close");
      const json = await envelope(res);
      assert.equal(json.payload.code, "request_timeout");
      assert.equal(json.payload.detail, "Request body sent nothing for 0.15 seconds");
      assert.ok(took >= 140 && took < 1000, `cut off after ${took} ms`);
      assert.ok(state.cancelled);
      assert.deepEqual(audit.records.map((r) => [r.status, r.error_code]), [[
        408,
        "request_timeout",
      ]]);
    },
  );

  await t.step("a body that trickles: 408 after the total timeout", async () => {
    const { app } = echoService();
    const { body, state } = trickle(" ", 50);
    const started = performance.now();
    const res = await app.request(post("/echo", body, key));
    const took = performance.now() - started;
    assert.equal(res.status, 408);
    assert.equal(
      (await envelope(res)).payload.detail,
      "Request body did not arrive within 0.4 seconds",
    );
    assert.ok(took >= 390 && took < 1500, `cut off after ${took} ms`);
    assert.ok(state.pulled > 3, "it kept sending, just too slowly");
  });

  await t.step("more bodies than the cap at once: 503 with Retry-After, body unread", async () => {
    const { app } = echoService();
    const stalled = [trickle("{", 10_000), trickle("{", 10_000)];
    const pending = stalled.map(({ body }) => app.request(post("/echo", body, key)));
    await new Promise((r) => setTimeout(r, 20));
    const extra = trickle("{", 50);
    const res = await app.request(post("/echo", extra.body, key));
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await envelope(res)).payload.code, "too_many_uploads");
    assert.equal(extra.state.pulled, 0);
    await extra.body.cancel();
    for (const settled of await Promise.all(pending)) {
      assert.equal(settled.status, 408);
      await settled.body?.cancel();
    }
    const after = await app.request(post("/echo", "{}", key));
    assert.equal(after.status, 200, "the slots are free again");
  });
});

Deno.test("createServiceApp() keeps a caller's request id only in a safe form", async (t) => {
  const cases: [string, string, boolean][] = [
    ["a plain id", "cli-run-42", true],
    ["letters, digits and . _ : -", "Run.7_a:b-C", true],
    ["128 characters", "r".repeat(128), true],
    ["129 characters", "r".repeat(129), false],
    ["a space", "cli run", false],
    ["a slash", "a/b", false],
    ["a quote", 'a"b', false],
    ["non-ASCII", "café", false],
    ["an equals sign", "a=b", false],
  ];
  for (const [name, given, kept] of cases) {
    await t.step(`${name}: ${kept ? "kept" : "replaced"}`, async () => {
      const { app, log, audit } = echoService();
      const res = await app.request(
        post("/echo", "{}", { "x-api-key": ECHO_KEY, "x-request-id": given }),
      );
      assert.equal(res.status, 200);
      const id = res.headers.get("x-request-id") ?? "";
      if (kept) assert.equal(id, given);
      else assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      const [record] = audit.records;
      assert.equal(record?.request_id, id);
      assert.match(record?.service_request_id ?? "", /^[0-9a-f-]{36}$/);
      const line = JSON.parse(log.lines.find((l) => l.includes('"event":"request"')) ?? "{}");
      assert.equal(line.request_id, id);
      assert.equal(line.service_request_id, record?.service_request_id);
      if (!kept) {
        assert.ok(!log.lines.some((l) => l.includes(JSON.stringify(given).slice(1, -1))));
        assert.ok(!audit.lines.some((l) => l.includes(given)));
      }
    });
  }

  await t.step("a repeated id still gives each request its own service request id", async () => {
    const { app, audit } = echoService();
    for (let i = 0; i < 3; i++) {
      await app.request(post("/echo", "{}", { "x-api-key": ECHO_KEY, "x-request-id": "same" }));
    }
    assert.deepEqual(audit.records.map((r) => r.request_id), ["same", "same", "same"]);
    assert.equal(new Set(audit.records.map((r) => r.service_request_id)).size, 3);
  });
});
