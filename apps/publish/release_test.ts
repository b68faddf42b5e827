import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CRATE_TAG_FILE,
  RECEIPT_TAG_FILE,
  type ReleaseKeySet,
  verifyReceipt,
} from "../../domain/release_receipt.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";

const RELEASE = {
  id: "rel-42",
  requested_by: { kind: "key", id: "gateway-key" },
  decisions: [],
  expires_at: null,
};

async function keysOf(world: FakeWorld): Promise<ReleaseKeySet> {
  const res = await world.publishApp().request("http://test.local/.well-known/release-keys");
  assert.equal(res.status, 200);
  return await res.json();
}

Deno.test("publish app: a release's reply carries its crate and a receipt that verifies with the well-known keys", async () => {
  using world = new FakeWorld();
  const app = world.publishApp();
  const packaged = await app.request(
    postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY),
  );
  assert.equal(packaged.status, 200);
  const res = await app.request(
    postJson("/data-publish/publish", aPublishRequest({ release: RELEASE }), PUBLISH_KEY),
  );
  assert.equal(res.status, 200);
  const { payload } = await res.json();

  const claims = await verifyReceipt(payload.receipt.jws, await keysOf(world));
  assert.deepEqual(claims, payload.receipt.claims);
  assert.equal(claims.release_id, "rel-42");
  assert.equal(claims.project_name, "Pr042");
  assert.deepEqual(claims.destination, { type: "filestore", name: "LSC" });

  const bag = join(world.base, "production", "Pr042", "20250611_093000");
  const tagManifest = await readFile(join(bag, "tagmanifest-sha512.txt"), "utf8");
  assert.equal(claims.subject.sha512, createHash("sha512").update(tagManifest).digest("hex"));
  assert.equal((await readFile(join(bag, RECEIPT_TAG_FILE), "utf8")).trim(), payload.receipt.jws);
  assert.deepEqual(JSON.parse(await readFile(join(bag, CRATE_TAG_FILE), "utf8")), payload.crate);

  const files = new Map(
    (payload.crate["@graph"] as Record<string, unknown>[]).map((e) => [e["@id"], e]),
  );
  for (const published of payload.data_published) {
    const file = files.get(published.file_path);
    assert.ok(file, `${published.file_path} is in the crate`);
    assert.equal(file.sha512, published.hash_value);
    assert.equal(Number(file.contentSize), published.total_bytes);
  }

  const again = await app.request(
    postJson("/data-publish/publish", aPublishRequest({ release: RELEASE }), PUBLISH_KEY),
  );
  const repeated = (await again.json()).payload;
  assert.deepEqual(repeated.receipt, payload.receipt, "nothing new staged: the stored receipt");
  assert.deepEqual(repeated.crate, payload.crate);
});

Deno.test("publish app GET /.well-known/release-keys: no key needed, public keys only, the signer's current key", async () => {
  using world = new FakeWorld();
  const res = await world.publishApp().request("http://test.local/.well-known/release-keys");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /json/);
  const set = await res.json();
  assert.deepEqual(set, await world.releaseSigner.keySet());
  assert.equal(set.keys.length, 1);
  assert.ok(!JSON.stringify(set).includes('"d"'));
  const post = await world.publishApp().request("http://test.local/.well-known/release-keys", {
    method: "POST",
  });
  assert.equal(post.status, 403, "only GET is public");
});

Deno.test("publish app refuses a malformed release with 422, publishing nothing", async () => {
  using world = new FakeWorld();
  const app = world.publishApp();
  await app.request(postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY));
  const res = await app.request(
    postJson(
      "/data-publish/publish",
      aPublishRequest({ release: { ...RELEASE, expires_at: "tomorrow" } }),
      PUBLISH_KEY,
    ),
  );
  assert.equal(res.status, 422);
  const published = await world.filestore.publishedRelease({
    project: "Pr042",
    startTime: "20250611_093000",
  });
  assert.equal(published, undefined);
});

Deno.test("publish app: a package records the released tables with their selected columns and source types", async () => {
  using world = new FakeWorld();
  const res = await world.publishApp().request(
    postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY),
  );
  assert.equal(res.status, 200);
  const manifest = JSON.parse(
    await readFile(
      join(world.base, "staging", "Pr042", "20250611_093000", ".cr8tor-staging.json"),
      "utf8",
    ),
  );
  assert.deepEqual(manifest.datasets.oncology.tables, [{
    name: "tumour_stage",
    description: "TNM stage lookup",
    columns: [
      { name: "stage_id", datatype: "bigint", description: "surrogate key" },
      { name: "stage_label", datatype: "character varying(20)", description: null },
    ],
  }]);
});
