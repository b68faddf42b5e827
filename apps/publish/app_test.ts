import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFile, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { bagProblems } from "../../tests/support/bagit_check.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../../tests/support/catalogs.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";

const VALIDATE = "/data-publish/validate";

Deno.test("publish app POST /data-publish/validate", async (t) => {
  await t.step("checks the filestore, connects to the source and answers success", async () => {
    using world = new FakeWorld();
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
    using world = new FakeWorld();
    const body = aTransferRequest();
    delete body.dataset;
    const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
    assert.equal(res.status, 200);
  });

  await t.step("finds the destination by name case-insensitively", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest({
      destination: { name: "lsc", type: "filestore", format: "duckdb" },
    });
    const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
    assert.equal(res.status, 200);
  });

  await t.step(
    "answers 404 for a destination that is not configured, without connecting",
    async () => {
      using world = new FakeWorld();
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
    using world = new FakeWorld();
    world.breakFilestore("production");
    const res = await world.publishApp().request(
      postJson(VALIDATE, aTransferRequest(), PUBLISH_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 500);
    assert.equal(
      json.payload.detail,
      "PublishService: Cannot use the production area: it does not exist",
    );
    assert.equal(json.payload.code, "filestore_not_ready");
  });

  await t.step("answers 502 when the source cannot be reached", async () => {
    using world = new FakeWorld();
    world.refuseConnections = "Cannot connect to PostgreSQL at db.internal:5432: timeout";
    const res = await world.publishApp().request(
      postJson(VALIDATE, aTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 502);
    assert.equal((await res.json()).payload.code, "source_unavailable");
  });

  await t.step(
    "answers 404 for a PostgreSQL destination the deployment does not have",
    async () => {
      using world = new FakeWorld();
      const body = aTransferRequest({ destination: { type: "postgresql" } });
      const res = await world.publishApp().request(postJson(VALIDATE, body, PUBLISH_KEY));
      assert.equal(res.status, 404);
      assert.equal((await res.json()).payload.code, "destination_not_configured");
      assert.equal(world.connections.length, 0);
    },
  );
});

const PACKAGE = "/data-publish/package";
const PUBLISH = "/data-publish/publish";
const RUN_DIR = "Pr042/20250611_093000";

function withTables(tables: unknown, schema = "oncology"): Record<string, unknown> {
  const body = aTransferRequest();
  body.dataset = { ...(body.dataset as Record<string, unknown>), schema_name: schema, tables };
  return body;
}

async function call(world: FakeWorld, path: string, body: unknown) {
  const res = await world.publishApp().request(postJson(path, body, PUBLISH_KEY));
  return { status: res.status, json: await res.json() };
}

function sha512(text: string): string {
  return createHash("sha512").update(new TextEncoder().encode(text)).digest("hex");
}

Deno.test("publish app POST /data-publish/package (filestore)", async (t) => {
  await t.step("stages exactly the requested columns as canonical CSV", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(world, PACKAGE, aTransferRequest());
    assert.equal(status, 200);
    assert.deepEqual(json.payload, {
      data_retrieved: [{ file_path: "data/outputs/oncology/tumour_stage.csv" }],
    });
    const csv = await readFile(
      join(world.base, "staging", RUN_DIR, "data/outputs/oncology/tumour_stage.csv"),
      "utf8",
    );
    assert.equal(csv, 'stage_id,stage_label\n1,T1\n2,"T2, ""node"""\n3,""\n');
    assert.ok(!csv.includes("row-secret"), "unrequested columns never leave the source");
  });

  await t.step("stages every table and view when tables is null, sorted", async () => {
    using world = new FakeWorld();
    const { json } = await call(world, PACKAGE, withTables(null));
    assert.deepEqual(json.payload.data_retrieved, [
      { file_path: "data/outputs/oncology/treatment_line.csv" },
      { file_path: "data/outputs/oncology/tumour_stage.csv" },
    ]);
  });

  await t.step("answers 404 for an unknown table or column and writes nothing", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(
      world,
      PACKAGE,
      withTables([{ name: "tumour_stage", columns: [{ name: "nope" }] }]),
    );
    assert.equal(status, 404);
    assert.match(json.payload.detail, /"tumour_stage\.nope"/);
    assert.deepEqual(await readdir(join(world.base, "staging")), []);
  });

  await t.step("a source failure midway answers 502 and leaves staging as it was", async () => {
    using world = new FakeWorld();
    await call(world, PACKAGE, aTransferRequest());
    const before = await readFile(
      join(world.base, "staging", RUN_DIR, "data/outputs/oncology/tumour_stage.csv"),
      "utf8",
    );
    world.failAfterRows = 2;
    const { status } = await call(world, PACKAGE, withTables(null));
    assert.equal(status, 502);
    const runDir = join(world.base, "staging", RUN_DIR);
    assert.deepEqual((await readdir(runDir)).sort(), [".cr8tor-staging.json", "data"]);
    assert.equal(
      await readFile(join(runDir, "data/outputs/oncology/tumour_stage.csv"), "utf8"),
      before,
    );
    assert.deepEqual(await readdir(join(runDir, "data/outputs/oncology")), ["tumour_stage.csv"]);
  });

  await t.step(
    "a second dataset keeps the first; concurrent packages of one project both land",
    async () => {
      using world = new FakeWorld();
      world.catalogs = [ONCOLOGY, { ...ONCOLOGY, name: "oncology_b" }];
      world.rows = new Map([
        ...ONCOLOGY_ROWS,
        ...[...ONCOLOGY_ROWS].map(([k, v]) => [k.replace("oncology.", "oncology_b."), v] as const),
      ]);
      const results = await Promise.all([
        call(world, PACKAGE, withTables(null)),
        call(world, PACKAGE, withTables(null, "oncology_b")),
        call(world, PACKAGE, withTables(null)),
      ]);
      assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
      const { json } = await call(world, PUBLISH, aPublishRequest());
      assert.deepEqual(json.payload.data_published.map((f: { file_path: string }) => f.file_path), [
        "data/outputs/oncology/treatment_line.csv",
        "data/outputs/oncology/tumour_stage.csv",
        "data/outputs/oncology_b/treatment_line.csv",
        "data/outputs/oncology_b/tumour_stage.csv",
      ]);
    },
  );

  for (const format of ["csv", "duckdb"]) {
    await t.step(
      `${format}: a value over SOURCE_MAX_VALUE_BYTES answers 422 naming it, staging unchanged`,
      async () => {
        using world = new FakeWorld();
        // 'T2, "node"' is 10 bytes: over a limit of 9.
        world.maxValueBytes = 9;
        const body = aTransferRequest({ destination: { name: "LSC", type: "filestore", format } });
        const columns = [{ name: "stage_id" }];
        const first = await call(world, PACKAGE, {
          ...body,
          dataset: { ...body.dataset as object, tables: [{ name: "tumour_stage", columns }] },
        });
        assert.equal(first.status, 200, JSON.stringify(first.json));
        const runDir = join(world.base, "staging", RUN_DIR);
        const before = await snapshot(runDir);

        const { status, json } = await call(world, PACKAGE, body);
        assert.equal(status, 422);
        assert.equal(json.status, "error");
        assert.equal(json.payload.code, "value_too_large");
        assert.equal(
          json.payload.detail,
          'PublishService: Cannot read table "oncology"."tumour_stage": a value in column ' +
            '"stage_label" is larger than the limit of 9 bytes; leave the column out of the ' +
            "dataset, or ask the operator to raise SOURCE_MAX_VALUE_BYTES",
        );
        assert.ok(!JSON.stringify(json).includes("node"), "the reply holds no value");
        assert.deepEqual(await snapshot(runDir), before);
        assert.ok(
          !JSON.stringify(world.publishLog.lines).includes("node"),
          "the log holds no value",
        );
      },
    );
  }

  await t.step("DuckDB format stages one database file", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest({
      destination: { name: "LSC", type: "filestore", format: "duckdb" },
    });
    const { status, json } = await call(world, PACKAGE, body);
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(json.payload, {
      data_retrieved: [{ file_path: "data/outputs/database.duckdb" }],
    });
  });
});

