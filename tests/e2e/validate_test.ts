/**
 * End to end, the way the CR8TOR CLI uses the services: three real processes on free ports, a real
 * PostgreSQL and MariaDB source, and `POST /project/validate` on the gateway.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { MysqlSandbox, PostgresSandbox } from "../support/databases.ts";
import {
  newServiceKeys,
  type ServiceProcess,
  startFailing,
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

/** The PostgreSQL schema's comment; MariaDB databases have none. */
const SCHEMA_COMMENT = "Patients research schema";

const PATIENTS_DDL = (comment: (table: string, text: string) => string) => `
  create table $s.patients (
    patient_id integer not null primary key,
    nhs_number varchar(10) not null,
    birth_date date,
    weight_kg decimal(5,1)
  );
  ${comment("patients", "One row per patient")};
  create table $s.admissions (
    patient_id integer not null,
    admission_no integer not null,
    ward varchar(40),
    primary key (patient_id, admission_no)
  );
  insert into $s.patients values (1, '9434765919', '1950-03-01', 72.5);
  insert into $s.admissions values (1, 1, 'ROW-DATA-MARKER');
`;

function cliRequest(
  source: Record<string, unknown>,
  schema: string,
  tables: unknown,
): Record<string, unknown> {
  return {
    project_name: "E2eProject",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "duckdb" },
    extract_config: null,
    source,
    dataset: {
      name: "e2e_dataset",
      schema_name: schema,
      description: "",
      tables,
      staging_path: null,
      publish_path: null,
    },
  };
}

function post(url: string, body: unknown, key = KEYS.approvalserviceapikey): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify(body),
  });
}

