import assert from "node:assert/strict";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, METADATA_KEY, PUBLISH_KEY } from "../../tests/support/apps.ts";

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

  await t.step("GET /ready reports each check and answers 503 naming the failed one", async () => {
    let res = await app.request(`${URL_BASE}/ready`);
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).payload.checks, [{ name: "filestore LSC", ok: true }]);
    world.breakFilestore("staging");
    res = await app.request(`${URL_BASE}/ready`);
    assert.equal(res.status, 503);
    const json = await envelope(res);
    assert.equal(
      json.payload.detail,
      "PublishService: Not ready: filestore LSC: Cannot use the staging area: it does not exist",
    );
  });

  await t.step(
    "GET /openapi.json is OpenAPI 3.1 with the service's routes and the key scheme",
    async () => {
      const doc = await (await app.request(`${URL_BASE}/openapi.json`)).json();
      assert.equal(doc.openapi, "3.1.0");
      assert.deepEqual(Object.keys(doc.paths).sort(), [
        "/data-publish/package",
        "/data-publish/publish",
        "/data-publish/validate",
        "/health",
        "/ready",
      ]);
      assert.deepEqual(doc.components.securitySchemes.ApiKey, {
        type: "apiKey",
        in: "header",
        name: "x-api-key",
      });
      assert.deepEqual(doc.paths["/data-publish/validate"].post.security, [{ ApiKey: [] }]);
    },
  );

  await t.step("GET /docs serves a self-contained page that reads openapi.json", async () => {
    const res = await app.request(`${URL_BASE}/docs`);
    const html = await res.text();
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.match(html, /fetch\("openapi\.json"\)/);
    assert.doesNotMatch(html, /https?:\/\/(?!test)/, "no external URL");
  });
});
