import assert from "node:assert/strict";
import { createRoute, z } from "@hono/zod-openapi";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { PrometheusMetrics } from "../../adapters/prometheus/prometheus_metrics.ts";
import {
  type Family,
  parsePrometheusText,
  samplesOf,
  valueOf,
} from "../../tests/support/prometheus_text.ts";
import { ConfigError } from "./app_errors.ts";
import { CommonEnv, parseEnv } from "./config.ts";
import { createServiceApp } from "./create_app.ts";
import { memoryLogger } from "./log.ts";
import { RefusalTally } from "./refusals.ts";
import { ServiceSecrets } from "./secret_store_from_env.ts";
import { type MetricsAccess, metricsFrom } from "./service_metrics.ts";

const BASE = "http://test.local";
const KEY = "service-key-0123456789";
const TOKEN = "metrics-token-0123456789-0123456789";

/** A service app with one parameterised route (`/items/{id}`), its metrics, trail, tally and log. */
function anApp(metricsAccess?: MetricsAccess) {
  const log = memoryLogger("svc");
  const trail = new MemoryAuditTrail();
  const refusals = new RefusalTally({ service: "svc", log, trail, intervalMs: 60_000 });
  const metrics = new PrometheusMetrics({ service: "svc", processMetrics: false });
  const app = createServiceApp({
    service: "svc",
    title: "Test",
    apiKey: KEY,
    log,
    maxBodyBytes: 1024,
    readiness: () => Promise.resolve([]),
    detailPrefix: "",
    auditTrail: trail,
    refusals,
    metrics,
    metricsAccess,
  });
  app.openapi(
    createRoute({
      method: "get",
      path: "/items/{id}",
      request: { params: z.object({ id: z.string() }) },
      responses: { 200: { description: "An item" } },
    }),
    (c) => c.json({ status: "success", payload: { id: c.req.valid("param").id } }, 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/items/{id}/touch",
      request: { params: z.object({ id: z.string() }) },
      responses: { 200: { description: "Touched" } },
    }),
    (c) => c.json({ status: "success", payload: {} }, 200),
  );
  return { app, log, trail, refusals, metrics };
}

/** `GET /metrics` with the key, parsed. */
async function scrape(app: ReturnType<typeof anApp>["app"]): Promise<Map<string, Family>> {
  const res = await app.request(`${BASE}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 200);
  return parsePrometheusText(await res.text());
}

/** Every label value of every sample. */
function labelValues(families: Map<string, Family>): string[] {
  return [...families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
}

Deno.test("createServiceApp() counts requests by route pattern, never by raw path", async () => {
  const { app } = anApp();
  const get = (path: string, key = KEY) =>
    app.request(`${BASE}${path}`, { headers: { "x-api-key": key } });
  assert.equal((await get("/items/Pr042_secret_project")).status, 200);
  assert.equal((await get("/items/abc")).status, 200);
  assert.equal((await get("/items/abc", "wrong-key-0123456789")).status, 403);
  assert.equal((await get("/no/such/db.internal")).status, 404);
  const touch = await app.request(`${BASE}/items/xyz/touch`, {
    method: "POST",
    headers: { "x-api-key": KEY },
  });
  assert.equal(touch.status, 200);
  const wrongMethod = await app.request(`${BASE}/health`, {
    method: "DELETE",
    headers: { "x-api-key": KEY },
  });
  assert.equal(wrongMethod.status, 405);
  assert.equal((await app.request(`${BASE}/health`)).status, 200);

  const families = await scrape(app);
  const requests = "cr8tor_http_requests_total";
  const itemOk = { method: "GET", route: "/items/:id", status: "200" };
  assert.equal(valueOf(families, requests, itemOk), 2);
  assert.equal(valueOf(families, requests, { route: "/items/:id", status: "403" }), 1);
  assert.equal(valueOf(families, requests, { route: "unmatched", status: "404" }), 1);
  assert.equal(valueOf(families, requests, { route: "unmatched", status: "405" }), 1);
  assert.equal(
    valueOf(families, requests, { method: "POST", route: "/items/:id/touch", status: "200" }),
    1,
  );
  assert.equal(valueOf(families, requests, { route: "/health", status: "200" }), 1);
  assert.equal(valueOf(families, "cr8tor_http_request_duration_seconds_count", itemOk), 2);
  for (const sample of samplesOf(families, requests)) assert.equal(sample.labels.service, "svc");
  const values = labelValues(families);
  for (const raw of ["Pr042_secret_project", "abc", "xyz", "db.internal"]) {
    assert.ok(!values.some((v) => v.includes(raw)), `no label holds "${raw}"`);
  }
  // The scrape itself is counted once it has been answered.
  assert.equal(valueOf(await scrape(app), requests, { route: "/metrics", status: "200" }), 1);
});

Deno.test("GET /metrics needs the key by default; a refused scrape is no key refusal", async () => {
  const { app, trail, refusals, log } = anApp();
  const bare = await app.request(`${BASE}/metrics`);
  assert.equal(bare.status, 403);
  assert.equal((await bare.json()).payload.code, "forbidden");
  const bearer = await app.request(`${BASE}/metrics`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(bearer.status, 403, "no token is configured");
  const res = await app.request(`${BASE}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const head = await app.request(`${BASE}/metrics`, {
    method: "HEAD",
    headers: { "x-api-key": KEY },
  });
  assert.equal(head.status, 200);

  await refusals.flush();
  assert.deepStrictEqual(trail.refusalSummaries, [], "refused scrapes are not tallied");
  assert.deepStrictEqual(trail.records, [], "GET /metrics is not audited");
  assert.ok(!log.lines.some((l) => l.includes("requests_refused")));
  const refused = log.lines.filter((l) =>
    l.includes('"path":"/metrics"') && l.includes('"status":403')
  );
  assert.equal(refused.length, 2, "refused scrapes are logged as ordinary requests");
});

