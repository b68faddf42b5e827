/**
 * End to end, a Databricks source (emulated): the three services as processes, the real `@databricks/sql`
 * driver in the metadata and publish services, and the fake workspace of the test tree (OAuth token
 * endpoint, Unity Catalog REST and a Thrift TCLIService endpoint on one HTTPS host). The services trust
 * the fake's test CA only through `DENO_CERT`, as an operator would configure a private CA. Packaging is
 * checked for both file formats: exact canonical CSV, and DuckDB with the Databricks types kept.
 */
import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeDatabricks } from "../support/fake_databricks.ts";
import { createFakeThrift } from "../support/fake_databricks_thrift.ts";
import type { FakeWorkspace } from "../support/fake_databricks_workspace.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";

const KEYS = newServiceKeys();
const CLIENT_ID = `spn-${crypto.randomUUID()}`;
const CLIENT_SECRET = `dbx-${crypto.randomUUID()}`;
const HTTP_PATH = "/sql/1.0/warehouses/e2e0001";

const WORKSPACE: FakeWorkspace = {
  catalog: "research_gold",
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  schemas: [{
    name: "oncology",
    comment: "Cancer registry extract",
    tables: [
      {
        name: "tumour_stage",
        table_type: "MANAGED",
        comment: "Staging at diagnosis",
        primaryKey: ["id"],
        columns: [
          { name: "id", type_name: "LONG", type_text: "bigint", nullable: false },
          { name: "stage", type_name: "BYTE", type_text: "tinyint", comment: "TNM stage" },
          { name: "score", type_name: "DECIMAL", type_text: "decimal(38,10)" },
          { name: "seen_at", type_name: "TIMESTAMP", type_text: "timestamp" },
          { name: "local_at", type_name: "TIMESTAMP_NTZ", type_text: "timestamp_ntz" },
          { name: "sites", type_name: "ARRAY", type_text: "array<string>" },
          { name: "note", type_name: "STRING", type_text: "string" },
        ],
        rows: [
          [
            9223372036854775807n,
            4,
            "12345678901234567890123456.1234567890",
            "2024-02-29 23:59:59.123456",
            "2024-03-01 00:00:00",
            ["lung", "liver"],
            'a, "quoted" note',
          ],
          [2n, null, "-0.0000000001", null, null, [], ""],
          [3n, 1, null, "1970-01-01 00:00:00", "1999-12-31 23:59:59.5", null, null],
        ],
      },
      {
        name: "not_requested",
        table_type: "MANAGED",
        columns: [{ name: "x", type_name: "INT", type_text: "int" }],
        rows: [[1]],
      },
    ],
  }],
};

const EXPECTED_CSV = "id,stage,score,seen_at,local_at,sites,note\n" +
  '9223372036854775807,4,12345678901234567890123456.1234567890,2024-02-29 23:59:59.123456+00,2024-03-01 00:00:00,"[""lung"",""liver""]","a, ""quoted"" note"\n' +
  '2,,-0.0000000001,,,[],""\n' +
  "3,1,,1970-01-01 00:00:00+00,1999-12-31 23:59:59.5,,\n";

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

