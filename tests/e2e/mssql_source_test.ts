/**
 * End to end, a SQL Server source: the three services as processes, the real tedious client in the
 * metadata and publish services, and the wire-level fake TDS server of the test tree. Validate, package to
 * CSV and publish through the gateway, as the CLI does.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeCsvRow, encodeCsvRows } from "../../domain/csv.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../support/fake_key_vault.ts";
import { type FakeSchema, startFakeTdsServer } from "../support/fake_tds_server.ts";
import { mssqlTablesSchema } from "../support/fake_tds_w_process.ts";
import { EDGE_TABLE, edgeColumnsFor, edgeExpectedRows } from "../support/w_table.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";

const KEYS = newServiceKeys();
const PASSWORD = `Mssql-${crypto.randomUUID()}`;

const SCHEMAS: readonly FakeSchema[] = [{
  name: "dbo",
  description: "Synthetic clinic",
  tables: [
    {
      name: "wards",
      kind: "BASE TABLE",
      description: "Hospital wards",
      primaryKey: ["id"],
      columns: [
        { name: "id", type: "int", nullable: false },
        { name: "label", type: "nvarchar(40)", nullable: true, description: "Ward name" },
        { name: "open", type: "bit", nullable: true },
        { name: "beds", type: "bigint", nullable: true },
      ],
      rows: [
        [1, 'North, "A"', true, "9223372036854775807"],
        [2, "", false, null],
        [3, null, null, "-1"],
      ],
    },
    // Every SQL Server edge value: 100 ns ticks, offsets, money, PLP texts and bytes.
    ...mssqlTablesSchema("dbo", 0).tables.filter((t) => t.name === EDGE_TABLE),
  ],
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
    const certificates: TestCertificates = await makeTestCertificates();
    // TLS as SQL Server negotiates it for the default SOURCE_MSSQL_ENCRYPT=true (TDS 7.4, TLS 1.2 inside
    // PRELOGIN). The test CA is not known to the services, so the certificate is trusted explicitly.
    await using tds = await startFakeTdsServer({
      userName: "reader",
      password: PASSWORD,
      schemas: SCHEMAS,
      tls: { mode: "tds7", cert: certificates.cert, key: certificates.key },
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
          credentials: [{ username: "msuser", password: "mspassword" }],
        }],
        // The default TLS settings; the services trust the test CA through DENO_CERT, as an operator
        // adds a private CA.
        env: { DENO_CERT: join(certificates.directory, "ca.pem") },
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
        dataset: {
          schema_name: "dbo",
          tables: [{ name: "wards", columns: null }, { name: EDGE_TABLE, columns: null }],
        },
      };

      await t.step("validate connects and returns the catalogue with descriptions", async () => {
        const res = await post(`${approval.url}/project/validate`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const tables = res.json.payload.tables as {
          name: string;
          description: string | null;
          columns: { name: string; datatype: string }[];
        }[];
        assert.deepEqual(tables.map((t) => t.name).sort(), [EDGE_TABLE, "wards"]);
        const table = tables.find((t) => t.name === "wards");
        assert.ok(table);
        assert.equal(table.name, "wards");
        assert.equal(table.description, "Hospital wards");
        assert.deepEqual(
          table.columns.map((c) => [c.name, c.datatype]),
          [["id", "int"], ["label", "nvarchar(40)"], ["open", "bit"], ["beds", "bigint"]],
        );
      });

      await t.step("package writes the tables as canonical CSV, 100 ns ticks kept", async () => {
        const res = await post(`${approval.url}/project/package`, request);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(
          res.json.payload.data_retrieved.map((f: { file_path: string }) => f.file_path).sort(),
          ["data/outputs/dbo/edge.csv", "data/outputs/dbo/wards.csv"],
        );
        const outputs = join(storage, "staging/E2eMssql/20250611_093000/data/outputs/dbo");
        assert.equal(
          await readFile(join(outputs, "wards.csv"), "utf8"),
          'id,label,open,beds\n1,"North, ""A""",true,9223372036854775807\n2,"",false,\n3,,,-1\n',
        );
        const edge = await readFile(join(outputs, "edge.csv"), "utf8");
        const columns = edgeColumnsFor("mssql");
        assert.equal(
          edge,
          encodeCsvRow(columns.map((c) => c.name)) +
            encodeCsvRows(edgeExpectedRows("mssql"), columns.map((c) => c.logicalType.kind)),
        );
        assert.ok(edge.includes("2020-12-31 23:59:59.9999999"), "the seventh digit is kept");
        // Every connection the services made was encrypted.
        assert.ok(tds.connections.length > 0);
        assert.ok(tds.connections.every((c) => c.tls === "TLSv1.2"));
      });

      await t.step("publish produces the checksummed file", async () => {
        const res = await post(`${approval.url}/project/publish`, {
          project_name: "E2eMssql",
          project_start_time: "20250611_093000",
          destination: { name: "LSC", type: "filestore", format: "csv" },
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        const published = res.json.payload.data_published as {
          file_path: string;
          hash_value: string;
        }[];
        assert.deepEqual(
          published.map((f) => f.file_path).sort(),
          ["data/outputs/dbo/edge.csv", "data/outputs/dbo/wards.csv"],
        );
        for (const file of published) assert.match(file.hash_value, /^[0-9a-f]{128}$/);
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
      await removeTestCertificates(certificates);
    }
  },
});
