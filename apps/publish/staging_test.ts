import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";
import {
  aNarrowerTransferRequest,
  aPublishRequest,
  aTransferRequest,
  postJson,
} from "../../tests/support/requests.ts";

const PACKAGE = "/data-publish/package";
const PUBLISH = "/data-publish/publish";
const STAGING = "/data-publish/staging";
const RUN_DIR = "Pr042/20250611_093000";

/** A package request asking for the disclosure pre-checks, as the gateway sends it when publish is gated. */
function aCheckedTransferRequest() {
  return aTransferRequest({ disclosure_checks: true });
}

async function call(world: FakeWorld, path: string, body: unknown, key = PUBLISH_KEY) {
  const res = await world.publishApp().request(postJson(path, body, key));
  return { status: res.status, json: await res.json() };
}

Deno.test("publish app POST /data-publish/staging", async (t) => {
  await t.step("needs the API key", async () => {
    using world = new FakeWorld();
    const { status } = await call(world, STAGING, aPublishRequest(), "wrong-key-wrong-key");
    assert.equal(status, 403);
  });

  await t.step("answers a null digest and no tables when nothing is staged", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(world, STAGING, aPublishRequest());
    assert.equal(status, 200);
    assert.deepEqual(json, {
      status: "success",
      payload: { staging_digest: null, tables: [], unchecked_datasets: [] },
    });
  });

  await t.step("answers the digest and each staged table's pre-checks", async () => {
    using world = new FakeWorld();
    assert.equal((await call(world, PACKAGE, aCheckedTransferRequest())).status, 200);
    const { status, json } = await call(world, STAGING, aPublishRequest());
    assert.equal(status, 200);
    assert.match(json.payload.staging_digest, /^[0-9a-f]{64}$/);
    assert.deepEqual(json.payload.unchecked_datasets, []);
    const [table] = json.payload.tables;
    assert.equal(table.dataset, "oncology");
    assert.equal(table.table, "tumour_stage");
    assert.equal(table.thresholds.small_cell_threshold, 10);
    assert.equal(table.disclosure.rows, 3);
    assert.deepEqual(table.disclosure.columns.map((c: { name: string }) => c.name), [
      "stage_id",
      "stage_label",
    ]);
    assert.deepEqual((await call(world, STAGING, aPublishRequest())).json, json, "stable");
  });

  await t.step(
    "the package run keeps each table's pre-checks; the package reply is unchanged",
    async () => {
      using world = new FakeWorld();
      const packaged = await call(world, PACKAGE, aCheckedTransferRequest());
      assert.deepEqual(Object.keys(packaged.json.payload), ["data_retrieved"]);
      const res = await world.publishApp().request(
        new Request("http://test.local/runs?project=Pr042", {
          headers: { "x-api-key": PUBLISH_KEY },
        }),
      );
      const [run] = (await res.json()).payload.runs;
      assert.equal(run.tables[0].disclosure.rows, 3);
      assert.equal(run.tables[0].disclosure.table, "tumour_stage");
    },
  );

  await t.step("answers 404 for a filestore the deployment does not have", async () => {
    using world = new FakeWorld();
    const body = aPublishRequest({
      destination: { name: "NOPE", type: "filestore", format: "csv" },
    });
    const { status, json } = await call(world, STAGING, body);
    assert.equal(status, 404);
    assert.equal(json.payload.code, "unknown_destination");
  });

  await t.step("is in the OpenAPI document", async () => {
    using world = new FakeWorld();
    const doc = await (await world.publishApp().request("/openapi.json")).json();
    assert.ok(doc.paths["/data-publish/staging"]?.post);
    const publish = doc.components.schemas.PublishServicePublishRequest;
    assert.ok(publish.properties.expected_staging_digest);
    assert.ok(!publish.required.includes("expected_staging_digest"));
    const pkg = doc.components.schemas.PublishServicePackageRequest;
    assert.equal(pkg.properties.disclosure_checks.type, "boolean");
    assert.ok(!pkg.required.includes("disclosure_checks"));
    assert.equal(
      doc.paths["/data-publish/package"].post.requestBody.content["application/json"].schema.$ref,
      "#/components/schemas/PublishServicePackageRequest",
    );
  });
});