/** Every file under a folder with its content, for comparing before and after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files[path] = await readFile(path, "utf8");
  }
  return files;
}

const FORMULA_ROWS = new Map([
  ["oncology.tumour_stage", [
    ["-1", '=HYPERLINK("http://x")', null],
    ["2", "-3", null],
    ["3", "+1", null],
    ["4", "@SUM(A1)", null],
    ["5", "\tx", null],
    ["6", "\rx", null],
    ["7", "'q", null],
    ["8", "plain = fine", null],
    ["9", null, null],
    ["10", "", null],
  ]],
]);

Deno.test("publish app CSV formula escape (CSV_FORMULA_PREFIX)", async (t) => {
  async function packageAndPublish(world: FakeWorld) {
    world.rows = FORMULA_ROWS;
    assert.equal((await call(world, PACKAGE, aTransferRequest())).status, 200);
    assert.equal((await call(world, PUBLISH, aPublishRequest())).status, 200);
    const production = join(world.base, "production", RUN_DIR);
    return {
      csv: await readFile(join(production, "data/outputs/oncology/tumour_stage.csv"), "utf8"),
      bagInfo: await readFile(join(production, "bag-info.txt"), "utf8"),
      problems: await bagProblems(production),
    };
  }

  await t.step("by default, values are exact and bag-info.txt says nothing", async () => {
    using world = new FakeWorld();
    const { csv, bagInfo, problems } = await packageAndPublish(world);
    assert.equal(
      csv,
      "stage_id,stage_label\n" +
        '-1,"=HYPERLINK(""http://x"")"\n2,-3\n3,+1\n4,@SUM(A1)\n5,\tx\n6,"\rx"\n7,\'q\n' +
        '8,plain = fine\n9,\n10,""\n',
    );
    assert.ok(!bagInfo.includes("CSV-Formula"), bagInfo);
    assert.deepEqual(problems, []);
  });

  await t.step(
    "opted in, text cells a spreadsheet would evaluate get a ' and bag-info.txt records it",
    async () => {
      using world = new FakeWorld();
      world.csvFormulaPrefix = true;
      const { csv, bagInfo, problems } = await packageAndPublish(world);
      assert.equal(
        csv,
        "stage_id,stage_label\n" +
          '-1,"\'=HYPERLINK(""http://x"")"\n2,\'-3\n3,\'+1\n4,\'@SUM(A1)\n5,\'\tx\n' +
          '6,"\'\rx"\n7,\'\'q\n8,plain = fine\n9,\n10,""\n',
        "text cells escaped; the bigint -1, NULL and the empty string untouched",
      );
      assert.match(bagInfo, /^CSV-Formula-Prefix: '$/m);
      assert.ok(!bagInfo.includes("CSV-Formula-Prefixed-File"), "every CSV file was escaped");
      assert.deepEqual(problems, [], "the bag still verifies");
    },
  );
});

Deno.test("publish app POST /data-publish/publish (filestore)", async (t) => {
  await t.step(
    "publishes a verified bag and lists each file with its SHA-512 and size",
    async () => {
      using world = new FakeWorld();
      await call(world, PACKAGE, withTables(null));
      const { status, json } = await call(world, PUBLISH, aPublishRequest());
      assert.equal(status, 200);
      const production = join(world.base, "production", RUN_DIR);
      assert.deepEqual(await bagProblems(production), []);
      for (const item of json.payload.data_published) {
        const content = await readFile(join(production, item.file_path), "utf8");
        assert.equal(item.hash_value, sha512(content));
        assert.equal(item.total_bytes, new TextEncoder().encode(content).length);
      }
      await assert.rejects(stat(join(world.base, "staging", RUN_DIR)), { code: "ENOENT" });
    },
  );

  await t.step("publishing again answers the same with 200", async () => {
    using world = new FakeWorld();
    await call(world, PACKAGE, aTransferRequest());
    const first = await call(world, PUBLISH, aPublishRequest());
    const second = await call(world, PUBLISH, aPublishRequest());
    assert.equal(second.status, 200);
    assert.deepEqual(second.json, first.json);
  });

  await t.step("answers 409 when nothing was packaged", async () => {
    using world = new FakeWorld();
    const { status, json } = await call(world, PUBLISH, aPublishRequest());
    assert.equal(status, 409);
    assert.equal(json.payload.code, "nothing_staged");
  });

  await t.step(
    "answers 409 for a staged file changed after packaging, and production stays empty",
    async () => {
      using world = new FakeWorld();
      await call(world, PACKAGE, aTransferRequest());
      await appendFile(
        join(world.base, "staging", RUN_DIR, "data/outputs/oncology/tumour_stage.csv"),
        "4,T4\n",
      );
      const { status, json } = await call(world, PUBLISH, aPublishRequest());
      assert.equal(status, 409);
      assert.match(json.payload.detail, /does not match|bytes/);
      // Nothing is left in production, not even an empty project folder.
      assert.deepEqual(await readdir(join(world.base, "production")), []);
    },
  );

  await t.step(
    "answers 404 for a PostgreSQL destination the deployment does not have",
    async () => {
      using world = new FakeWorld();
      const { status, json } = await call(
        world,
        PUBLISH,
        aPublishRequest({ destination: { type: "postgresql" } }),
      );
      assert.equal(status, 404);
      assert.equal(json.payload.code, "destination_not_configured");
    },
  );
});
