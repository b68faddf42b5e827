/**
 * End to end, a release's life (issue 16) through the three services as real processes and a real
 * PostgreSQL source: package and publish through the gateway in CSV and DuckDB; `deno task
 * verify-release` (its own process, read permission only besides the keys' URL) checks each bag, its
 * crate and its receipt against the gateway's `/.well-known/release-keys`; the crate names what was
 * released and never a credential; the key revokes one release, whose certificate lists every published
 * file with the SHA-512 the publish reply gave, on the shared audit trail of both services; the other
 * release expires and the gateway's sweep revokes it. A revoked release is never published again.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox } from "../support/databases.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEYS = newServiceKeys();
const PROJECT = "Pr016";

const DDL = `
  create table $s.visits (
    id integer primary key,
    clinic varchar(40) not null,
    cost numeric(8,2)
  );
  insert into $s.visits values (1, 'North, "A"', 12.50), (2, 'South', null);
`;

function post(url: string, body: unknown): Promise<JsonReply> {
  return postToService(url, body, KEYS.approvalserviceapikey);
}

/** Runs `deno task verify-release` on a bag with the gateway's keys; its exit code and output. */
async function verifyRelease(bag: string, keysUrl: string): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "verify-release", bag, "--keys", keysUrl],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, out: decode(stdout) + decode(stderr) };
}

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

