import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryDestinationDatabase } from "../../adapters/memory/memory_destination_database.ts";
import { HttpOpalClient } from "../../adapters/opal/http_opal_client.ts";
import { FakeOpal } from "../../tests/support/fake_opal.ts";
import { createPublishService } from "./app.ts";
import { deletionCertificateSchema } from "../../domain/revocation.ts";
import { FakeWorld, PUBLISH_KEY, testPublishLimits } from "../../tests/support/apps.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";

const PACKAGE = "/data-publish/package";
const PUBLISH = "/data-publish/publish";
const REVOKE = "/data-publish/revoke";
const RUN_DIR = "Pr042/20250611_093000";
const RELEASE = "3f0e9a52-2b6c-4d3a-9d0e-4c2f3a1b5e77";

function aRevokeRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...aPublishRequest(),
    release_id: RELEASE,
    reason: "Consent withdrawn by the data controller",
    requested_by: { kind: "person", id: "alice", issuer: "https://idp.example" },
    ...overrides,
  };
}

async function call(world: FakeWorld, path: string, body: unknown, headers = {}) {
  const request = postJson(path, body, PUBLISH_KEY);
  for (const [k, v] of Object.entries(headers)) request.headers.set(k, v as string);
  const res = await world.publishApp().request(request);
  return { status: res.status, json: await res.json() };
}