Deno.test("GET /metrics accepts the bearer token when one is configured, and the key still", async () => {
  const { app } = anApp({ kind: "token", token: TOKEN });
  const withAuth = (authorization: string) =>
    app.request(`${BASE}/metrics`, { headers: { authorization } });
  assert.equal((await withAuth(`Bearer ${TOKEN}`)).status, 200);
  assert.equal((await withAuth(`bearer ${TOKEN}`)).status, 200);
  assert.equal((await withAuth(`Bearer ${TOKEN}x`)).status, 403);
  assert.equal((await withAuth(`Basic ${TOKEN}`)).status, 403);
  assert.equal((await withAuth(`Bearer ${KEY}`)).status, 403, "the key is not a bearer token");
  assert.equal((await app.request(`${BASE}/metrics`)).status, 403);
  const keyed = await app.request(`${BASE}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(keyed.status, 200);
  // The token opens /metrics only.
  const other = await app.request(`${BASE}/items/abc`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(other.status, 403);
});

Deno.test("GET /metrics is open to anyone when public; nothing else is", async () => {
  const { app, trail } = anApp({ kind: "public" });
  const res = await app.request(`${BASE}/metrics`);
  assert.equal(res.status, 200);
  parsePrometheusText(await res.text());
  assert.equal((await app.request(`${BASE}/items/abc`)).status, 403);
  // A POST to /metrics goes through the key check like any POST (and is audited like any POST).
  const post = await app.request(`${BASE}/metrics`, { method: "POST" });
  assert.equal(post.status, 403);
  assert.deepStrictEqual(trail.records, []);
});

Deno.test("createServiceApp() without metrics serves no /metrics", async () => {
  const app = createServiceApp({
    service: "svc",
    title: "Test",
    apiKey: KEY,
    log: memoryLogger("svc"),
    maxBodyBytes: 1024,
    readiness: () => Promise.resolve([]),
    detailPrefix: "",
  });
  const res = await app.request(`${BASE}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 404);
});

Deno.test("metricsFrom() reads the access rule from the environment", async (t) => {
  const secretsWith = (values: Record<string, string>) =>
    new ServiceSecrets({
      provider: "file",
      store: new MemorySecretStore(values),
      env: {},
      log: memoryLogger("svc"),
    });
  const config = (env: Record<string, string>) => parseEnv(CommonEnv, env);
  const secrets = secretsWith({ metricstoken: ` ${TOKEN}\n`, shorttoken: "too-short" });

  await t.step("the key only, by default", async () => {
    const { metricsAccess } = await metricsFrom(config({}), { service: "svc", secrets });
    assert.deepStrictEqual(metricsAccess, { kind: "key" });
  });
  await t.step("public", async () => {
    const { metricsAccess } = await metricsFrom(config({ METRICS_PUBLIC: "true" }), {
      service: "svc",
      secrets,
    });
    assert.deepStrictEqual(metricsAccess, { kind: "public" });
  });
  await t.step("a bearer token, trimmed", async () => {
    const { metricsAccess } = await metricsFrom(
      config({ METRICS_BEARER_TOKEN_SECRET_NAME: "metricstoken" }),
      { service: "svc", secrets },
    );
    assert.deepStrictEqual(metricsAccess, { kind: "token", token: TOKEN });
  });
  const refused: [string, Record<string, string>, RegExp][] = [
    [
      "both",
      { METRICS_PUBLIC: "true", METRICS_BEARER_TOKEN_SECRET_NAME: "metricstoken" },
      /not both/,
    ],
    ["a missing token", { METRICS_BEARER_TOKEN_SECRET_NAME: "absent" }, /cannot read/],
    ["a short token", { METRICS_BEARER_TOKEN_SECRET_NAME: "shorttoken" }, /at least 32/],
  ];
  for (const [name, env, message] of refused) {
    await t.step(`refuses ${name}`, async () => {
      await assert.rejects(
        metricsFrom(config(env), { service: "svc", secrets }),
        (e) =>
          e instanceof ConfigError && message.test(e.message) && !e.message.includes("too-short"),
      );
    });
  }
  await t.step("refuses a bad METRICS_PUBLIC or secret name", () => {
    assert.throws(() => config({ METRICS_PUBLIC: "yes" }));
    assert.throws(() => config({ METRICS_BEARER_TOKEN_SECRET_NAME: "../x" }));
  });
});
