/**
 * End to end, the HAWK data API (issue 19) through the three services as real processes, a real
 * PostgreSQL source and destination and a fake OPAL: `DATA_API=on` with a clients file and its keys in
 * the secret store; one release published to the PostgreSQL destination and one to the filestore (CSV);
 * a pipeline with the `hawk` package's client, checking `Server-Authorization` on every reply, lists its
 * releases and tables and pages through the rows in both orientations following `next` to the end
 * (every row once, values exactly the canonical text, NULL as null); another project's release and a
 * table not in scope are 404; a release revoked through the gateway is 404 on the very next request;
 * the reads are on the audit trail in `data_reads` batches without a single row value.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import hawkModule from "hawk";
import { auditKeyId } from "../../domain/audit.ts";
import { PostgresSandbox } from "../support/databases.ts";
import { DestinationSandbox } from "../support/destination_databases.ts";
import { FakeOpal } from "../support/fake_opal.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

// deno-lint-ignore no-explicit-any
const hawk = hawkModule as any;
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const KEYS = newServiceKeys();
const PROJECT = "Pr019";
const OTHER_PROJECT = "Pr019other";
const CREDENTIALS = {
  id: "e2e-pipeline",
  key: `hawk-${crypto.randomUUID()}-${crypto.randomUUID()}`,
  algorithm: "sha256",
};
const ROWS = 47;
const LIMIT = 10;

/**
 * `visits`, 47 rows with what canonical text must keep: quotes, commas, a newline, a backslash, the
 * empty string against NULL, exact decimals, fractional timestamps; and `secrets`, out of scope.
 */
const DDL = `
  create table $s.visits (
    id integer primary key,
    clinic text,
    cost numeric(12,4),
    seen_at timestamp,
    ok boolean
  );
  insert into $s.visits
    select i, 'clinic ' || i, (i * 1.25)::numeric(12,4),
      timestamp '2020-01-01 10:00:00' + i * interval '1 second 250 millisecond', i % 2 = 0
    from generate_series(4, ${ROWS}) i;
  insert into $s.visits values
    (1, 'North, "A"' || chr(10) || 'line 2', 12345678.0100, '2020-02-29 23:59:59.999999', true),
    (2, '', null, null, null),
    (3, null, -0.0001, '1999-12-31 00:00:00', false);
  update $s.visits set clinic = 'back\\slash ünï' where id = 7;
  create table $s.secrets (id integer primary key, note text);
  insert into $s.secrets values (1, 'not for the pipeline');
`;

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

/** A HAWK GET whose reply signature is checked; its status and parsed body. */
async function hawkGet(base: string, path: string): Promise<{ status: number; json: Json }> {
  const url = base + path;
  const { header, artifacts } = hawk.client.header(url, "GET", { credentials: CREDENTIALS });
  const res = await fetch(url, { headers: { authorization: header } });
  const text = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => headers[name] = value);
  // Throws unless the gateway signed these exact bytes with this client's key.
  const result = hawk.client.authenticate({ headers }, CREDENTIALS, artifacts, {
    payload: text,
    required: true,
  });
  assert.ok(result.headers["server-authorization"].hash, `${path}: the reply's hash is signed`);
  return { status: res.status, json: JSON.parse(text) };
}

