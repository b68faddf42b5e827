/**
 * End to end, the audit trail: the three services as real processes share one `AUDIT_LOG_PATH`; the CLI's
 * validate → package → publish (plus a refused and an invalid request) runs through the gateway with known
 * secret values. Afterwards `deno task audit:verify` accepts the trail, fails at any one edited record, and
 * no secret is in any service log or in the trail.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox } from "../support/databases.ts";
import {
  type JsonReply,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Known secret values, each easy to find if it leaked. */
const KEYS = {
  approvalserviceapikey: `audit-approval-key-${crypto.randomUUID()}`,
  metadataserviceapikey: `audit-metadata-key-${crypto.randomUUID()}`,
  publishserviceapikey: `audit-publish-key-${crypto.randomUUID()}`,
};

const ROW_MARKER = "AUDIT-ROW-DATA-MARKER";

const PROJECT = {
  project_name: "E2eAudit",
  project_start_time: "20250611_093000",
  destination: { name: "LSC", type: "filestore", format: "csv" },
};

/** The key id the services must record, computed independently of `domain/audit.ts`. */
function keyId(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

async function auditVerify(path: string): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "audit:verify", path],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, out: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

function post(
  url: string,
  body: unknown,
  requestId: string,
  key = KEYS.approvalserviceapikey,
): Promise<JsonReply> {
  return postToService(url, body, key, { "x-request-id": requestId });
}

