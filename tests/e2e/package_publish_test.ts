/**
 * End to end, the CLI's validate, stage-transfer and publish: three real processes, a real PostgreSQL and
 * MariaDB, two datasets (one per database) in one project named as the CLI's template names it (with
 * spaces), then publish to a BagIt bag in a folder of that very name.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MysqlSandbox, PostgresSandbox } from "../support/databases.ts";
import { bagProblems } from "../support/bagit_check.ts";
import {
  CRATE_TAG_FILE,
  RECEIPT_TAG_FILE,
  sha512Hex,
  verifyReceipt,
} from "../../domain/release_receipt.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import {
  allowedLocalMysql,
  allowedLocalPostgres,
  ignoreMysql,
  ignorePostgres,
  MYSQL,
  POSTGRES,
  randomName,
} from "../support/services.ts";

const KEYS = newServiceKeys();

/** The project name of the CLI's template (`cr8-cookiecutter`'s `cookiecutter.json`). */
const PROJECT = "CR8TOR Demo Project";

/** The same table in both databases: types whose canonical text is the same in both. */
const PEOPLE_DDL = (bool: string, ts: string) => `
  create table $s.people (
    id integer not null primary key,
    name varchar(40),
    born date,
    balance decimal(12,2),
    score double precision,
    active ${bool},
    seen_at ${ts}
  );
  insert into $s.people values
    (1, 'Ada, "the first"', '1815-12-10', 1234567890.12, 0.1, true, '1969-07-20 20:17:40.5'),
    (2, '', '2100-01-01', -0.01, 1e15, false, '2038-01-19 03:14:08.000001'),
    (3, null, null, null, null, null, null),
    (4, 'line1
line2 😀', '1970-01-01', 0, -2.5e-7, true, '2000-02-29 00:00:00');
`;

function transfer(
  source: Record<string, unknown>,
  schema: string,
  format = "csv",
): Record<string, unknown> {
  return {
    project_name: PROJECT,
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format },
    source,
    dataset: { name: schema, schema_name: schema, tables: null },
  };
}

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

