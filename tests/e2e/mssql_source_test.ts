/**
 * End to end, a SQL Server source: the three services as processes, the real tedious client in the
 * metadata and publish services, and the wire-level fake TDS server of the test tree. Validate, package to
 * CSV and publish through the gateway, as the CLI does.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FakeSchema, startFakeTdsServer } from "../support/fake_tds_server.ts";
import {
  type JsonReply,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";

const KEYS = {
  approvalserviceapikey: `approval-${crypto.randomUUID()}`,
  metadataserviceapikey: `metadata-${crypto.randomUUID()}`,
  publishserviceapikey: `publish-${crypto.randomUUID()}`,
};
const PASSWORD = `Mssql-${crypto.randomUUID()}`;

const SCHEMAS: readonly FakeSchema[] = [{
  name: "dbo",
  description: "Synthetic clinic",
  tables: [{
    name: "wards",
    kind: "BASE TABLE",
    description: "Hospital wards",
    primaryKey: ["id"],
    columns: [
      { name: "id", dataType: "int", nullable: false, precision: 10, scale: 0, wire: "int" },
      {
        name: "label",
        dataType: "nvarchar",
        nullable: true,
        maxLength: 40,
        description: "Ward name",
        wire: "nvarchar",
      },
      { name: "open", dataType: "bit", nullable: true, wire: "bit" },
      { name: "beds", dataType: "bigint", nullable: true, precision: 19, scale: 0, wire: "bigint" },
    ],
    rows: [
      [1, 'North, "A"', true, "9223372036854775807"],
      [2, "", false, null],
      [3, null, null, "-1"],
    ],
  }],
}];

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

Deno.test({
  name:
    "e2e: validate, package and publish a SQL Server source through the gateway (fake TDS server)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-mssql-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    await using tds = await startFakeTdsServer({
      userName: "reader",
      password: PASSWORD,
      schemas: SCHEMAS,
    });
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      const files = { ...KEYS, msuser: "reader", mspassword: PASSWORD };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [{
          type: "sqlserver",
          host: "127.0.0.1",
          port: tds.port,
          database: "clinic",
          secrets: ["msuser", "mspassword"],
        }],
        // The fake speaks TDS without TLS; production keeps the default (TLS, certificate checked).
        env: { SOURCE_MSSQL_ENCRYPT: "false" },
      }, services);
      const request = {
        project_name: "E2eMssql",
        project_start_time: "20250611_093000",
        destination: { name: "LSC", type: "filestore", format: "csv" },
        source: {
          type: "sqlserver",
          host_url: "127.0.0.1",
          port: String(tds.port),
          database: "clinic",
          credentials: { username_key: "msuser", password_key: "mspassword" },
        },
        dataset: { schema_name: "dbo", tables: [{ name: "wards", columns: null }] },
      };

      await t.step("validate connects and returns the catalogue with descriptions", async () => {
        const res = await post(`${approval.url}/project/validate`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const [table] = res.json.payload.tables;
        assert.equal(table.name, "wards");
        assert.equal(table.description, "Hospital wards");
        assert.deepEqual(
          table.columns.map((c: { name: string; datatype: string }) => [c.name, c.datatype]),
          [["id", "int"], ["label", "nvarchar(40)"], ["open", "bit"], ["beds", "bigint"]],
        );
      });

      await t.step("package writes the table as canonical CSV", async () => {
        const res = await post(`${approval.url}/project/package`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload, {
          data_retrieved: [{ file_path: "data/outputs/dbo/wards.csv" }],
        });
        const csv = await readFile(
          join(storage, "staging/E2eMssql/20250611_093000/data/outputs/dbo/wards.csv"),
          "utf8",
        );
        assert.equal(
          csv,
          'id,label,open,beds\n1,"North, ""A""",true,9223372036854775807\n2,"",false,\n3,,,-1\n',
        );
      });

      await t.step("publish produces the checksummed file", async () => {
        const res = await post(`${approval.url}/project/publish`, {
          project_name: "E2eMssql",
          project_start_time: "20250611_093000",
          destination: { name: "LSC", type: "filestore", format: "csv" },
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.equal(res.json.payload.data_published[0].file_path, "data/outputs/dbo/wards.csv");
        assert.match(res.json.payload.data_published[0].hash_value, /^[0-9a-f]{128}$/);
      });

      await t.step("a wrong password is a 502 that does not reveal it", async () => {
        await writeFile(join(secrets, "mspassword"), "not-the-password");
        const res = await post(`${approval.url}/project/validate`, request);
        assert.equal(res.status, 502);
        assert.ok(!JSON.stringify(res.json).includes("not-the-password"));
        assert.ok(!JSON.stringify(res.json).includes(PASSWORD));
      });
    } finally {
      for (const service of services) await service.stop();
      await rm(work, { recursive: true, force: true });
    }
  },
});
