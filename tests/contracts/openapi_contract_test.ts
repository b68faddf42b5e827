/**
 * The OpenAPI documents are part of the contract: this test reads each service's `/openapi.json`, drives
 * every route through its success and error outcomes, and checks that each real reply's status is declared
 * and its body matches the declared schema.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { aPublishRequest, aTransferRequest, postJson } from "../support/requests.ts";
import { writeFiles } from "./filestore_contract.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { APPROVAL_KEY, FakeWorld, METADATA_KEY, PUBLISH_KEY } from "../support/apps.ts";
import { DataApiWorld, GATEWAY, peopleTable } from "../support/data_api_world.ts";

interface Case {
  readonly name: string;
  readonly method: "get" | "post";
  readonly path: string;
  readonly body?: unknown;
  readonly key?: string;
  readonly expect: number;
  readonly setup?: (world: FakeWorld) => void | Promise<unknown>;
}

type Json = Record<string, unknown>;

function withDataset(tables: unknown): Json {
  const body = aTransferRequest();
  (body.dataset as Json).tables = tables;
  return body;
}

function stageSomething(world: FakeWorld): Promise<unknown> {
  const run = { project: "Pr042", startTime: "20250611_093000" };
  return world.filestore.stage(
    run,
    "oncology",
    writeFiles({ "data/outputs/oncology/t.csv": "a\n1\n" }),
  );
}

/** Stages a CSV file and publishes it, so `/data-publish/read/*` has a release to read. */
async function publishSomething(world: FakeWorld): Promise<unknown> {
  await stageSomething(world);
  return await world.filestore.publish({ project: "Pr042", startTime: "20250611_093000" });
}

function aReadRequest(overrides: Json = {}): Json {
  return {
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    dataset: "oncology",
    table: "t",
    limit: 10,
    cursor: null,
    orientation: "records",
    next_base: "/data/v1/releases/r/tables/t/rows?cursor=",
    ...overrides,
  };
}

/** Packages through the publish app, asking for the checks, so staging has disclosure pre-checks. */
function packageSomething(world: FakeWorld): Promise<unknown> {
  const body = aTransferRequest({ disclosure_checks: true });
  return Promise.resolve(
    world.publishApp().request(postJson("/data-publish/package", body, PUBLISH_KEY)),
  );
}

/** Gives the world an audit trail that cannot be written (before a check, or when appending). */
function brokenAudit(when: "check" | "append"): (world: FakeWorld) => void {
  return (world) => {
    world.audit = new MemoryAuditTrail();
    if (when === "check") world.audit.failChecks("disk full");
    else world.audit.failAppends("disk full");
  };
}

const BAD_BODY = { "project_name": "a/b", destination: { type: "nope" } };

