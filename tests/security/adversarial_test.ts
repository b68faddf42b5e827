/**
 * The adversarial suite: every hostile request of `_hostile_cases.ts` sent in-process to a fresh world
 * (the three apps with memory fakes, a real filestore and real secret files under a temporary root).
 * Each reply must have the expected status and code in the CR8TOR error envelope, leak no secret or
 * server path, and leave every file (inside the filestore base too, unless the case stages) unchanged;
 * the source must see no connection and no secret may be read unless the case reaches the catalogue.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import type { AuditRecord } from "../../domain/audit.ts";
import {
  type Category,
  HOSTILE_CASES,
  type HostileCase,
  POST_ROUTES,
  type Service,
  SERVICE_KEYS,
} from "./_hostile_cases.ts";
import {
  assertErrorEnvelope,
  assertLeaksNothing,
  changedPaths,
  type HostileWorld,
  hostileWorld,
  snapshotTree,
} from "./_hostile_world.ts";

function appOf(world: HostileWorld, service: Service) {
  if (service === "approval") return world.approvalApp();
  return service === "metadata" ? world.metadataApp() : world.publishApp();
}

function requestOf(c: HostileCase): Request {
  const headers = c.headers ?? {
    "content-type": "application/json",
    ...(c.key === null ? {} : { "x-api-key": c.key ?? SERVICE_KEYS[c.service] }),
  };
  const raw = typeof c.raw === "function" ? c.raw() : c.raw;
  const body = raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
  return new Request(`http://test.local${c.path}`, {
    method: c.method ?? "POST",
    headers,
    ...(body === undefined ? {} : { body }),
  });
}

/** True when a changed path is the case's staging folder, inside it, or one of its parent folders. */
function allowedChange(path: string, baseRel: string, stages: string | undefined): boolean {
  if (stages === undefined) return false;
  const staged = `${baseRel}/${stages}`;
  return path === staged || path.startsWith(`${staged}/`) ||
    (path.startsWith(baseRel) && staged.startsWith(`${path}/`));
}

Deno.test("adversarial table covers every route and category with at least 60 requests", () => {
  assert.ok(HOSTILE_CASES.length >= 60, `${HOSTILE_CASES.length} cases`);
  const names = HOSTILE_CASES.map((c) => `${c.service} ${c.name}`);
  assert.equal(new Set(names).size, names.length, "case names are unique");
  for (const [service, path] of POST_ROUTES) {
    const count = HOSTILE_CASES.filter((c) => c.service === service && c.path === path).length;
    assert.ok(count >= 5, `${service} ${path} has ${count} hostile cases`);
  }
  for (const service of ["approval", "metadata", "publish"] as const) {
    for (const path of ["/health", "/ready", "/openapi.json", "/docs"]) {
      assert.ok(
        HOSTILE_CASES.some((c) => c.service === service && c.path === path),
        `${service} ${path} has a hostile case`,
      );
    }
  }
  const categories = new Map<Category, number>();
  for (const c of HOSTILE_CASES) categories.set(c.category, (categories.get(c.category) ?? 0) + 1);
  for (const [category, count] of categories) assert.ok(count >= 4, `${category}: ${count}`);
  assert.equal(categories.size, 10);
});

Deno.test("adversarial requests are refused without side effects", async (t) => {
  for (const c of HOSTILE_CASES) {
    await t.step(`${c.category}: ${c.service} ${c.method ?? "POST"} ${c.name}`, async () => {
      using world = hostileWorld();
      world.allow({
        type: "databrickssql",
        host: "db.internal",
        port: 443,
        http_path: "/sql/1.0/warehouses/abc",
        catalog: "main",
        credentials: [{ client_id: "sourceuser", client_secret: "sourcepassword" }],
      });
      const app = appOf(world, c.service);
      const forbidden = [world.root, world.base, world.secretsDir, Deno.cwd()];
      const before = await snapshotTree(world.root);

      const res = await app.request(requestOf(c));
      const text = await res.text();

      assert.equal(res.status, c.status, text.slice(0, 500));
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      const json = JSON.parse(text);
      if (c.code === "success") {
        assert.equal(json.status, "success");
        assertLeaksNothing(text, forbidden);
      } else {
        const payload = assertErrorEnvelope(json, { code: c.code, forbidden });
        if (c.issues !== undefined) {
          assert.deepEqual(payload.issues?.map((i) => i.path), c.issues, payload.detail);
        }
      }
      if (c.allow !== undefined) assert.equal(res.headers.get("allow"), c.allow);

      // No file outside the filestore base changed; inside it, only the case's own staging folder.
      const baseRel = relative(world.root, world.base);
      const changed = changedPaths(before, await snapshotTree(world.root))
        .filter((path) => !allowedChange(path, baseRel, c.stages));
      assert.deepEqual(changed, [], "files changed");
      if (c.stages !== undefined) {
        assert.ok(
          (await snapshotTree(world.base)).has(`${c.stages}/.cr8tor-staging.json`),
          `staged under ${c.stages}`,
        );
      }

      // The source: no connection and no secret read unless the case reaches the catalogue.
      if (c.connects === true) {
        assert.ok(world.connections.every((o) => o.host === "db.internal" && o.port === 5432));
        assert.ok(
          world.fileSecrets.reads.every((name) => ["sourceuser", "sourcepassword"].includes(name)),
          `secrets read: ${world.fileSecrets.reads.join()}`,
        );
      } else {
        assert.deepEqual(world.connections, [], "no connection was made");
        assert.deepEqual(world.fileSecrets.reads, [], "no secret was read");
      }
      assert.ok(world.opened.every((db) => db.closed), "every source connection was closed");

      // One audit record of the answer, for POSTs with the key (key refusals are only counted, for a
      // summary); nothing secret in it or in any log line.
      const records = (world.audit?.records ?? []).filter((r: AuditRecord) =>
        r.service === c.service
      );
      if (c.code === "forbidden") {
        assert.equal(records.length, 0, "no audit record per key refusal");
      } else if ((c.method ?? "POST") === "POST") {
        assert.equal(records.length, 1, "one audit record");
        assert.equal(records[0]!.status, c.status);
        assert.equal(records[0]!.error_code, c.code === "success" ? null : c.code);
      } else {
        assert.equal(records.length, 0, "no audit record for a non-POST");
      }
      assertLeaksNothing(world.audit?.text() ?? "", []);
      assertLeaksNothing(world.allLogLines().join("\n"), []);
    });
  }
});
