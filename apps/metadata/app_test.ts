import assert from "node:assert/strict";
import { aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { FakeWorld, METADATA_KEY, SOURCE_PASSWORD } from "../../tests/support/apps.ts";

const PATH = "/metadata/project";

Deno.test("metadata app POST /metadata/project", async (t) => {
  await t.step("returns the requested tables and columns with types and descriptions", async () => {
    using world = new FakeWorld();
    const res = await world.metadataApp().request(postJson(PATH, aTransferRequest(), METADATA_KEY));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      status: "success",
      payload: {
        name: "oncology_extract",
        schema_name: "oncology",
        // The request's own description, not the schema's comment ("Curated oncology tables").
        description: "Tumour staging extract",
        tables: [{
          name: "tumour_stage",
          columns: [
            { name: "stage_id", datatype: "bigint", description: "surrogate key", nullable: false },
            {
              name: "stage_label",
              datatype: "character varying(20)",
              description: null,
              nullable: true,
            },
          ],
          description: "TNM stage lookup",
          primary_key: ["stage_id"],
        }],
        staging_path: null,
        publish_path: null,
      },
    });
  });

  await t.step(
    "returns the request's dataset, table and column descriptions unchanged, the source's only where " +
      "the request has none",
    async () => {
      const ask = (dataset: Record<string, unknown>) =>
        aTransferRequest({
          dataset: { schema_name: "oncology", ...dataset },
        });
      const cases: [label: string, dataset: Record<string, unknown>, expected: unknown][] = [
        [
          "the user's words everywhere",
          {
            description: "  My extract, as I wrote it\n",
            tables: [{
              name: "tumour_stage",
              description: "My table",
              columns: [{ name: "stage_id", description: "My key" }, { name: "stage_label" }],
            }],
          },
          ["  My extract, as I wrote it\n", "My table", ["My key", null]],
        ],
        [
          "no descriptions",
          { tables: [{ name: "tumour_stage", columns: [{ name: "stage_id" }] }] },
          ["Curated oncology tables", "TNM stage lookup", ["surrogate key"]],
        ],
        [
          "null and blank descriptions",
          {
            description: null,
            tables: [{
              name: "tumour_stage",
              description: " ",
              columns: [{ name: "stage_id", description: "" }],
            }],
          },
          ["Curated oncology tables", "TNM stage lookup", ["surrogate key"]],
        ],
      ];
      for (const [label, dataset, expected] of cases) {
        using world = new FakeWorld();
        const res = await world.metadataApp().request(postJson(PATH, ask(dataset), METADATA_KEY));
        assert.equal(res.status, 200, label);
        const { payload } = await res.json();
        const [table] = payload.tables;
        assert.deepEqual(
          [
            payload.description,
            table.description,
            table.columns.map((c: { description: string | null }) => c.description),
          ],
          expected,
          label,
        );
      }
    },
  );

  await t.step(
    "connects with the credentials the request names and closes the connection",
    async () => {
      using world = new FakeWorld();
      await world.metadataApp().request(postJson(PATH, aTransferRequest(), METADATA_KEY));
      assert.deepEqual(world.secrets.requested, ["sourceuser", "sourcepassword"]);
      assert.equal(world.connections.length, 1);
      const [conn] = world.connections;
      assert.equal(conn?.host, "db.internal");
      assert.equal(conn?.username, "reader");
      assert.equal(conn?.password, SOURCE_PASSWORD);
      assert.equal(world.opened[0]?.closed, true);
    },
  );

  await t.step("lists every table and column when tables is null or []", async () => {
    for (const tables of [null, []]) {
      using world = new FakeWorld();
      const body = aTransferRequest();
      (body.dataset as Record<string, unknown>).tables = tables;
      const res = await world.metadataApp().request(postJson(PATH, body, METADATA_KEY));
      const json = await res.json();
      assert.equal(res.status, 200);
      assert.deepEqual(json.payload.tables.map((t: { name: string }) => t.name), [
        "treatment_line",
        "tumour_stage",
      ]);
      assert.equal(json.payload.tables[1].columns.length, 3);
    }
  });

  await t.step("answers 404 naming every missing table and column", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest();
    (body.dataset as Record<string, unknown>).tables = [
      { name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "nope_col" }] },
      { name: "nope_table" },
    ];
    const res = await world.metadataApp().request(postJson(PATH, body, METADATA_KEY));
    const json = await res.json();
    assert.equal(res.status, 404);
    assert.equal(json.status, "error");
    assert.match(json.payload.detail, /^MetadataService: /);
    assert.match(json.payload.detail, /"nope_table"/);
    assert.match(json.payload.detail, /"tumour_stage\.nope_col"/);
    assert.equal(json.payload.code, "dataset_items_not_found");
  });

  await t.step("answers 404 for an unknown schema", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest();
    (body.dataset as Record<string, unknown>).schema_name = "nothere";
    const res = await world.metadataApp().request(postJson(PATH, body, METADATA_KEY));
    assert.equal(res.status, 404);
    assert.match((await res.json()).payload.detail, /schema "nothere"/);
  });

  await t.step(
    "answers 404 for a missing credential secret without naming the directory",
    async () => {
      using world = new FakeWorld();
      world.allow({
        type: "postgresql",
        host: "db.internal",
        port: 5432,
        database: "research",
        credentials: [{ username: "sourceuser", password: "absent" }],
      });
      const body = aTransferRequest();
      (body.source as Record<string, unknown>).credentials = {
        username_key: "sourceuser",
        password_key: "absent",
      };
      const res = await world.metadataApp().request(postJson(PATH, body, METADATA_KEY));
      const json = await res.json();
      assert.equal(res.status, 404);
      assert.equal(json.payload.detail, 'MetadataService: Cannot find secret "absent"');
      assert.equal(world.connections.length, 0);
    },
  );

  await t.step("answers 502 when the source refuses the connection", async () => {
    using world = new FakeWorld();
    world.refuseConnections = "Cannot connect to PostgreSQL at db.internal:5432: refused";
    const res = await world.metadataApp().request(postJson(PATH, aTransferRequest(), METADATA_KEY));
    assert.equal(res.status, 502);
    assert.match((await res.json()).payload.detail, /refused/);
  });

  await t.step(
    "answers 501 for an engine the service has no connector for (SQL Server here) and Databricks",
    async () => {
      for (
        const source of [
          {
            type: "sqlserver",
            host_url: "mssql.internal",
            port: "1433",
            database: "dw",
            credentials: { username_key: "u", password_key: "p" },
          },
          {
            type: "databrickssql",
            host_url: "https://adb-1.azuredatabricks.net",
            http_path: "/sql/1.0/warehouses/abc",
            catalog: "gold",
            credentials: { spn_clientid: "a", spn_secret: "b" },
          },
        ]
      ) {
        using world = new FakeWorld();
        world.allow(
          {
            type: "sqlserver",
            host: "mssql.internal",
            port: 1433,
            database: "dw",
            credentials: [{ username: "u", password: "p" }],
          },
          {
            type: "databrickssql",
            host: "adb-1.azuredatabricks.net",
            http_path: "/sql/1.0/warehouses/abc",
            port: 443,
            credentials: [{ client_id: "a", client_secret: "b" }],
          },
        );
        const res = await world.metadataApp().request(
          postJson(PATH, aTransferRequest({ source }), METADATA_KEY),
        );
        const json = await res.json();
        assert.equal(res.status, 501);
        assert.equal(json.payload.code, "source_type_not_supported");
        assert.deepEqual(world.secrets.requested, []);
      }
    },
  );

  await t.step("never logs the body, the password or row data", async () => {
    using world = new FakeWorld();
    await world.metadataApp().request(postJson(PATH, aTransferRequest(), METADATA_KEY));
    const logs = world.metadataLog.lines.join("\n");
    assert.ok(world.metadataLog.lines.length > 0);
    assert.ok(!logs.includes(SOURCE_PASSWORD));
    assert.ok(!logs.includes(METADATA_KEY));
    assert.ok(!logs.includes("oncology_extract"));
  });
});
