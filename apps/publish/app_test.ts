import assert from "node:assert/strict";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";

const VALIDATE = "/data-publish/validate";

Deno.test("publish app POST /data-publish/validate", async (t) => {
  await t.step("checks the filestore, connects to the source and answers success", async () => {
    const world = new FakeWorld();
    const res = await world.publishApp().request(
      postJson(VALIDATE, aTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      status: "success",
      payload: { validation_status: "success" },
    });
    assert.equal(world.connections.length, 1, "it really connects");
    assert.equal(world.opened[0]?.closed, true);
  });

  await t.step("ignores dataset, as the sub-request shape allows", async () => {
    const world = new FakeWorld();
    const body = aTransferRequest();
    delete body.dataset;
    const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
    assert.equal(res.status, 200);
  });

  await t.step("finds the destination by name case-insensitively", async () => {
    const world = new FakeWorld();
    const body = aTransferRequest({
      destination: { name: "lsc", type: "filestore", format: "duckdb" },
    });
    const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
    assert.equal(res.status, 200);
  });

  await t.step(
    "answers 404 for a destination that is not configured, without connecting",
    async () => {
      const world = new FakeWorld();
      const body = aTransferRequest({
        destination: { name: "NW", type: "filestore", format: "csv" },
      });
      const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
      const json = await res.json();
      assert.equal(res.status, 404);
      assert.equal(
        json.payload.detail,
        'PublishService: Cannot find filestore destination "NW": TARGET_STORAGE_ACCOUNT_NW_SDE_MNT_PATH is not set',
      );
      assert.equal(world.connections.length, 0);
    },
  );

  await t.step("answers 500 saying which filestore check failed", async () => {
    const world = new FakeWorld();
    world.filestore.setProblem("Cannot use the production area: it is not writable");
    const res = await world.publishApp().request(
      postJson(VALIDATE, aTransferRequest(), PUBLISH_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 500);
    assert.equal(
      json.payload.detail,
      "PublishService: Cannot use the production area: it is not writable",
    );
    assert.equal(json.payload.code, "filestore_not_ready");
  });

  await t.step("answers 502 when the source cannot be reached", async () => {
    const world = new FakeWorld();
    world.refuseConnections = "Cannot connect to PostgreSQL at db.internal:5432: timeout";
    const res = await world.publishApp().request(
      postJson(VALIDATE, aTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 502);
    assert.equal((await res.json()).payload.code, "source_unavailable");
  });

  await t.step("answers 501 for a PostgreSQL destination until it is built", async () => {
    const world = new FakeWorld();
    const body = aTransferRequest({ destination: { type: "postgresql" } });
    const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
    assert.equal(res.status, 501);
    assert.equal(world.connections.length, 0);
  });
});

Deno.test("publish app package and publish answer 501 until the filestore pipeline exists", async (t) => {
  for (
    const [path, body] of [["/data-publish/package", aTransferRequest()], [
      "/data-publish/publish",
      aPublishRequest(),
    ]] as const
  ) {
    await t.step(path, async () => {
      const res = await new FakeWorld().publishApp().request(postJson(path, body, PUBLISH_KEY));
      assert.equal(res.status, 501);
      assert.equal((await res.json()).status, "error");
    });
  }
});