Deno.test("publish app POST /data-publish/publish with expected_staging_digest", async (t) => {
  await t.step("answers 409 staging_changed for a stale digest, and nothing moves", async () => {
    using world = new FakeWorld();
    await call(world, PACKAGE, aCheckedTransferRequest());
    const approved = (await call(world, STAGING, aPublishRequest())).json.payload.staging_digest;
    await call(world, PACKAGE, aNarrowerTransferRequest({ disclosure_checks: true }));
    const { status, json } = await call(
      world,
      PUBLISH,
      aPublishRequest({ expected_staging_digest: approved }),
    );
    assert.equal(status, 409);
    assert.equal(json.payload.code, "staging_changed");
    assert.ok(!JSON.stringify(json).includes(approved));
    await assert.rejects(stat(join(world.base, "production", RUN_DIR)), { code: "ENOENT" });
    assert.notEqual(
      (await call(world, STAGING, aPublishRequest())).json.payload.staging_digest,
      null,
    );
  });

  await t.step(
    "publishes, with the checks in the bag, when staging still hashes to it",
    async () => {
      using world = new FakeWorld();
      await call(world, PACKAGE, aCheckedTransferRequest());
      const digest = (await call(world, STAGING, aPublishRequest())).json.payload.staging_digest;
      const { status } = await call(
        world,
        PUBLISH,
        aPublishRequest({ expected_staging_digest: digest }),
      );
      assert.equal(status, 200);
      const checks = JSON.parse(
        await readFile(join(world.base, "production", RUN_DIR, "disclosure-checks.json"), "utf8"),
      );
      assert.equal(checks.datasets[0].checks.tables[0].table, "tumour_stage");
    },
  );

  await t.step("answers 409 staging_changed when nothing is staged any more", async () => {
    using world = new FakeWorld();
    await call(world, PACKAGE, aCheckedTransferRequest());
    const digest = (await call(world, STAGING, aPublishRequest())).json.payload.staging_digest;
    assert.equal((await call(world, PUBLISH, aPublishRequest())).status, 200);
    const { status, json } = await call(
      world,
      PUBLISH,
      aPublishRequest({ expected_staging_digest: digest }),
    );
    assert.equal(status, 409);
    assert.equal(json.payload.code, "staging_changed");
  });

  await t.step("answers 422 for a digest that is not a SHA-256", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(
      world,
      PUBLISH,
      aPublishRequest({ expected_staging_digest: "abc" }),
    );
    assert.equal(status, 422);
    assert.equal(json.payload.code, "invalid_request");
  });
});

/** The package run's tables as `GET /runs` shows them. */
async function packageRunTables(world: FakeWorld) {
  const res = await world.publishApp().request(
    new Request("http://test.local/runs?project=Pr042", { headers: { "x-api-key": PUBLISH_KEY } }),
  );
  const runs = (await res.json()).payload.runs as { action: string; tables: unknown[] }[];
  return runs.find((run) => run.action === "package")!.tables as { disclosure?: unknown }[];
}

/** Packages `body`, then publishes; what the run, staging and the published bag hold of the checks. */
async function packageAndPublish(world: FakeWorld, body: unknown) {
  const packaged = await call(world, PACKAGE, body);
  assert.equal(packaged.status, 200, JSON.stringify(packaged.json));
  assert.deepEqual(Object.keys(packaged.json.payload), ["data_retrieved"]);
  const staging = (await call(world, STAGING, aPublishRequest())).json.payload;
  const runTables = await packageRunTables(world);
  assert.equal((await call(world, PUBLISH, aPublishRequest())).status, 200);
  const tagFile = join(world.base, "production", RUN_DIR, "disclosure-checks.json");
  const bagHasChecks = await stat(tagFile).then(() => true, () => false);
  return {
    runChecked: runTables.map((t) => t.disclosure !== undefined && t.disclosure !== null),
    stagedTables: staging.tables.map((t: { table: string }) => t.table),
    unchecked: staging.unchecked_datasets,
    bagHasChecks,
  };
}

const CHECKED = {
  runChecked: [true],
  stagedTables: ["tumour_stage"],
  unchecked: [],
  bagHasChecks: true,
};
const UNCHECKED = {
  runChecked: [false],
  stagedTables: [],
  unchecked: ["oncology"],
  bagHasChecks: false,
};

function warnings(world: FakeWorld): string[] {
  return world.publishLog.lines.filter((line) => line.includes('"disclosure_checks_off"'));
}

Deno.test("publish app DISCLOSURE_CHECKS", async (t) => {
  await t.step("requested (the default): a package that does not ask is not checked", async () => {
    using world = new FakeWorld();
    assert.deepEqual(await packageAndPublish(world, aTransferRequest()), UNCHECKED);
    assert.deepEqual(warnings(world), []);
  });

  await t.step(
    "requested: a package that asks is checked, into the run, staging and the bag",
    async () => {
      using world = new FakeWorld();
      assert.deepEqual(await packageAndPublish(world, aCheckedTransferRequest()), CHECKED);
      assert.deepEqual(warnings(world), []);
    },
  );

  await t.step("requested: disclosure_checks false is the same as not asking", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest({ disclosure_checks: false });
    assert.deepEqual(await packageAndPublish(world, body), UNCHECKED);
  });

  await t.step("on: every package is checked, asked or not", async () => {
    using world = new FakeWorld();
    world.disclosureChecks = "on";
    assert.deepEqual(await packageAndPublish(world, aTransferRequest()), CHECKED);
  });

  await t.step("off: a package that asks is staged unchecked, with one warning", async () => {
    using world = new FakeWorld();
    world.disclosureChecks = "off";
    assert.deepEqual(await packageAndPublish(world, aCheckedTransferRequest()), UNCHECKED);
    const lines = warnings(world);
    assert.equal(lines.length, 1);
    assert.equal(JSON.parse(lines[0]!).level, "warn");
    assert.equal(JSON.parse(lines[0]!).schema, "oncology");
  });

  await t.step("answers 422 for a disclosure_checks that is not a boolean", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(
      world,
      PACKAGE,
      aTransferRequest({ disclosure_checks: "yes" }),
    );
    assert.equal(status, 422);
    assert.equal(json.payload.code, "invalid_request");
  });
});