const SERVICES: Record<string, { key: string; app: (w: FakeWorld) => OpenAPIHono; cases: Case[] }> =
  {
    approval: {
      key: APPROVAL_KEY,
      app: (w) => w.approvalApp(),
      cases: [
        {
          name: "validate ok",
          method: "post",
          path: "/project/validate",
          body: aTransferRequest(),
          expect: 200,
        },
        {
          name: "validate missing table",
          method: "post",
          path: "/project/validate",
          body: withDataset([{ name: "nope" }]),
          expect: 404,
        },
        {
          name: "validate invalid",
          method: "post",
          path: "/project/validate",
          body: BAD_BODY,
          expect: 422,
        },
        {
          name: "validate no key",
          method: "post",
          path: "/project/validate",
          body: aTransferRequest(),
          key: "",
          expect: 403,
        },
        {
          name: "validate audit trail unavailable",
          method: "post",
          path: "/project/validate",
          body: aTransferRequest(),
          setup: brokenAudit("check"),
          expect: 503,
        },
        {
          name: "validate audit record not written",
          method: "post",
          path: "/project/validate",
          body: aTransferRequest(),
          setup: brokenAudit("append"),
          expect: 500,
        },
        {
          name: "validate source down",
          method: "post",
          path: "/project/validate",
          body: aTransferRequest(),
          setup: (w) => {
            w.refuseConnections = "down";
          },
          expect: 502,
        },
        {
          name: "package",
          method: "post",
          path: "/project/package",
          body: aTransferRequest(),
          expect: 200,
        },
        {
          name: "package invalid",
          method: "post",
          path: "/project/package",
          body: BAD_BODY,
          expect: 422,
        },
        {
          name: "publish nothing staged",
          method: "post",
          path: "/project/publish",
          body: aPublishRequest(),
          expect: 409,
        },
        {
          name: "publish",
          method: "post",
          path: "/project/publish",
          body: aPublishRequest(),
          setup: stageSomething,
          expect: 200,
        },
        {
          name: "publish invalid",
          method: "post",
          path: "/project/publish",
          body: BAD_BODY,
          expect: 422,
        },
        {
          name: "publish expiry in the past",
          method: "post",
          path: "/project/publish",
          body: { ...aPublishRequest(), expires_at: "2000-01-01T00:00:00Z" },
          expect: 422,
        },
        { name: "health", method: "get", path: "/health", expect: 200 },
        { name: "ready", method: "get", path: "/ready", expect: 200 },
        // Releases without a policy: the key reads and revokes them (their success replies are
        // checked against this document in apps/approval/lifecycle_test.ts).
        { name: "releases", method: "get", path: "/releases", expect: 200 },
        { name: "release unknown", method: "get", path: "/releases/{id}", expect: 404 },
        { name: "crate unknown", method: "get", path: "/releases/{id}/crate", expect: 404 },
        {
          name: "revoke unknown",
          method: "post",
          path: "/releases/{id}/revoke",
          body: { reason: "consent withdrawn" },
          expect: 404,
        },
        {
          name: "release keys relayed from the publish service, without a key",
          method: "get",
          path: "/.well-known/release-keys",
          key: "",
          expect: 200,
        },
        // The runs API is forwarded to the publish service; its success replies are checked against this
        // document in apps/approval/runs_test.ts. A templated path is requested as it is written.
        ...([
          ["get", "/runs"],
          ["get", "/runs/{id}"],
          ["get", "/runs/{id}/events"],
          ["post", "/runs/{id}/cancel"],
          ["post", "/runs/{id}/resume"],
          ["get", "/http-sources"],
          ["get", "/http-sources/{name}/files"],
          ["post", "/http-sources/{name}/run"],
        ] as const).map(([method, path]): Case => ({
          name: "runs no key",
          method,
          path,
          key: "",
          expect: 403,
        })),
      ],
    },
    metadata: {
      key: METADATA_KEY,
      app: (w) => w.metadataApp(),
      cases: [
        {
          name: "ok",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest(),
          expect: 200,
        },
        {
          name: "all tables",
          method: "post",
          path: "/metadata/project",
          body: withDataset(null),
          expect: 200,
        },
        {
          name: "missing",
          method: "post",
          path: "/metadata/project",
          body: withDataset([{ name: "nope" }]),
          expect: 404,
        },
        { name: "invalid", method: "post", path: "/metadata/project", body: BAD_BODY, expect: 422 },
        {
          name: "no key",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest(),
          key: "",
          expect: 403,
        },
        {
          name: "audit trail unavailable",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest(),
          setup: brokenAudit("check"),
          expect: 503,
        },
        {
          name: "source down",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest(),
          setup: (w) => {
            w.refuseConnections = "down";
          },
          expect: 502,
        },
        {
          name: "sqlserver",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest({
            source: {
              type: "sqlserver",
              host_url: "mssql",
              port: 1433,
              database: "dw",
              credentials: { username_key: "u", password_key: "p" },
            },
          }),
          setup: (w) =>
            w.allow({
              type: "sqlserver",
              host: "mssql",
              port: 1433,
              database: "dw",
              credentials: [{ username: "u", password: "p" }],
            }),
          expect: 501,
        },
        {
          name: "source not allowed",
          method: "post",
          path: "/metadata/project",
          body: aTransferRequest({
            source: {
              type: "postgresql",
              host_url: "169.254.169.254",
              port: 5432,
              database: "research",
              credentials: { username_key: "sourceuser", password_key: "sourcepassword" },
            },
          }),
          expect: 403,
        },
        { name: "health", method: "get", path: "/health", expect: 200 },
        { name: "ready", method: "get", path: "/ready", expect: 200 },
      ],
    },
    publish: {
      key: PUBLISH_KEY,
      app: (w) => w.publishApp(),
      cases: [
        {
          name: "validate ok",
          method: "post",
          path: "/data-publish/validate",
          body: aTransferRequest(),
          expect: 200,
        },
        {
          name: "validate unknown destination",
          method: "post",
          path: "/data-publish/validate",
          body: aTransferRequest({ destination: { type: "filestore", name: "XX", format: "csv" } }),
          expect: 404,
        },
        {
          name: "validate filestore broken",
          method: "post",
          path: "/data-publish/validate",
          body: aTransferRequest(),
          setup: (w) => w.breakFilestore("staging"),
          expect: 500,
        },
        {
          name: "validate invalid",
          method: "post",
          path: "/data-publish/validate",
          body: BAD_BODY,
          expect: 422,
        },
        {
          name: "package",
          method: "post",
          path: "/data-publish/package",
          body: aTransferRequest(),
          expect: 200,
        },
        {
          name: "package with disclosure checks",
          method: "post",
          path: "/data-publish/package",
          body: aTransferRequest({ disclosure_checks: true }),
          expect: 200,
        },
        {
          name: "package disclosure checks invalid",
          method: "post",
          path: "/data-publish/package",
          body: aTransferRequest({ disclosure_checks: "yes" }),
          expect: 422,
        },
        {
          name: "publish nothing staged",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest(),
          expect: 409,
        },
        {
          name: "publish",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest(),
          setup: stageSomething,
          expect: 200,
        },
        {
          name: "publish with a release",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest({
            release: {
              id: "rel-1",
              requested_by: { kind: "key", id: "gateway" },
              decisions: [],
              expires_at: null,
            },
          }),
          setup: packageSomething,
          expect: 200,
        },
        {
          name: "release keys",
          method: "get",
          path: "/.well-known/release-keys",
          key: "",
          expect: 200,
        },
        {
          name: "revoke",
          method: "post",
          path: "/data-publish/revoke",
          body: {
            ...aPublishRequest(),
            release_id: "rel-1",
            reason: "Consent withdrawn",
            requested_by: { kind: "system", id: "expiry" },
          },
          setup: stageSomething,
          expect: 200,
        },
        {
          name: "revoke invalid",
          method: "post",
          path: "/data-publish/revoke",
          body: { ...aPublishRequest(), release_id: "rel-1", reason: "" },
          expect: 422,
        },
        {
          name: "publish staging changed",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest({ expected_staging_digest: "0".repeat(64) }),
          setup: packageSomething,
          expect: 409,
        },
        {
          name: "staging nothing staged",
          method: "post",
          path: "/data-publish/staging",
          body: aPublishRequest(),
          expect: 200,
        },
        {
          name: "staging",
          method: "post",
          path: "/data-publish/staging",
          body: aPublishRequest(),
          setup: packageSomething,
          expect: 200,
        },
        {
          name: "staging unknown destination",
          method: "post",
          path: "/data-publish/staging",
          body: aPublishRequest({
            destination: { name: "NOPE", type: "filestore", format: "csv" },
          }),
          expect: 404,
        },
        {
          name: "staging invalid",
          method: "post",
          path: "/data-publish/staging",
          body: { project_name: "Pr042" },
          expect: 422,
        },
        {
          name: "package-upload with uploads off",
          method: "post",
          path: "/data-publish/package-upload",
          body: {
            ...aPublishRequest(),
            files: [{ id: "0".repeat(32), name: "a.csv", sha512: "0".repeat(128), bytes: 1 }],
          },
          expect: 501,
        },
        {
          name: "package-upload invalid",
          method: "post",
          path: "/data-publish/package-upload",
          body: { ...aPublishRequest(), files: [{ id: "../x", name: "a.csv" }] },
          expect: 422,
        },
        {
          name: "publish no key",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest(),
          key: "",
          expect: 403,
        },
        {
          name: "publish audit trail unavailable",
          method: "post",
          path: "/data-publish/publish",
          body: aPublishRequest(),
          setup: brokenAudit("check"),
          expect: 503,
        },
        {
          name: "read tables",
          method: "post",
          path: "/data-publish/read/tables",
          body: aPublishRequest(),
          setup: publishSomething,
          expect: 200,
        },
        {
          name: "read tables not published",
          method: "post",
          path: "/data-publish/read/tables",
          body: aPublishRequest(),
          expect: 404,
        },
        {
          name: "read tables invalid",
          method: "post",
          path: "/data-publish/read/tables",
          body: BAD_BODY,
          expect: 422,
        },
        {
          name: "read rows records",
          method: "post",
          path: "/data-publish/read/rows",
          body: aReadRequest(),
          setup: publishSomething,
          expect: 200,
        },
        {
          name: "read rows tabular, a next page",
          method: "post",
          path: "/data-publish/read/rows",
          body: aReadRequest({ orientation: "tabular", limit: 1 }),
          setup: async (w) => {
            const run = { project: "Pr042", startTime: "20250611_093000" };
            await w.filestore.stage(
              run,
              "oncology",
              writeFiles({ "data/outputs/oncology/t.csv": "a\n1\n2\n" }),
            );
            await w.filestore.publish(run);
          },
          expect: 200,
        },
        {
          name: "read rows bad cursor",
          method: "post",
          path: "/data-publish/read/rows",
          body: aReadRequest({ cursor: "not-a-cursor" }),
          setup: publishSomething,
          expect: 400,
        },
        {
          name: "read rows unknown table",
          method: "post",
          path: "/data-publish/read/rows",
          body: aReadRequest({ table: "nope" }),
          setup: publishSomething,
          expect: 404,
        },
        {
          name: "read rows limit too large",
          method: "post",
          path: "/data-publish/read/rows",
          body: aReadRequest({ limit: 10_001 }),
          expect: 422,
        },
        { name: "health", method: "get", path: "/health", expect: 200 },
        { name: "ready", method: "get", path: "/ready", expect: 200 },
        {
          name: "not ready",
          method: "get",
          path: "/ready",
          setup: (w) => w.breakFilestore("staging"),
          expect: 503,
        },
        // The documented path itself: `{id}` is no run, so each answers 404 (the /runs replies of a real
        // run are checked in apps/publish/runs_test.ts).
        { name: "runs list", method: "get", path: "/runs", expect: 200 },
        { name: "run unknown", method: "get", path: "/runs/{id}", expect: 404 },
        { name: "run events unknown", method: "get", path: "/runs/{id}/events", expect: 404 },
        { name: "run cancel unknown", method: "post", path: "/runs/{id}/cancel", expect: 404 },
        { name: "run resume unknown", method: "post", path: "/runs/{id}/resume", expect: 404 },
        { name: "http sources list", method: "get", path: "/http-sources", expect: 200 },
        {
          name: "http source files unknown",
          method: "get",
          path: "/http-sources/{name}/files",
          expect: 404,
        },
        {
          name: "http source run unknown",
          method: "post",
          path: "/http-sources/{name}/run",
          expect: 404,
        },
      ],
    },
  };