Deno.test({
  name: "e2e: a HAWK pipeline pages through PostgreSQL and CSV releases, in scope only, audited",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-data-api-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const auditPath = join(work, "audit.jsonl");
    const clientsFile = join(work, "clients.json");
    const pg = new PostgresSandbox();
    const destination = new DestinationSandbox();
    await using opal = await FakeOpal.start();
    const schema = randomName("sd");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(schema, DDL);
      await destination.create();
      const files = {
        ...KEYS,
        pguser: pg.role,
        pgpassword: pg.password,
        destpassword: destination.loaderPassword,
        readerpassword: destination.readerPassword,
        opalpassword: opal.admin.password,
        "hawk-e2e-pipeline": CREDENTIALS.key,
      };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      await writeFile(
        clientsFile,
        JSON.stringify({
          clients: [{
            id: CREDENTIALS.id,
            secret_name: "hawk-e2e-pipeline",
            scopes: [{ project: PROJECT, tables: ["visits"] }],
          }],
        }),
      );
      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [allowedLocalPostgres()],
        env: { AUDIT_LOG_PATH: auditPath },
        approvalEnv: {
          DATA_API: "on",
          DATA_API_CLIENTS_FILE: clientsFile,
          DATA_API_AUDIT_FLUSH_SECONDS: "2",
        },
        publishEnv: {
          DATA_API_AUDIT_FLUSH_SECONDS: "2",
          DESTINATION_POSTGRESQL_HOST: POSTGRES.host,
          DESTINATION_POSTGRESQL_PORT: String(POSTGRES.port),
          DESTINATION_POSTGRESQL_DATABASE: destination.database,
          DESTINATION_POSTGRESQL_USERNAME: destination.loader,
          DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: "destpassword",
          DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: destination.reader,
          DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: "readerpassword",
          DESTINATION_OPAL_HOST: opal.url,
          DESTINATION_OPAL_USERNAME: opal.admin.username,
          DESTINATION_OPAL_PASSWORD_SECRET_NAME: "opalpassword",
        },
      }, services);
      const source = {
        type: "postgresql",
        host_url: POSTGRES.host,
        port: POSTGRES.port,
        database: POSTGRES.database,
        credentials: { username_key: "pguser", password_key: "pgpassword" },
      };
      /** Packages and publishes a run; its release id. */
      const release = async (project: string, start: string, dest: Json): Promise<string> => {
        const run = { project_name: project, project_start_time: start, destination: dest };
        const packaged = await post(`${approval.url}/project/package`, {
          ...run,
          source,
          dataset: { name: "visits", schema_name: schema, tables: null },
        });
        assert.equal(packaged.status, 200, JSON.stringify(packaged.json));
        const published = await post(`${approval.url}/project/publish`, run);
        assert.equal(published.status, 200, JSON.stringify(published.json));
        return published.json.payload.release_id;
      };
      const csvId = await release(PROJECT, "20261207_100000", {
        name: "LSC",
        type: "filestore",
        format: "csv",
      });
      const pgId = await release(PROJECT, "20261207_110000", { type: "postgresql" });
      const otherId = await release(OTHER_PROJECT, "20261207_120000", {
        name: "LSC",
        type: "filestore",
        format: "csv",
      });

      // The canonical text of every row, in key order, as the source has it (csv-format.md).
      const expected = (await pg.admin.unsafe(
        `select id::text, clinic, cost::text, to_char(seen_at, 'YYYY-MM-DD HH24:MI:SS') ||
           coalesce(nullif(rtrim(to_char(seen_at, '.US'), '0'), '.'), '') as seen_at,
           ok::text
         from "${schema}".visits v order by v.id`,
      )).map((r) => [r.id, r.clinic, r.cost, r.seen_at, r.ok] as (string | null)[]);
      assert.equal(expected.length, ROWS);
      assert.deepEqual(expected[1], ["2", "", null, null, null]);
      assert.deepEqual(expected[0]!.slice(2, 4), ["12345678.0100", "2020-02-29 23:59:59.999999"]);
      const columns = ["id", "clinic", "cost", "seen_at", "ok"];

      await t.step("the pipeline lists exactly the releases of its project", async () => {
        const { status, json } = await hawkGet(approval.url, "/data/v1/releases");
        assert.equal(status, 200, JSON.stringify(json));
        assert.deepEqual(
          json.payload.releases.map((r: Json) => r.id).sort(),
          [csvId, pgId].sort(),
        );
        assert.equal(json.payload.next, null);
      });

      const datasetOf: Record<string, string> = {};
      for (const [kind, id] of [["csv", csvId], ["postgresql", pgId]] as const) {
        await t.step(`${kind}: the tables in scope, with their columns`, async () => {
          const { status, json } = await hawkGet(approval.url, `/data/v1/releases/${id}/tables`);
          assert.equal(status, 200, JSON.stringify(json));
          const tables: Json[] = json.payload.tables;
          assert.deepEqual(tables.map((table) => table.name), ["visits"], "secrets is not listed");
          assert.deepEqual(tables[0]!.columns.map((c: Json) => c.name), columns);
          assert.deepEqual(tables[0]!.key, kind === "csv" ? [] : ["id"]);
          datasetOf[kind] = tables[0]!.dataset;
        });

        for (const orientation of ["tabular", "records"] as const) {
          await t.step(`${kind}, ${orientation}: every row once, exactly`, async () => {
            const rows: (string | null)[][] = [];
            let next: string | null =
              `/data/v1/releases/${id}/tables/visits/rows?limit=${LIMIT}&orientation=${orientation}`;
            let pages = 0;
            while (next !== null) {
              const { status, json }: { status: number; json: Json } = await hawkGet(
                approval.url,
                next,
              );
              assert.equal(status, 200, JSON.stringify(json));
              pages++;
              const page = json.payload;
              assert.deepEqual(page.columns.map((c: Json) => c.name), columns);
              if (orientation === "tabular") rows.push(...page.rows);
              else {
                for (const record of page.records) {
                  assert.deepEqual(Object.keys(record), columns);
                  rows.push(columns.map((c) => record[c]));
                }
              }
              next = page.next;
              assert.ok(pages <= ROWS, "paging ends");
            }
            assert.ok(pages >= Math.ceil(ROWS / LIMIT), `${pages} pages`);
            // The CSV file keeps the source's order; sort by id to compare with the key order.
            const sorted = kind === "csv"
              ? [...rows].sort((a, b) => Number(a[0]) - Number(b[0]))
              : rows;
            assert.deepEqual(sorted, expected);
          });
        }
      }

      await t.step("another project's release and a table not in scope are 404", async () => {
        const other = await hawkGet(approval.url, `/data/v1/releases/${otherId}/tables`);
        assert.equal(other.status, 404);
        assert.equal(other.json.payload.code, "release_not_found");
        const rows = await hawkGet(approval.url, `/data/v1/releases/${otherId}/tables/visits/rows`);
        assert.equal(rows.status, 404);
        assert.equal(rows.json.payload.code, "release_not_found");
        for (const id of [csvId, pgId]) {
          const secret = await hawkGet(approval.url, `/data/v1/releases/${id}/tables/secrets/rows`);
          assert.equal(secret.status, 404);
          assert.equal(secret.json.payload.code, "table_not_found");
          assert.ok(!JSON.stringify(secret.json).includes("not for the pipeline"));
        }
      });

      await t.step("a release revoked through the gateway is gone at once", async () => {
        const path = `/data/v1/releases/${pgId}/tables/visits/rows?limit=${LIMIT}`;
        const first = await hawkGet(approval.url, path);
        assert.equal(first.status, 200);
        assert.equal(typeof first.json.payload.next, "string");
        const revoked = await post(`${approval.url}/releases/${pgId}/revoke`, { reason: "e2e" });
        assert.equal(revoked.status, 200, JSON.stringify(revoked.json));
        assert.equal(revoked.json.payload.state, "revoked");
        for (const p of [path, first.json.payload.next, `/data/v1/releases/${pgId}/tables`]) {
          const gone = await hawkGet(approval.url, p);
          assert.equal(gone.status, 404, p);
          assert.equal(gone.json.payload.code, "release_not_found");
        }
        const list = await hawkGet(approval.url, "/data/v1/releases");
        assert.deepEqual(list.json.payload.releases.map((r: Json) => r.id), [csvId]);
      });

      await t.step("the reads are audited in batches, without row data", async () => {
        // One flush period (2 s) and then some.
        let records: Json[] = [];
        let batches: Json[] = [];
        for (let i = 0; i < 100; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          const text = await readFile(auditPath, "utf8");
          records = text.trimEnd().split("\n").map((l) => JSON.parse(l));
          batches = records.filter((r) => r.kind === "data_reads" && r.service === "approval");
          const reads = batches.flatMap((b) => b.reads);
          const forwarded = records.filter((r) =>
            r.kind === "data_reads" && r.service === "publish"
          )
            .flatMap((b) => b.reads);
          // The last read of all: the releases listed after the revocation (and the gateway's last
          // forwarded page, the first one before the revocation, in the publish service's batches).
          if (
            reads.filter((r: Json) => r.action === "list_releases").length === 2 &&
            forwarded.filter((r: Json) => r.action === "read_rows").length >=
              2 * 2 * Math.ceil(ROWS / LIMIT) + 1
          ) break;
        }
        const reads: Json[] = batches.flatMap((b) => b.reads);
        assert.ok(batches.length < reads.length / 3, `${reads.length} reads in ${batches.length}`);
        assert.ok(reads.every((r) => r.client_id === CREDENTIALS.id));
        // The publish service records the pages the gateway forwarded the same way: batched, by
        // the gateway's key id, never one operation record (and one disk sync) per page.
        const publishBatches = records.filter((r) =>
          r.kind === "data_reads" && r.service === "publish"
        );
        const forwarded: Json[] = publishBatches.flatMap((b) => b.reads);
        const publishKeyId = await auditKeyId(KEYS.publishserviceapikey);
        assert.ok(forwarded.every((r) => r.caller_key_id === publishKeyId && !("client_id" in r)));
        const forwardedPages = forwarded.filter((r) =>
          r.action === "read_rows" && r.status === 200
        );
        assert.equal(forwardedPages.length, 2 * 2 * Math.ceil(ROWS / LIMIT) + 1);
        assert.ok(publishBatches.length < forwarded.length / 3);
        assert.ok(
          !records.some((r) => r.kind === "operation" && r.action.startsWith("/data-publish/read")),
          "no operation record per page",
        );
        const pages = reads.filter((r) => r.action === "read_rows" && r.status === 200);
        // Two releases × two orientations × 5 pages, and the first page before the revocation.
        assert.equal(pages.length, 2 * 2 * Math.ceil(ROWS / LIMIT) + 1);
        assert.equal(
          pages.filter((r) => r.release_id === csvId).reduce((n, r) => n + r.rows_returned, 0),
          2 * ROWS,
        );
        assert.ok(pages.every((r) => r.table === "visits"));
        assert.ok(
          reads.some((r) =>
            r.release_id === otherId && r.status === 404 && r.error_code === "release_not_found"
          ),
        );
        assert.ok(
          reads.some((r) => r.table === "secrets" && r.error_code === "table_not_found"),
        );
        assert.ok(
          reads.some((r) => r.release_id === pgId && r.error_code === "release_not_found"),
          JSON.stringify(reads.filter((r) => r.release_id === pgId && r.status !== 200)),
        );
        const text = JSON.stringify([...batches, ...publishBatches]);
        for (const row of expected) {
          for (const value of row.slice(1)) {
            if (value !== null && value.length > 4) {
              assert.ok(!text.includes(value), "no row value on the record");
            }
          }
        }
        assert.ok(!text.includes(CREDENTIALS.key));
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await destination.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