/** Packages and publishes the run; returns the published files (path, sha512, bytes). */
async function published(world: FakeWorld) {
  assert.equal((await call(world, PACKAGE, aTransferRequest())).status, 200);
  const { status, json } = await call(world, PUBLISH, aPublishRequest());
  assert.equal(status, 200);
  return (json.payload.data_published as { file_path: string; hash_value: string }[]);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("publish app POST /data-publish/revoke (filestore)", async (t) => {
  await t.step(
    "deletes production and staging and certifies every file with its SHA-512",
    async () => {
      using world = new FakeWorld();
      const audit = world.audit = new MemoryAuditTrail();
      const files = await published(world);
      // Staged again after publishing: staging is revoked too.
      assert.equal((await call(world, PACKAGE, aTransferRequest())).status, 200);
      const manifest = await readFile(
        join(world.base, "production", RUN_DIR, "manifest-sha512.txt"),
        "utf8",
      );

      const { status, json } = await call(world, REVOKE, aRevokeRequest());

      assert.equal(status, 200, JSON.stringify(json));
      const certificate = deletionCertificateSchema.parse(json.payload.certificate);
      assert.equal(certificate.release_id, RELEASE);
      assert.equal(certificate.mode, "deleted");
      assert.equal(certificate.reason, "Consent withdrawn by the data controller");
      assert.deepEqual(certificate.requested_by, {
        kind: "person",
        id: "alice",
        issuer: "https://idp.example",
      });
      assert.deepEqual(certificate.destination, { type: "filestore", name: "LSC" });
      const production = certificate.files.filter((f) => f.area === "production");
      for (const file of files) {
        const found = production.find((f) => f.path === file.file_path);
        assert.equal(found?.sha512, file.hash_value, file.file_path);
      }
      for (const line of manifest.trim().split("\n")) {
        const [sha512, path] = line.split(/\s+/) as [string, string];
        assert.equal(production.find((f) => f.path === path)?.sha512, sha512, path);
      }
      const tagFiles = production.map((f) => f.path).filter((p) => !p.startsWith("data/"));
      assert.ok(tagFiles.includes("bagit.txt") && tagFiles.includes("tagmanifest-sha512.txt"));
      assert.ok(certificate.files.some((f) => f.area === "staging"), "staging is certified");
      assert.ok(certificate.removed_at >= certificate.started_at);
      assert.deepEqual(certificate.tables, []);
      assert.equal(certificate.opal, null);

      assert.equal(await exists(join(world.base, "production", "Pr042")), false);
      assert.equal(await exists(join(world.base, "staging", "Pr042")), false);

      const record = audit.records.at(-1)!;
      assert.equal(record.action, REVOKE);
      assert.equal(record.outcome, "success");
      assert.deepEqual(record.certificate, certificate);
    },
  );

  await t.step("revoking again returns the same certificate and removes nothing", async () => {
    using world = new FakeWorld();
    await published(world);
    const first = await call(world, REVOKE, aRevokeRequest());
    const again = await call(world, REVOKE, aRevokeRequest({ reason: "asked twice" }));
    assert.equal(again.status, 200);
    assert.deepEqual(again.json.payload.certificate, first.json.payload.certificate);
  });

  await t.step("a revoked run is never published again (409 publication_revoked)", async () => {
    using world = new FakeWorld();
    await published(world);
    assert.equal((await call(world, REVOKE, aRevokeRequest())).status, 200);
    assert.equal((await call(world, PACKAGE, aTransferRequest())).status, 200);
    const { status, json } = await call(world, PUBLISH, aPublishRequest());
    assert.equal(status, 409);
    assert.equal(json.payload.code, "publication_revoked");
    assert.equal(await exists(join(world.base, "production", RUN_DIR)), false);
  });

  await t.step("quarantine moves the run into the owner-only revoked/ area", async () => {
    using world = new FakeWorld();
    world.revocationMode = "quarantine";
    const files = await published(world);
    const { status, json } = await call(world, REVOKE, aRevokeRequest());
    assert.equal(status, 200);
    assert.equal(json.payload.certificate.mode, "quarantined");
    const moved = join(world.base, "revoked", "Pr042", `20250611_093000-${RELEASE}`, "production");
    for (const file of files) assert.ok(await exists(join(moved, file.file_path)), file.file_path);
    assert.equal((await stat(join(world.base, "revoked"))).mode & 0o077, 0);
    assert.deepEqual(await readdir(join(world.base, "production")), []);
  });

  await t.step("a run never published revokes nothing and still certifies", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(world, REVOKE, aRevokeRequest());
    assert.equal(status, 200);
    assert.deepEqual(json.payload.certificate.files, []);
  });

  await t.step("refuses a missing reason or requester, changing nothing", async () => {
    using world = new FakeWorld();
    await published(world);
    for (
      const body of [
        aRevokeRequest({ reason: "" }),
        aRevokeRequest({ reason: "x".repeat(2001) }),
        aRevokeRequest({ requested_by: { kind: "robot", id: "r" } }),
        aRevokeRequest({ release_id: undefined }),
      ]
    ) {
      const { status, json } = await call(world, REVOKE, body);
      assert.equal(status, 422);
      assert.equal(json.payload.code, "invalid_request");
    }
    assert.ok(await exists(join(world.base, "production", RUN_DIR, "bagit.txt")));
  });

  await t.step("Prefer: respond-async answers 202 with a revoke run", async () => {
    using world = new FakeWorld();
    await published(world);
    const { status, json } = await call(world, REVOKE, aRevokeRequest(), {
      prefer: "respond-async",
    });
    assert.equal(status, 202);
    assert.equal(json.payload.action, "revoke");
    for (let i = 0; i < 100; i++) {
      const res = await world.publishApp().request(
        new Request(`http://localhost/runs/${json.payload.id}`, {
          headers: { "x-api-key": PUBLISH_KEY },
        }),
      );
      const run = (await res.json()).payload;
      if (run.state === "succeeded") {
        assert.equal(run.outcome.body.payload.certificate.release_id, RELEASE);
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail("the revoke run did not succeed");
  });
});

/** A publish service on `world` whose PostgreSQL destination is an in-memory database and `opal`. */
function withPostgresql(world: FakeWorld, database: MemoryDestinationDatabase, opal: FakeOpal) {
  return createPublishService({
    ...world.sourceAccess(),
    apiKey: PUBLISH_KEY,
    log: world.publishLog,
    maxBodyBytes: 64 * 1024,
    filestores: new Map([["LSC", world.filestore]]),
    postgresql: {
      connect: () => Promise.resolve(database.reopen()),
      opal: () =>
        Promise.resolve(
          new HttpOpalClient({
            baseUrl: opal.url,
            username: opal.admin.username,
            password: opal.admin.password,
            timeoutMs: 5_000,
          }),
        ),
      resourceAccess: () =>
        Promise.resolve({
          database: { host: "127.0.0.1", port: 5432, database: "dest" },
          readOnly: { username: "opal_ro", password: "opal-ro-password" },
        }),
    },
    ...testPublishLimits(),
  });
}

Deno.test("publish app POST /data-publish/revoke (PostgreSQL + OPAL)", async () => {
  using world = new FakeWorld();
  await using opal = await FakeOpal.start();
  const database = new MemoryDestinationDatabase();
  const { app, runner } = withPostgresql(world, database, opal);
  try {
    const pg = { destination: { name: "pg", type: "postgresql", format: "sql" } };
    const send = async (path: string, body: unknown) => {
      const res = await app.request(postJson(path, body, PUBLISH_KEY));
      return { status: res.status, json: await res.json() };
    };
    assert.equal((await send(PACKAGE, aTransferRequest(pg))).status, 200);
    const published = await send(PUBLISH, aPublishRequest(pg));
    assert.equal(published.status, 200);
    const tables = published.json.payload.data_published.map((
      p: { postgresql_table_name: string },
    ) => p.postgresql_table_name);
    const project = published.json.payload.data_published[0].opal_project_name;

    const { status, json } = await send(REVOKE, aRevokeRequest(pg));

    assert.equal(status, 200, JSON.stringify(json));
    const certificate = deletionCertificateSchema.parse(json.payload.certificate);
    assert.deepEqual(
      certificate.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]),
      tables.map((name: string) => [name, 3]),
    );
    assert.deepEqual(certificate.opal, {
      project,
      resources: published.json.payload.data_published.map((
        p: { opal_resource_name: string },
      ) => p.opal_resource_name).sort(),
      group: `${project}_group`,
    });
    assert.deepEqual(certificate.destination, { type: "postgresql", name: "pg" });
    assert.deepEqual(database.schemas(), []);
    assert.deepEqual(Object.keys(opal.state.resources[project] ?? {}), []);
    assert.equal(opal.state.groups[`${project}_group`], undefined);
  } finally {
    await runner.close();
  }
});
