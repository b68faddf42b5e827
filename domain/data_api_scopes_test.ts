import assert from "node:assert/strict";
import {
  type DataApiClient,
  InvalidDataApiClientsError,
  isServedRelease,
  mayNameTable,
  mayReadRelease,
  mayReadTable,
  parseDataApiClients,
  singleProjectOf,
} from "./data_api_scopes.ts";
import { newRelease, type Release, withPublication } from "./release.ts";

const CLIENT: DataApiClient = parseDataApiClients({
  clients: [{
    id: "pipeline-a",
    secret_name: "hawk-pipeline-a",
    scopes: [
      { project: "proj_a", tables: "*" },
      { release: "r-42", tables: ["people", "clinic.visits"] },
    ],
  }],
}).clients[0]!;

const PUBLICATION = {
  published_at: "2026-12-01T00:00:00.000Z",
  receipt: { jws: "a.b.c", claims: {} },
  crate: {},
};

function aRelease(overrides: Partial<Release> = {}): Release {
  const release = newRelease({
    project_name: "proj_b",
    project_start_time: "20261201_000000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: { kind: "key", id: "0123456789abcdef" },
  }, "2026-12-01T00:00:00.000Z");
  return { ...withPublication(release, PUBLICATION, null), ...overrides };
}

Deno.test("parseDataApiClients() accepts a valid file and refuses bad ones naming the field", async (t) => {
  const bad: [string, unknown, RegExp][] = [
    ["no clients", { clients: [] }, /clients/],
    ["a scope with both", {
      clients: [{
        id: "a",
        secret_name: "s",
        scopes: [{ project: "p", release: "r", tables: "*" }],
      }],
    }, /clients\.0\.scopes\.0: give exactly one of project or release/],
    ["a scope with neither", {
      clients: [{ id: "a", secret_name: "s", scopes: [{ tables: "*" }] }],
    }, /exactly one/],
    ["no tables", {
      clients: [{ id: "a", secret_name: "s", scopes: [{ project: "p", tables: [] }] }],
    }, /clients\.0\.scopes\.0\.tables/],
    ["a bad id", {
      clients: [{ id: "a b", secret_name: "s", scopes: [{ project: "p", tables: "*" }] }],
    }, /clients\.0\.id/],
    ["an inline key", {
      clients: [{ id: "a", secret_name: "s", key: "k", scopes: [{ project: "p", tables: "*" }] }],
    }, /key/],
    ["a duplicate id", {
      clients: [
        { id: "a", secret_name: "s", scopes: [{ project: "p", tables: "*" }] },
        { id: "a", secret_name: "t", scopes: [{ project: "q", tables: "*" }] },
      ],
    }, /clients\.1\.id: client id "a" is listed twice/],
    ["not an object", "clients", /file/],
  ];
  for (const [name, value, message] of bad) {
    await t.step(name, () => {
      assert.throws(() => parseDataApiClients(value), (e: unknown) => {
        assert.ok(e instanceof InvalidDataApiClientsError);
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("mayReadRelease() allows only releases a scope names, by project or id", () => {
  assert.equal(mayReadRelease(CLIENT, { id: "x", project_name: "proj_a" }), true);
  assert.equal(mayReadRelease(CLIENT, { id: "r-42", project_name: "proj_z" }), true);
  assert.equal(mayReadRelease(CLIENT, { id: "x", project_name: "proj_b" }), false);
  assert.equal(mayReadRelease(CLIENT, { id: "r-4", project_name: "proj_A" }), false);
});

Deno.test("mayReadTable() allows only tables the covering scope lists", () => {
  const byId = { id: "r-42", project_name: "proj_z" };
  assert.equal(mayReadTable(CLIENT, byId, { name: "people", dataset: "any" }), true);
  assert.equal(mayReadTable(CLIENT, byId, { name: "visits", dataset: "clinic" }), true);
  assert.equal(mayReadTable(CLIENT, byId, { name: "visits", dataset: "other" }), false);
  assert.equal(mayReadTable(CLIENT, byId, { name: "secrets", dataset: "clinic" }), false);
  const byProject = { id: "y", project_name: "proj_a" };
  assert.equal(mayReadTable(CLIENT, byProject, { name: "secrets", dataset: "clinic" }), true);
  const neither = { id: "y", project_name: "proj_b" };
  assert.equal(mayReadTable(CLIENT, neither, { name: "people", dataset: "x" }), false);
});

Deno.test("mayNameTable() refuses before asking only what no scope could allow", () => {
  const byId = { id: "r-42", project_name: "proj_z" };
  assert.equal(mayNameTable(CLIENT, byId, "people", undefined), true);
  assert.equal(mayNameTable(CLIENT, byId, "visits", undefined), true);
  assert.equal(mayNameTable(CLIENT, byId, "visits", "clinic"), true);
  assert.equal(mayNameTable(CLIENT, byId, "visits", "other"), false);
  assert.equal(mayNameTable(CLIENT, byId, "secrets", undefined), false);
});

Deno.test("isServedRelease() serves only open, published, unexpired releases", async (t) => {
  const now = new Date("2026-12-07T00:00:00.000Z");
  const cases: [string, Release, boolean][] = [
    ["open and published", aRelease(), true],
    ["not expired yet", aRelease({ expires_at: "2026-12-08T00:00:00.000Z" }), true],
    ["expired", aRelease({ expires_at: "2026-12-06T23:59:59.000Z" }), false],
    ["expiring now", aRelease({ expires_at: "2026-12-07T00:00:00.000Z" }), false],
    ["unpublished", aRelease({ publication: null }), false],
    ["revoking", aRelease({ state: "revoking" }), false],
    ["revoked", aRelease({ state: "revoked" }), false],
    ["rejected", aRelease({ state: "rejected" }), false],
  ];
  for (const [name, release, served] of cases) {
    await t.step(name, () => assert.equal(isServedRelease(release, now), served));
  }
});

Deno.test("singleProjectOf() names the project only when every scope names that one project", () => {
  assert.equal(singleProjectOf(CLIENT), undefined);
  const one = parseDataApiClients({
    clients: [{
      id: "b",
      secret_name: "s",
      scopes: [{ project: "p", tables: "*" }, { project: "p", tables: ["t"] }],
    }],
  }).clients[0]!;
  assert.equal(singleProjectOf(one), "p");
});