Deno.test({
  name: "e2e: validate, package and publish a Databricks source through the gateway (emulated)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-databricks-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const thrift = createFakeThrift(WORKSPACE);
    await using databricks = await startFakeDatabricks(WORKSPACE, { thrift: thrift.handle });
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      const files = { ...KEYS, dbxclientid: CLIENT_ID, dbxsecret: CLIENT_SECRET };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const caFile = join(work, "test-ca.pem");
      await writeFile(caFile, databricks.caCertificate);
      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [{
          type: "databrickssql",
          host: "127.0.0.1",
          port: databricks.port,
          http_path: HTTP_PATH,
          catalog: "research_gold",
          credentials: [{ client_id: "dbxclientid", client_secret: "dbxsecret" }],
        }],
        env: { DENO_CERT: caFile },
      }, services);
      const request = {
        project_name: "E2eDatabricks",
        project_start_time: "20250611_093000",
        destination: { name: "LSC", type: "filestore", format: "csv" },
        source: {
          type: "databrickssql",
          host_url: "https://127.0.0.1",
          port: databricks.port,
          http_path: HTTP_PATH,
          catalog: "research_gold",
          credentials: { spn_clientid: "dbxclientid", spn_secret: "dbxsecret" },
        },
        dataset: { schema_name: "oncology", tables: [{ name: "tumour_stage", columns: null }] },
      };

      await t.step("validate returns the Unity Catalog description of the table", async () => {
        const res = await post(`${approval.url}/project/validate`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.equal(res.json.payload.description, "Cancer registry extract");
        const [table] = res.json.payload.tables;
        assert.equal(table.name, "tumour_stage");
        assert.equal(table.description, "Staging at diagnosis");
        assert.deepEqual(
          table.columns.map((c: { name: string; datatype: string }) => [c.name, c.datatype]),
          [
            ["id", "bigint"],
            ["stage", "tinyint"],
            ["score", "decimal(38,10)"],
            ["seen_at", "timestamp"],
            ["local_at", "timestamp_ntz"],
            ["sites", "array<string>"],
            ["note", "string"],
          ],
        );
        assert.equal(table.columns[1].description, "TNM stage");
      });

      await t.step("package writes the table as exact canonical CSV", async () => {
        const res = await post(`${approval.url}/project/package`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload, {
          data_retrieved: [{ file_path: "data/outputs/oncology/tumour_stage.csv" }],
        });
        const csv = await readFile(
          join(
            storage,
            "staging/E2eDatabricks/20250611_093000/data/outputs/oncology/tumour_stage.csv",
          ),
          "utf8",
        );
        assert.equal(csv, EXPECTED_CSV);
        assert.ok(
          thrift.statements.some((s) => s.includes("`research_gold`.`oncology`.`tumour_stage`")),
          "the warehouse was queried by full name",
        );
      });

      await t.step("package writes DuckDB with the Databricks types kept", async () => {
        const res = await post(`${approval.url}/project/package`, {
          ...request,
          project_start_time: "20250612_000000",
          destination: { name: "LSC", type: "filestore", format: "duckdb" },
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload, {
          data_retrieved: [{ file_path: "data/outputs/database.duckdb" }],
        });
        const instance = await DuckDBInstance.create(
          join(storage, "staging/E2eDatabricks/20250612_000000/data/outputs/database.duckdb"),
          { access_mode: "READ_ONLY" },
        );
        const connection = await instance.connect();
        try {
          await connection.run("SET TimeZone = 'UTC'");
          const query = async (sql: string) => (await connection.runAndReadAll(sql)).getRows();
          assert.deepEqual(
            await query(
              "SELECT column_name, data_type, is_nullable FROM information_schema.columns " +
                "WHERE table_schema = 'oncology' AND table_name = 'tumour_stage' " +
                "ORDER BY ordinal_position",
            ),
            [
              ["id", "BIGINT", "NO"],
              ["stage", "SMALLINT", "YES"],
              ["score", "DECIMAL(38,10)", "YES"],
              ["seen_at", "TIMESTAMP WITH TIME ZONE", "YES"],
              ["local_at", "TIMESTAMP", "YES"],
              ["sites", "JSON", "YES"],
              ["note", "VARCHAR", "YES"],
            ],
          );
          // The values as DuckDB holds them, turned into text by DuckDB itself.
          assert.deepEqual(
            await query(
              "SELECT id::VARCHAR, stage, score::VARCHAR, " +
                "strftime(seen_at, '%Y-%m-%d %H:%M:%S.%f'), local_at::VARCHAR, " +
                "sites->>'$[1]', json_array_length(sites)::INTEGER, note " +
                'FROM "oncology"."tumour_stage" ORDER BY id',
            ),
            [
              ["2", null, "-0.0000000001", null, null, null, 0, ""],
              [
                "3",
                1,
                null,
                "1970-01-01 00:00:00.000000",
                "1999-12-31 23:59:59.5",
                null,
                null,
                null,
              ],
              [
                "9223372036854775807",
                4,
                "12345678901234567890123456.1234567890",
                "2024-02-29 23:59:59.123456",
                "2024-03-01 00:00:00",
                "liver",
                2,
                'a, "quoted" note',
              ],
            ],
          );
          assert.deepEqual(
            await query(
              "SELECT constraint_column_names::VARCHAR FROM duckdb_constraints() " +
                "WHERE schema_name = 'oncology' AND constraint_type = 'PRIMARY KEY'",
            ),
            [["[id]"]],
          );
        } finally {
          connection.closeSync();
          instance.closeSync();
        }
      });

      await t.step("publish produces the checksummed file", async () => {
        const res = await post(`${approval.url}/project/publish`, {
          project_name: "E2eDatabricks",
          project_start_time: "20250611_093000",
          destination: { name: "LSC", type: "filestore", format: "csv" },
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const [published] = res.json.payload.data_published;
        assert.equal(published.file_path, "data/outputs/oncology/tumour_stage.csv");
        assert.match(published.hash_value, /^[0-9a-f]{128}$/);
        assert.equal(published.total_bytes, new TextEncoder().encode(EXPECTED_CSV).length);
      });

      await t.step("an unknown schema is a 404 naming it", async () => {
        const res = await post(`${approval.url}/project/validate`, {
          ...request,
          dataset: { schema_name: "nope", tables: null },
        });
        assert.equal(res.status, 404, JSON.stringify(res.json));
        assert.match(JSON.stringify(res.json), /nope/);
      });

      await t.step(
        "a wrong service principal secret is a 502 that does not reveal it",
        async () => {
          await writeFile(join(secrets, "dbxsecret"), "not-the-secret-0123456789");
          const res = await post(`${approval.url}/project/validate`, request);
          assert.equal(res.status, 502, JSON.stringify(res.json));
          assert.ok(!JSON.stringify(res.json).includes("not-the-secret-0123456789"));
          assert.ok(!JSON.stringify(res.json).includes(CLIENT_SECRET));
        },
      );

      await t.step("no secret or token appears in any service log", () => {
        const logs = services.flatMap((s) => s.logs).join("\n");
        for (const secret of [...Object.values(KEYS), CLIENT_SECRET, "not-the-secret"]) {
          assert.ok(!logs.includes(secret), "a secret was logged");
        }
        assert.ok(!/Bearer\s+\S{8,}/.test(logs), "a token was logged");
      });
    } finally {
      for (const service of services) await service.stop();
      await rm(work, { recursive: true, force: true });
    }
  },
});