Deno.test("OpenAPI contract: every reply matches the schema its service declares", async (t) => {
  for (const [service, spec] of Object.entries(SERVICES)) {
    using docWorld = new FakeWorld();
    const doc = await (await spec.app(docWorld).request("http://test.local/openapi.json"))
      .json();
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const exercised = new Set<string>();

    for (const c of spec.cases) {
      await t.step(`${service} ${c.method.toUpperCase()} ${c.path} (${c.name})`, async () => {
        using world = new FakeWorld();
        await c.setup?.(world);
        const headers: Record<string, string> = { "x-api-key": c.key ?? spec.key };
        if (c.body !== undefined) headers["content-type"] = "application/json";
        const res = await spec.app(world).request(`http://test.local${c.path}`, {
          method: c.method.toUpperCase(),
          headers,
          ...(c.body === undefined ? {} : { body: JSON.stringify(c.body) }),
        });
        assert.equal(res.status, c.expect);
        const operation = doc.paths[c.path]?.[c.method];
        assert.ok(operation, `${c.method} ${c.path} is declared`);
        const declared = operation.responses[String(res.status)];
        assert.ok(declared, `status ${res.status} is declared for ${c.method} ${c.path}`);
        const schema = declared.content["application/json"].schema;
        const validate = ajv.compile({ ...schema, components: doc.components });
        const body = await res.json();
        assert.ok(validate(body), JSON.stringify(validate.errors));
        exercised.add(`${c.method} ${c.path}`);
      });
    }

    await t.step(`${service}: every declared route is exercised`, () => {
      const declared = Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method} ${path}`)
      );
      assert.deepEqual(declared.sort(), [...exercised].sort());
    });
  }
});

Deno.test("OpenAPI contract: the data API's replies match the schemas the gateway declares", async (t) => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(3), peopleTable(1, "people", "b")]);
  const single = await world.published("proj_a", [peopleTable(3)]);
  const doc = await (await world.app.request(`${GATEWAY}/openapi.json`)).json();
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const exercised = new Set<string>();
  const rows = (id: string, query = "") => `/data/v1/releases/${id}/tables/people/rows${query}`;
  const cases: { name: string; declared: string; path: string; expect: number; sign?: boolean }[] =
    [
      { name: "releases", declared: "/data/v1/releases", path: "/data/v1/releases", expect: 200 },
      {
        name: "releases, a bad limit",
        declared: "/data/v1/releases",
        path: "/data/v1/releases?limit=0",
        expect: 422,
      },
      {
        name: "releases, not signed",
        declared: "/data/v1/releases",
        path: "/data/v1/releases",
        expect: 401,
        sign: false,
      },
      {
        name: "tables",
        declared: "/data/v1/releases/{id}/tables",
        path: `/data/v1/releases/${release.id}/tables`,
        expect: 200,
      },
      {
        name: "tables, unknown release",
        declared: "/data/v1/releases/{id}/tables",
        path: "/data/v1/releases/nothing/tables",
        expect: 404,
      },
      {
        name: "rows, records",
        declared: "/data/v1/releases/{id}/tables/{table}/rows",
        path: rows(single.id, "?limit=2"),
        expect: 200,
      },
      {
        name: "rows, tabular",
        declared: "/data/v1/releases/{id}/tables/{table}/rows",
        path: rows(single.id, "?orientation=tabular"),
        expect: 200,
      },
      {
        name: "rows, a bad cursor",
        declared: "/data/v1/releases/{id}/tables/{table}/rows",
        path: rows(single.id, "?cursor=nonsense"),
        expect: 400,
      },
      {
        name: "rows, ambiguous table",
        declared: "/data/v1/releases/{id}/tables/{table}/rows",
        path: rows(release.id),
        expect: 422,
      },
      {
        name: "rows, missing table",
        declared: "/data/v1/releases/{id}/tables/{table}/rows",
        path: rows(release.id, "?dataset=nowhere"),
        expect: 404,
      },
    ];
  for (const c of cases) {
    await t.step(`approval GET ${c.declared} (${c.name})`, async () => {
      let status: number;
      let body: unknown;
      if (c.sign === false) {
        const res = await world.app.request(GATEWAY + c.path);
        status = res.status;
        body = await res.json();
      } else {
        const reply = await world.get(c.path);
        status = reply.res.status;
        body = JSON.parse(reply.text);
      }
      assert.equal(status, c.expect);
      const declared = doc.paths[c.declared]?.get?.responses[String(status)];
      assert.ok(declared, `status ${status} is declared for GET ${c.declared}`);
      const validate = ajv.compile({
        ...declared.content["application/json"].schema,
        components: doc.components,
      });
      assert.ok(validate(body), JSON.stringify(validate.errors));
      exercised.add(c.declared);
    });
  }
  await t.step("every data API route is exercised", () => {
    const declared = Object.keys(doc.paths).filter((p) => p.startsWith("/data/"));
    assert.deepEqual(declared.sort(), [...exercised].sort());
  });
});