Deno.test({
  name: "e2e: the CLI's validate through the gateway against PostgreSQL and MariaDB",
  ignore: ignorePostgres || ignoreMysql,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const my = new MysqlSandbox();
    const schema = randomName("cr8_e2e");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(
        schema,
        PATIENTS_DDL((table, text) => `comment on table $s.${table} is '${text}'`) +
          `; comment on schema $s is '${SCHEMA_COMMENT}'`,
      );
      await my.createUser();
      await my.createDatabase(
        schema,
        PATIENTS_DDL((table, text) => `alter table $s.${table} comment = '${text}'`),
      );
      const files: Record<string, string> = {
        ...KEYS,
        pguser: pg.role,
        pgpassword: pg.password,
        myuser: my.user,
        mypassword: my.password,
        mywrongpassword: "not-the-password",
      };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value + "\n");
      }

      const { metadata, approval } = await startStack({
        secrets,
        storage,
        allowedSources: [
          allowedLocalPostgres(),
          allowedLocalMysql(schema, { username: "myuser", password: "mywrongpassword" }),
        ],
      }, services);
      const validate = `${approval.url}/project/validate`;
      const pgSource = {
        type: "postgresql",
        host_url: POSTGRES.host,
        port: POSTGRES.port,
        database: POSTGRES.database,
        credentials: {
          provider: "AzureKeyVault",
          username_key: "pguser",
          password_key: "pgpassword",
        },
      };
      const mySource = {
        type: "mysql",
        host_url: MYSQL.host,
        port: String(MYSQL.port),
        database: schema,
        credentials: { username_key: "myuser", password_key: "mypassword" },
      };

      await t.step(
        "the gateway is ready once both sub-services and its release store answer",
        async () => {
          const res = await fetch(`${approval.url}/ready`, {
            headers: { "x-api-key": KEYS.approvalserviceapikey },
          });
          assert.equal(res.status, 200);
          assert.deepEqual((await res.json()).payload.checks, [
            { name: "metadata service", ok: true },
            { name: "publish service", ok: true },
            { name: "release store", ok: true },
          ]);
        },
      );

      const doc = await (await fetch(`${approval.url}/openapi.json`)).json();
      const ajv = new Ajv2020({ strict: false });
      const validateSchema =
        doc.paths["/project/validate"].post.responses["200"].content["application/json"].schema;
      const matchesDoc = ajv.compile({ ...validateSchema, components: doc.components });

      for (
        const [engine, source, types, schemaComment] of [
          [
            "PostgreSQL",
            pgSource,
            ["integer", "character varying(10)", "date", "numeric(5,1)"],
            SCHEMA_COMMENT,
          ],
          ["MariaDB", mySource, ["int(11)", "varchar(10)", "date", "decimal(5,1)"], null],
        ] as const
      ) {
        await t.step(
          `${engine}: validate returns the requested tables with full types and comments`,
          async () => {
            const res = await post(
              validate,
              cliRequest(source, schema, [{ name: "patients" }, {
                name: "admissions",
                columns: [{ name: "admission_no" }, { name: "patient_id" }],
              }]),
            );
            const json = await res.json();
            assert.equal(res.status, 200, JSON.stringify(json));
            assert.ok(matchesDoc(json), JSON.stringify(matchesDoc.errors));
            assert.deepEqual(json, {
              status: "success",
              payload: {
                name: "e2e_dataset",
                schema_name: schema,
                // The request's description is blank, so the schema's comment fills it.
                description: schemaComment,
                tables: [
                  {
                    name: "admissions",
                    columns: [
                      {
                        name: "patient_id",
                        datatype: types[0],
                        description: null,
                        nullable: false,
                      },
                      {
                        name: "admission_no",
                        datatype: types[0],
                        description: null,
                        nullable: false,
                      },
                    ],
                    description: null,
                    primary_key: ["patient_id", "admission_no"],
                  },
                  {
                    name: "patients",
                    columns: [
                      {
                        name: "patient_id",
                        datatype: types[0],
                        description: null,
                        nullable: false,
                      },
                      {
                        name: "nhs_number",
                        datatype: types[1],
                        description: null,
                        nullable: false,
                      },
                      { name: "birth_date", datatype: types[2], description: null, nullable: true },
                      { name: "weight_kg", datatype: types[3], description: null, nullable: true },
                    ],
                    description: "One row per patient",
                    primary_key: ["patient_id"],
                  },
                ],
                staging_path: null,
                publish_path: null,
              },
            });
          },
        );

        await t.step(
          `${engine}: the CLI template's project name passes and the user's descriptions survive`,
          async () => {
            // What `cr8tor validate` sends for a project made from the template, with the dataset
            // description the user wrote in resources/metadata/dataset_1.toml.
            const request = cliRequest(source, schema, [
              { name: "patients", description: "Patients, as I describe them" },
              { name: "admissions" },
            ]);
            request.project_name = "CR8TOR Demo Project";
            (request.dataset as Record<string, unknown>).description =
              "Metadata of required tables/columns";
            const res = await post(validate, request);
            const json = await res.json();
            assert.equal(res.status, 200, JSON.stringify(json));
            // The CLI writes the reply's dataset and table descriptions over the user's when they are
            // set (`merge_metadata_into_dataset` in cr8tor/cli/validate.py), so they must be the user's.
            assert.equal(json.payload.description, "Metadata of required tables/columns");
            assert.deepEqual(
              json.payload.tables.map((t: { name: string; description: string | null }) => [
                t.name,
                t.description,
              ]),
              [["admissions", null], ["patients", "Patients, as I describe them"]],
            );
          },
        );

        await t.step(
          `${engine}: validate names every missing table and column with 404`,
          async () => {
            const res = await post(
              validate,
              cliRequest(source, schema, [
                { name: "patients", columns: [{ name: "patient_id" }, { name: "postcode" }] },
                { name: "deaths" },
              ]),
            );
            const json = await res.json();
            assert.equal(res.status, 404);
            assert.equal(
              json.payload.detail,
              `MetadataService: Cannot find in schema "${schema}": tables "deaths"; columns "patients.postcode"`,
            );
          },
        );
      }

      await t.step(
        "a wrong source password is a 502 from publish validate, before metadata is asked",
        async () => {
          const metadataRequests = metadata.logs.length;
          const res = await post(
            validate,
            cliRequest(
              {
                ...mySource,
                credentials: { username_key: "myuser", password_key: "mywrongpassword" },
              },
              schema,
              null,
            ),
          );
          const json = await res.json();
          assert.equal(res.status, 502);
          assert.equal(
            json.payload.detail,
            "PublishService: The source database refused the login",
          );
          assert.equal(json.payload.code, "source_login_refused");
          assert.ok(!json.payload.detail.includes("not-the-password"));
          assert.equal(metadata.logs.length, metadataRequests);
        },
      );

      await t.step(
        "a source outside the allow-list is a 403 from publish validate, with no connection made",
        async () => {
          const metadataRequests = metadata.logs.length;
          for (
            const host of ["localhost", "169.254.169.254", "[::ffff:127.0.0.1]", "127.1", "0x7f.1"]
          ) {
            const res = await post(
              validate,
              cliRequest({ ...pgSource, host_url: host, port: 5433 }, schema, null),
            );
            const json = await res.json();
            assert.equal(res.status, 403, host);
            assert.equal(json.payload.code, "source_not_allowed");
          }
          const otherSecret = await post(
            validate,
            cliRequest(
              {
                ...pgSource,
                credentials: { username_key: "pguser", password_key: "publishserviceapikey" },
              },
              schema,
              null,
            ),
          );
          assert.equal(otherSecret.status, 403);
          assert.match((await otherSecret.json()).payload.detail, /"publishserviceapikey"/);
          assert.equal(metadata.logs.length, metadataRequests);
        },
      );

      await t.step(
        "the gateway refuses a wrong key and an invalid body without calling anyone",
        async () => {
          let res = await post(
            validate,
            cliRequest(pgSource, schema, null),
            KEYS.publishserviceapikey,
          );
          assert.equal(res.status, 403);
          assert.equal((await res.json()).status, "error");
          res = await post(validate, {
            ...cliRequest(pgSource, schema, null),
            project_name: "../../etc",
          });
          assert.equal(res.status, 422);
          assert.deepEqual((await res.json()).payload.issues.map((i: { path: string }) => i.path), [
            "project_name",
          ]);
        },
      );

      await t.step(
        "an unreachable metadata service is a 502 naming it, never its key",
        async () => {
          await metadata.stop();
          const res = await post(validate, cliRequest(pgSource, schema, null));
          const json = await res.json();
          assert.equal(res.status, 502);
          assert.equal(
            json.payload.detail,
            `Error connecting to the metadata service. Base url: http://127.0.0.1:${metadata.port}/`,
          );
          const ready = await fetch(`${approval.url}/ready`);
          assert.equal(ready.status, 503);
          await ready.body?.cancel();
        },
      );

      await t.step("no log line holds a key, a password or row data", async () => {
        for (const service of services) await service.stop();
        const logs = services.flatMap((s) => s.logs).join("\n");
        assert.ok(logs.includes('"event":"request"'), "requests were logged");
        for (
          const secret of [...Object.values(KEYS), pg.password, my.password, "not-the-password"]
        ) {
          assert.ok(!logs.includes(secret), "a secret reached the logs");
        }
        assert.ok(
          !logs.includes("9434765919") && !logs.includes("ROW-DATA-MARKER"),
          "row data reached the logs",
        );
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await my.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});