Deno.test({
  name:
    "e2e: three services share one audit trail that verifies, detects edits and holds no secret",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-audit-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const auditPath = join(work, "shared-volume", "audit.jsonl");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_audit");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(work, "shared-volume"));
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(
        schema,
        `create table $s.visits (id integer primary key, note varchar(40));
         insert into $s.visits values (1, '${ROW_MARKER}');`,
      );
      const secretValues = { ...KEYS, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(secretValues)) {
        await writeFile(join(secrets, name), value);
      }

      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [allowedLocalPostgres()],
        env: { AUDIT_LOG_PATH: auditPath },
      }, services);
      const transfer = {
        ...PROJECT,
        source: {
          type: "postgresql",
          host_url: POSTGRES.host,
          port: POSTGRES.port,
          database: POSTGRES.database,
          credentials: { username_key: "pguser", password_key: "pgpassword" },
        },
        dataset: { name: schema, schema_name: schema, tables: [{ name: "visits" }] },
      };

      let published: { file_path: string; hash_value: string; total_bytes: number }[] = [];
      await t.step("the CLI's flow, a refused and an invalid request", async () => {
        const validate = await post(`${approval.url}/project/validate`, transfer, "r-validate");
        assert.equal(validate.status, 200, JSON.stringify(validate.json));
        const pack = await post(`${approval.url}/project/package`, transfer, "r-package");
        assert.equal(pack.status, 200, JSON.stringify(pack.json));
        const publish = await post(`${approval.url}/project/publish`, PROJECT, "r-publish");
        assert.equal(publish.status, 200, JSON.stringify(publish.json));
        published = publish.json.payload.data_published;
        const refused = await post(
          `${approval.url}/project/publish`,
          PROJECT,
          "r-refused",
          "not-the-key-0123456789",
        );
        assert.equal(refused.status, 403);
        const invalid = await post(
          `${approval.url}/project/package`,
          { ...transfer, project_name: "../escape" },
          "r-invalid",
        );
        assert.equal(invalid.status, 422);
      });

      for (const service of services) await service.stop();
      const trail = await readFile(auditPath, "utf8");
      const records = trail.trimEnd().split("\n").map((line) => JSON.parse(line));

      await t.step("deno task audit:verify accepts the shared trail", async () => {
        const { code, out } = await auditVerify(auditPath);
        assert.equal(code, 0, out);
        assert.match(out, /^intact: 9 records; last record seq 9, sha256 [0-9a-f]{64}\n$/);
      });

      await t.step("each service recorded its part of each operation once", () => {
        const of = (id: string) => records.filter((r) => r.request_id === id).map((r) => r.service);
        assert.deepEqual(of("r-validate"), ["publish", "metadata", "approval"]);
        assert.deepEqual(of("r-package"), ["publish", "approval"]);
        assert.deepEqual(of("r-publish"), ["publish", "approval"]);
        assert.deepEqual(of("r-refused"), [], "a key refusal gets no record of its own");
        assert.deepEqual(of("r-invalid"), ["approval"]);
        assert.deepEqual(records.map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        const operations = records.filter((r) => r.kind === "operation");
        assert.equal(operations.length, 8);
        assert.equal(new Set(operations.map((r) => r.service_request_id)).size, 8);
        // The gateway's refusal was counted and summarised when it stopped.
        const summaries = records.filter((r) => r.kind === "refusals");
        assert.deepEqual(
          summaries.map((r) => [r.service, r.missing_key, r.wrong_key, r.seq]),
          [["approval", 0, 1, 9]],
        );
      });

      await t.step("records carry key ids, the request's names and the published hashes", () => {
        const ids: Record<string, string> = {
          approval: keyId(KEYS.approvalserviceapikey),
          metadata: keyId(KEYS.metadataserviceapikey),
          publish: keyId(KEYS.publishserviceapikey),
        };
        for (const record of records.filter((r) => r.kind === "operation")) {
          assert.equal(record.caller_key_id, ids[record.service]);
        }
        const gatewayPackage = records.find((r) =>
          r.request_id === "r-package" && r.service === "approval"
        );
        assert.deepEqual(
          {
            project_name: gatewayPackage.project_name,
            project_start_time: gatewayPackage.project_start_time,
            source_host: gatewayPackage.source_host,
            schema_name: gatewayPackage.schema_name,
            tables: gatewayPackage.tables,
            destination: gatewayPackage.destination,
            outcome: gatewayPackage.outcome,
            status: gatewayPackage.status,
          },
          {
            project_name: "E2eAudit",
            project_start_time: "20250611_093000",
            source_host: POSTGRES.host,
            schema_name: schema,
            tables: ["visits"],
            destination: { type: "filestore", name: "LSC", format: "csv" },
            outcome: "success",
            status: 200,
          },
        );
        const expectedFiles = published.map((f) => ({
          path: f.file_path,
          sha512: f.hash_value,
          bytes: f.total_bytes,
        }));
        assert.equal(expectedFiles.length, 1);
        for (const record of records.filter((r) => r.request_id === "r-publish")) {
          assert.deepEqual(record.files, expectedFiles);
        }
        const invalid = records.find((r) => r.request_id === "r-invalid");
        assert.deepEqual(
          [invalid.status, invalid.error_code, invalid.project_name, invalid.schema_name],
          [422, "invalid_request", null, schema],
        );
      });

      await t.step("editing any one record makes audit:verify fail at that record", async () => {
        const lines = trail.trimEnd().split("\n");
        const edited = join(work, "edited.jsonl");
        for (const [index, line] of lines.entries()) {
          const record = JSON.parse(line);
          const field = record.kind === "refusals" ? "wrong_key" : "status";
          const tampered = line.replace(
            `"${field}":${record[field]}`,
            `"${field}":${record[field] + 1}`,
          );
          assert.notEqual(tampered, line);
          await writeFile(edited, lines.with(index, tampered).join("\n") + "\n");
          const { code, out } = await auditVerify(edited);
          assert.equal(code, 1, out);
          assert.match(out, new RegExp(`^broken: line ${index + 1} was edited`));
        }
      });

      await t.step("no secret and no row value is in any service log or in the trail", () => {
        const logs = services.flatMap((s) => s.logs).join("\n");
        assert.ok(logs.includes('"event":"audit_trail"'), "the services logged their trail");
        for (const [name, value] of Object.entries(secretValues)) {
          assert.ok(!logs.includes(value), `the secret ${name} is in a service log`);
          assert.ok(!trail.includes(value), `the secret ${name} is in the audit trail`);
        }
        assert.ok(!logs.includes(ROW_MARKER) && !trail.includes(ROW_MARKER), "row data leaked");
      });
    } finally {
      for (const service of services) await service.stop();
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