Deno.test({
  name:
    "e2e: every release verifies offline, and a revoked or expired one is gone with a certificate",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-lifecycle-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const auditPath = join(work, "audit.jsonl");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_rel");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(schema, DDL);
      const files = { ...KEYS, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [allowedLocalPostgres()],
        env: { AUDIT_LOG_PATH: auditPath },
        approvalEnv: { RELEASE_SWEEP_INTERVAL_SECONDS: "1" },
      }, services);
      const keysUrl = `${approval.url}/.well-known/release-keys`;
      const request = (startTime: string, format: string) => ({
        project_name: PROJECT,
        project_start_time: startTime,
        destination: { name: "LSC", type: "filestore", format },
        source: {
          type: "postgresql",
          host_url: POSTGRES.host,
          port: POSTGRES.port,
          database: POSTGRES.database,
          credentials: { username_key: "pguser", password_key: "pgpassword" },
        },
        dataset: { name: "visits", schema_name: schema, tables: null },
      });
      const releases: Record<string, { id: string; published: Json[]; bag: string }> = {};

      for (
        const [format, startTime] of [["csv", "20261206_100000"], ["duckdb", "20261206_110000"]]
      ) {
        await t.step(
          `a ${format} release verifies offline and its crate says what it holds`,
          async () => {
            const body = request(startTime!, format!);
            const packaged = await post(`${approval.url}/project/package`, body);
            assert.equal(packaged.status, 200, JSON.stringify(packaged.json));
            const { source: _source, dataset: _dataset, ...publishBody } = body;
            const published = await post(`${approval.url}/project/publish`, publishBody);
            assert.equal(published.status, 200, JSON.stringify(published.json));
            const { release_id, receipt, data_published } = published.json.payload;
            assert.equal(typeof release_id, "string");
            assert.equal(published.json.payload.crate, undefined, "the CLI's reply has no crate");
            assert.equal(receipt.claims.release_id, release_id);
            const bag = join(storage, "production", PROJECT, startTime!);
            releases[format!] = { id: release_id, published: data_published, bag };

            const verified = await verifyRelease(bag, keysUrl);
            assert.equal(verified.code, 0, verified.out);

            const crateText = await readFile(join(bag, "ro-crate-metadata.json"), "utf8");
            const crate = JSON.parse(crateText);
            const served = await fetch(`${approval.url}/releases/${release_id}/crate`, {
              headers: { "x-api-key": KEYS.approvalserviceapikey },
            });
            assert.deepEqual(await served.json(), crate, "the gateway keeps the bag's crate");
            const graph: Json[] = crate["@graph"];
            const payloadFiles = graph.filter((e) => String(e["@id"]).startsWith("data/"));
            assert.deepEqual(
              payloadFiles.map((e) => [e["@id"], e.sha512]).sort(),
              data_published.map((f: Json) => [f.file_path, f.hash_value]).sort(),
            );
            for (const file of payloadFiles) {
              assert.equal(
                file.encodingFormat,
                format === "csv" ? "text/csv" : "application/vnd.duckdb",
              );
            }
            const actions = graph.filter((e) => e["@type"] === "CreateAction");
            assert.equal(actions.length, 2, "one package and one publish");
            assert.ok(crateText.includes(schema) && crateText.includes("visits"));
            assert.ok(crateText.includes("numeric"), "the columns' source types");
            for (const secret of ["pguser", "pgpassword", pg.role, pg.password]) {
              assert.ok(!crateText.includes(secret), "never a credential or its secret's name");
            }
          },
        );
      }

      await t.step(
        "the key revokes the CSV release: gone, with a certificate on the record",
        async () => {
          const { id, published, bag } = releases.csv!;
          const res = await post(`${approval.url}/releases/${id}/revoke`, { reason: "withdrawn" });
          assert.equal(res.status, 200, JSON.stringify(res.json));
          assert.equal(res.json.payload.state, "revoked");
          const certificate = res.json.payload.revocation.certificate;
          assert.equal(certificate.release_id, id);
          assert.equal(certificate.reason, "withdrawn");
          const removed = new Map(
            certificate.files.filter((f: Json) => f.area === "production").map((
              f: Json,
            ) => [f.path, f.sha512]),
          );
          for (const file of published) assert.equal(removed.get(file.file_path), file.hash_value);
          await assert.rejects(readdir(bag), /ENOENT/);
          assert.notEqual((await verifyRelease(bag, keysUrl)).code, 0);

          const records = (await readFile(auditPath, "utf8")).trimEnd().split("\n").map((l) =>
            JSON.parse(l)
          );
          const certified = records.filter((r) => r.certificate?.release_id === id);
          assert.deepEqual(certified.map((r) => r.service).sort(), ["approval", "publish"]);
          for (const record of certified) assert.deepEqual(record.certificate, certificate);

          const again = await post(`${approval.url}/project/publish`, {
            project_name: PROJECT,
            project_start_time: "20261206_100000",
            destination: { name: "LSC", type: "filestore", format: "csv" },
          });
          assert.equal(again.status, 409);
          assert.equal(again.json.payload.code, "release_revoked");
        },
      );

      await t.step(
        "a release past its expiry is revoked by the sweep, reason expired",
        async () => {
          const body = request("20261206_120000", "csv");
          assert.equal((await post(`${approval.url}/project/package`, body)).status, 200);
          const { source: _source, dataset: _dataset, ...publishBody } = body;
          const expiresAt = new Date(Date.now() + 1500).toISOString();
          const published = await post(`${approval.url}/project/publish`, {
            ...publishBody,
            expires_at: expiresAt,
          });
          assert.equal(published.status, 200, JSON.stringify(published.json));
          const id = published.json.payload.release_id;
          let release: Json = {};
          for (let i = 0; i < 100 && release.state !== "revoked"; i++) {
            await new Promise((resolve) => setTimeout(resolve, 100));
            const res = await fetch(`${approval.url}/releases/${id}`, {
              headers: { "x-api-key": KEYS.approvalserviceapikey },
            });
            release = (await res.json()).payload;
          }
          assert.equal(release.state, "revoked");
          assert.equal(release.expires_at, expiresAt);
          assert.equal(release.revocation.reason, "expired");
          assert.deepEqual(release.revocation.requested_by, { kind: "system", id: "expiry" });
          assert.ok(release.revocation.certificate.files.length > 0);
          // The sweep puts the expiry on the record before it stores the release revoked.
          const records = (await readFile(auditPath, "utf8")).trimEnd().split("\n")
            .map((l) => JSON.parse(l));
          assert.ok(
            records.some((r) => r.action === "release_expiry" && r.certificate?.release_id === id),
            "the sweep records the expiry, with its certificate, in the audit trail",
          );
          await assert.rejects(
            readdir(join(storage, "production", PROJECT, "20261206_120000")),
            /ENOENT/,
          );
        },
      );

      await t.step("the DuckDB release still verifies", async () => {
        const { bag } = releases.duckdb!;
        assert.equal((await verifyRelease(bag, keysUrl)).code, 0);
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