/** The message of the `startup_failed` log line. */
function startupError(output: string): string {
  const line = output.split("\n").find((l) => l.includes('"startup_failed"'));
  assert.ok(line, `no startup_failed line in: ${output}`);
  return JSON.parse(line).message;
}

Deno.test("e2e: a service without a usable key refuses to start", async (t) => {
  const secrets = await mkdtemp(join(tmpdir(), "cr8tor-e2e-keys-"));
  try {
    await t.step("missing key", async () => {
      const { code, output } = await startFailing("metadata", { SECRETS_MNT_PATH: secrets });
      assert.equal(code, 1);
      assert.match(
        startupError(output),
        /^Cannot start: API key "metadataserviceapikey" is not set/,
      );
    });
    await t.step("short key", async () => {
      await writeFile(join(secrets, "publishserviceapikey"), "short");
      const { code, output } = await startFailing("publish", { SECRETS_MNT_PATH: secrets });
      assert.equal(code, 1);
      assert.match(startupError(output), /too short; it must be at least 16 characters/);
      assert.ok(!output.includes('"short"'));
    });
    await t.step("the gateway also needs the sub-services' keys", async () => {
      await writeFile(join(secrets, "approvalserviceapikey"), "approval-key-0123456789");
      const { code, output } = await startFailing("approval", { SECRETS_MNT_PATH: secrets });
      assert.equal(code, 1);
      assert.match(startupError(output), /"metadataserviceapikey" is not set/);
    });
  } finally {
    await rm(secrets, { recursive: true, force: true });
  }
});