Deno.test({
  name: "e2e: package two datasets from PostgreSQL and MariaDB, then publish a verified bag",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-publish-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const pgSchema = randomName("cr8_pg");
    const myDatabase = randomName("cr8_my");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(pgSchema, PEOPLE_DDL("boolean", "timestamp"));
      await my.createUser();
      await my.createDatabase(myDatabase, PEOPLE_DDL("boolean", "datetime(6)"));
      const files = {
        ...KEYS,
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
      };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }

      const { approval, publish } = await startStack({
        secrets,
        storage,
        allowedSources: [
          allowedLocalPostgres(),
          allowedLocalMysql(myDatabase),
        ],
      }, services);
      const pgSource = {
        type: "postgresql",
        host_url: POSTGRES.host,
        port: POSTGRES.port,
        database: POSTGRES.database,
        credentials: { username_key: "pguser", password_key: "pgpassword" },
      };
      const mySource = {
        type: "mysql",
        host_url: MYSQL.host,
        port: MYSQL.port,
        database: myDatabase,
        credentials: { username_key: "myuser", password_key: "mypassword" },
      };
      const staging = join(storage, "staging", PROJECT, "20250611_093000");
      const production = join(storage, "production", PROJECT, "20250611_093000");

      await t.step("validate accepts the template's project name", async () => {
        const res = await post(`${approval.url}/project/validate`, transfer(pgSource, pgSchema));
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.equal(res.json.payload.schema_name, pgSchema);
      });

      await t.step("package stages each dataset without touching the other", async () => {
        const a = await post(`${approval.url}/project/package`, transfer(pgSource, pgSchema));
        assert.equal(a.status, 200, JSON.stringify(a.json));
        assert.deepEqual(a.json.payload, {
          data_retrieved: [{ file_path: `data/outputs/${pgSchema}/people.csv` }],
        });
        const b = await post(`${approval.url}/project/package`, transfer(mySource, myDatabase));
        assert.equal(b.status, 200, JSON.stringify(b.json));
        assert.deepEqual(await readdir(join(storage, "staging")), [PROJECT]);
        assert.deepEqual(
          await readdir(join(staging, "data/outputs")).then((d) => d.sort()),
          [myDatabase, pgSchema].sort(),
        );
      });

      await t.step(
        "the same values give byte-identical CSV from PostgreSQL and MariaDB",
        async () => {
          const fromPg = await readFile(
            join(staging, "data/outputs", pgSchema, "people.csv"),
            "utf8",
          );
          const fromMy = await readFile(
            join(staging, "data/outputs", myDatabase, "people.csv"),
            "utf8",
          );
          assert.equal(fromPg, fromMy);
          assert.equal(
            fromPg,
            "id,name,born,balance,score,active,seen_at\n" +
              '1,"Ada, ""the first""",1815-12-10,1234567890.12,0.1,true,1969-07-20 20:17:40.5\n' +
              '2,"",2100-01-01,-0.01,1e+15,false,2038-01-19 03:14:08.000001\n' +
              "3,,,,,,\n" +
              '4,"line1\nline2 😀",1970-01-01,0.00,-2.5e-07,true,2000-02-29 00:00:00\n',
          );
        },
      );

      let published: unknown;
      await t.step(
        "publish answers every file with its SHA-512 and leaves a valid bag",
        async () => {
          const res = await post(`${approval.url}/project/publish`, {
            project_name: PROJECT,
            project_start_time: "20250611_093000",
            destination: { name: "LSC", type: "filestore", format: "csv" },
          });
          assert.equal(res.status, 200, JSON.stringify(res.json));
          published = res.json;
          const items = res.json.payload.data_published;
          assert.deepEqual(
            items.map((i: { file_path: string }) => i.file_path),
            [
              `data/outputs/${myDatabase}/people.csv`,
              `data/outputs/${pgSchema}/people.csv`,
            ].sort(),
          );
          assert.deepEqual(await bagProblems(production), []);
          assert.deepEqual(await readdir(join(storage, "production")), [PROJECT]);
          const bagInfo = await readFile(join(production, "bag-info.txt"), "utf8");
          assert.match(bagInfo, /^External-Identifier: CR8TOR Demo Project\/20250611_093000$/m);
        },
      );

      await t.step(
        "the bag's receipt verifies with the keys the publish service serves, and signs its tag manifest",
        async () => {
          const res = await fetch(`${publish.url}/.well-known/release-keys`);
          assert.equal(res.status, 200);
          const keys = await res.json();
          const jws = await readFile(join(production, RECEIPT_TAG_FILE), "utf8");
          const claims = await verifyReceipt(jws, keys);
          assert.equal(claims.project_name, PROJECT);
          assert.equal(claims.project_start_time, "20250611_093000");
          assert.deepEqual(claims.destination, { type: "filestore", name: "LSC" });
          const tagManifest = await readFile(join(production, "tagmanifest-sha512.txt"), "utf8");
          assert.equal(claims.subject.kind, "bagit-tagmanifest-sha512");
          assert.equal(claims.subject.sha512, await sha512Hex(tagManifest));
          assert.ok(
            tagManifest.includes(`  ${CRATE_TAG_FILE}\n`),
            "the crate is in the tag manifest",
          );
          const crate = JSON.parse(await readFile(join(production, CRATE_TAG_FILE), "utf8"));
          const ids = (crate["@graph"] as { "@id": string }[]).map((e) => e["@id"]);
          for (const item of (published as JsonReply["json"]).payload.data_published) {
            assert.ok(ids.includes(item.file_path), `${item.file_path} is in the crate`);
          }
          assert.equal(
            (published as JsonReply["json"]).payload.receipt?.jws,
            jws.trim(),
            "the reply carries the receipt",
          );
        },
      );

      await t.step("publishing again answers the same", async () => {
        const res = await post(`${approval.url}/project/publish`, {
          project_name: PROJECT,
          project_start_time: "20250611_093000",
          destination: { name: "LSC", type: "filestore", format: "csv" },
        });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, published);
      });

      await t.step("DuckDB packaging writes one database for the run", async () => {
        const res = await post(`${approval.url}/project/package`, {
          ...transfer(pgSource, pgSchema, "duckdb"),
          project_start_time: "20250612_000000",
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(res.json.payload, {
          data_retrieved: [{ file_path: "data/outputs/database.duckdb" }],
        });
      });

      await t.step("no log line holds a key, a password or row data", async () => {
        for (const service of services) await service.stop();
        const logs = services.flatMap((s) => s.logs).join("\n");
        for (const secret of [...Object.values(KEYS), pg.password, my.password]) {
          assert.ok(!logs.includes(secret));
        }
        assert.ok(!logs.includes("Ada") && !logs.includes("line2"));
        // The generated release key was announced once, and never logged.
        assert.equal(logs.split("release_key_generated").length - 1, 1);
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await my.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
