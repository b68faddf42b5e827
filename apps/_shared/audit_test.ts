import assert from "node:assert/strict";
import { join } from "node:path";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import {
  auditKeyId,
  type AuditRecord,
  canonicalJson,
  verifyAuditChain,
} from "../../domain/audit.ts";
import { anAuditEntry } from "../../tests/contracts/audit_trail_contract.ts";
import {
  APPROVAL_KEY,
  FakeWorld,
  METADATA_KEY,
  PUBLISH_KEY,
  SOURCE_PASSWORD,
} from "../../tests/support/apps.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { ConfigError } from "./app_errors.ts";
import { auditTrailFromEnv } from "./audit.ts";
import { memoryLogger } from "./log.ts";

/** A world whose three apps share one in-memory audit trail. */
function auditedWorld(): FakeWorld & { audit: MemoryAuditTrail } {
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  return world as FakeWorld & { audit: MemoryAuditTrail };
}

function only(records: readonly AuditRecord[]): AuditRecord {
  assert.equal(records.length, 1, `exactly one record: ${JSON.stringify(records)}`);
  return records[0]!;
}

const TRANSFER_FIELDS = {
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  source_host: "db.internal",
  schema_name: "oncology",
  tables: ["tumour_stage"],
  destination: { type: "filestore", name: "LSC", format: "csv" },
};

Deno.test("audit trail: a package request makes exactly one record with what it staged", async () => {
  using world = auditedWorld();
  const res = await world.publishApp().request(
    postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY, {
      "x-request-id": "req-42",
    }),
  );
  assert.equal(res.status, 200);
  const reply = await res.json();
  const record = only(world.audit.records);
  const { time, seq, prev_sha256, sha256, files, service_request_id, ...rest } = record;
  assert.match(service_request_id, /^[0-9a-f-]{36}$/);
  assert.notEqual(service_request_id, "req-42");
  assert.deepEqual(rest, {
    kind: "operation",
    request_id: "req-42",
    service: "publish",
    caller_key_id: await auditKeyId(PUBLISH_KEY),
    action: "/data-publish/package",
    ...TRANSFER_FIELDS,
    outcome: "success",
    status: 200,
    error_code: null,
    destination_tables: null,
    opal_resources: null,
  });
  assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000);
  assert.equal(seq, 1);
  assert.match(prev_sha256, /^0{64}$/);
  assert.match(sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(
    files?.map((f) => f.path),
    reply.payload.data_retrieved.map((f: { file_path: string }) => f.file_path),
  );
  for (const file of files ?? []) {
    const staged = await Deno.readFile(
      join(world.base, "staging/Pr042/20250611_093000", file.path),
    );
    assert.equal(file.bytes, staged.length);
    assert.match(file.sha512, /^[0-9a-f]{128}$/);
  }
});

Deno.test("audit trail: a publish request records every published file with its hash", async () => {
  using world = auditedWorld();
  const app = world.publishApp();
  await app.request(postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY));
  const res = await app.request(postJson("/data-publish/publish", aPublishRequest(), PUBLISH_KEY));
  assert.equal(res.status, 200);
  const published = (await res.json()).payload.data_published;
  const record = world.audit.records[1]!;
  assert.equal(record.action, "/data-publish/publish");
  assert.equal(record.source_host, null);
  assert.equal(record.tables, null);
  assert.deepEqual(
    record.files,
    published.map((f: { file_path: string; hash_value: string; total_bytes: number }) => ({
      path: f.file_path,
      sha512: f.hash_value,
      bytes: f.total_bytes,
    })),
  );
  assert.equal(record.prev_sha256, world.audit.records[0]!.sha256);
});

Deno.test("audit trail: refused requests are recorded as errors", async (t) => {
  await t.step("a missing or wrong key: no record each, one summary with the counts", async () => {
    using world = auditedWorld();
    const app = world.publishApp();
    const keys = ["", "wrong-key-0123456789", "wrong-key-0123456789", undefined];
    for (const key of keys) {
      const request = postJson("/data-publish/package", aTransferRequest(), key ?? "");
      if (key === undefined) request.headers.delete("x-api-key");
      assert.equal((await app.request(request)).status, 403);
    }
    assert.deepEqual(world.audit.lines, [], "no record per refusal");
    assert.ok(!world.publishLog.lines.some((l) => l.includes('"status":403')), "no log line each");
    await world.refusalsOf("publish").flush();
    const [summary, ...more] = world.audit.refusalSummaries;
    assert.deepEqual(more, []);
    const { time, period_start, period_end, seq, prev_sha256, sha256, ...counts } = summary!;
    assert.deepEqual(counts, {
      kind: "refusals",
      service: "publish",
      missing_key: 2,
      wrong_key: 2,
    });
    assert.ok(Date.parse(period_start) <= Date.parse(period_end));
    assert.ok(Date.parse(period_end) <= Date.parse(time));
    assert.equal(seq, 1);
    assert.ok(prev_sha256 !== sha256);
    const logged = world.publishLog.lines.map((l) => JSON.parse(l)).filter((e) =>
      e.event === "requests_refused"
    );
    assert.deepEqual(logged.map((e) => [e.missing_key, e.wrong_key]), [[2, 2]]);
    await world.refusalsOf("publish").flush();
    assert.equal(world.audit.lines.length, 1, "nothing new to summarise, nothing written");
  });

  await t.step("an invalid body: 422, with only the well-formed fields kept", async () => {
    using world = auditedWorld();
    const body = aTransferRequest({ project_start_time: "yesterday" });
    const res = await world.metadataApp().request(
      postJson("/metadata/project", body, METADATA_KEY),
    );
    assert.equal(res.status, 422);
    const record = only(world.audit.records);
    assert.equal(record.error_code, "invalid_request");
    assert.equal(record.caller_key_id, await auditKeyId(METADATA_KEY));
    assert.equal(record.project_name, "Pr042");
    assert.equal(record.project_start_time, null);
  });

  await t.step("a missing table: the service's error code", async () => {
    using world = auditedWorld();
    const body = aTransferRequest();
    (body.dataset as Record<string, unknown>).tables = [{ name: "missing_table" }];
    const res = await world.metadataApp().request(
      postJson("/metadata/project", body, METADATA_KEY),
    );
    assert.equal(res.status, 404);
    const record = only(world.audit.records);
    assert.equal(record.error_code, "dataset_items_not_found");
    assert.deepEqual(record.tables, ["missing_table"]);
  });

  await t.step("a body that is not JSON", async () => {
    using world = auditedWorld();
    const res = await world.publishApp().request(
      postJson("/data-publish/validate", "{not json", PUBLISH_KEY),
    );
    assert.equal(res.status, 422);
    assert.equal(only(world.audit.records).project_name, null);
  });

  await t.step("a POST to an unknown path", async () => {
    using world = auditedWorld();
    const res = await world.publishApp().request(postJson("/nope", {}, PUBLISH_KEY));
    assert.equal(res.status, 404);
    const record = only(world.audit.records);
    assert.deepEqual([record.action, record.error_code], ["/nope", "not_found"]);
  });
});

Deno.test("audit trail: reads are not recorded", async () => {
  using world = auditedWorld();
  const app = world.publishApp();
  for (const path of ["/health", "/ready", "/openapi.json", "/docs"]) {
    await (await app.request(`http://test.local${path}`)).body?.cancel();
  }
  assert.equal(world.audit.records.length, 0);
});

Deno.test("audit trail: the gateway and the services it calls each record the operation once", async (t) => {
  using world = auditedWorld();
  const gateway = world.approvalApp();

  await t.step("validate: gateway, publish and metadata, one request id", async () => {
    const res = await gateway.request(
      postJson("/project/validate", aTransferRequest(), APPROVAL_KEY, { "x-request-id": "v-1" }),
    );
    assert.equal(res.status, 200);
    const records = world.audit.records.filter((r) => r.request_id === "v-1");
    assert.deepEqual(
      records.map((r) => [r.service, r.action, r.caller_key_id]),
      [
        ["publish", "/data-publish/validate", await auditKeyId(PUBLISH_KEY)],
        ["metadata", "/metadata/project", await auditKeyId(METADATA_KEY)],
        ["approval", "/project/validate", await auditKeyId(APPROVAL_KEY)],
      ],
    );
    for (const record of records) {
      assert.deepEqual(
        {
          project_name: record.project_name,
          project_start_time: record.project_start_time,
          source_host: record.source_host,
          schema_name: record.schema_name,
          tables: record.tables,
          destination: record.destination,
        },
        TRANSFER_FIELDS,
      );
    }
  });

  await t.step(
    "publish: the gateway records the files from the publish service's reply",
    async () => {
      await gateway.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
      const res = await gateway.request(
        postJson("/project/publish", aPublishRequest(), APPROVAL_KEY, { "x-request-id": "p-1" }),
      );
      assert.equal(res.status, 200);
      const [publish, approval] = world.audit.records.filter((r) => r.request_id === "p-1");
      assert.equal(approval?.service, "approval");
      assert.ok((approval?.files?.length ?? 0) > 0);
      assert.deepEqual(approval?.files, publish?.files);
    },
  );

  await t.step("the shared trail is one intact chain", async () => {
    const result = await verifyAuditChain(world.audit.text());
    assert.equal(result.intact, true, JSON.stringify(result));
    assert.equal(result.records, world.audit.records.length);
  });

  await t.step("no key, password or row value is in the trail", () => {
    const trail = world.audit.text();
    for (const secret of [APPROVAL_KEY, METADATA_KEY, PUBLISH_KEY, SOURCE_PASSWORD]) {
      assert.ok(!trail.includes(secret), "a secret is in the audit trail");
    }
    for (const value of ["row-secret-one", "T2, ", "multi", "sourcepassword", "stage_label"]) {
      assert.ok(!trail.includes(value), `"${value}" is in the audit trail`);
    }
  });
});

Deno.test("audit trail: fail-closed", async (t) => {
  await t.step("an unwritable trail answers 503 before anything is done", async () => {
    using world = auditedWorld();
    world.audit.failChecks("disk full");
    const res = await world.publishApp().request(
      postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 503);
    const json = await res.json();
    assert.equal(json.payload.code, "audit_unavailable");
    assert.equal(json.payload.request_id, res.headers.get("x-request-id"));
    assert.equal(world.connections.length, 0, "the source was never touched");
    assert.deepEqual([...Deno.readDirSync(join(world.base, "staging"))], []);
    assert.equal(world.audit.records.length, 0);
    assert.ok(world.publishLog.lines.some((l) => l.includes('"event":"audit_unavailable"')));
  });

  await t.step("a record that cannot be appended turns the reply into a 500", async () => {
    using world = auditedWorld();
    world.audit.failAppends("disk full");
    const res = await world.publishApp().request(
      postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY),
    );
    assert.equal(res.status, 500);
    const json = await res.json();
    assert.equal(json.status, "error");
    assert.equal(json.payload.code, "audit_write_failed");
    assert.equal(json.payload.request_id, res.headers.get("x-request-id"));
    const failure = world.publishLog.lines.map((l) => JSON.parse(l)).find((e) =>
      e.event === "audit_write_failed"
    );
    assert.equal(failure?.level, "error");
    const logged = JSON.parse(failure.record);
    assert.equal(logged.action, "/data-publish/package");
    assert.equal(logged.outcome, "success", "the log keeps the record of what was done");
    assert.ok(!failure.record.includes(SOURCE_PASSWORD));
  });

  await t.step("/ready reports an unwritable trail without naming a path", async () => {
    using world = auditedWorld();
    world.audit.failChecks("Permission denied: /secret/place/audit.jsonl");
    const res = await world.metadataApp().request("http://test.local/ready", {
      headers: { "x-api-key": METADATA_KEY },
    });
    assert.equal(res.status, 503);
    const checks = (await res.json()).payload.checks;
    assert.deepEqual(checks.at(-1), {
      name: "audit trail",
      ok: false,
      detail: "cannot be appended to",
    });
  });
});

Deno.test("auditTrailFromEnv()", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-audit-env-" });
  try {
    await t.step("without AUDIT_LOG_PATH: no trail, and a warning", () => {
      const log = memoryLogger("publish");
      assert.equal(auditTrailFromEnv({ AUDIT_LOG_PATH: " " }, log), undefined);
      const warning = JSON.parse(log.lines[0] ?? "{}");
      assert.deepEqual([warning.level, warning.event], ["warn", "audit_trail_disabled"]);
    });

    await t.step("a path that cannot be opened stops the service from starting", () => {
      assert.throws(
        () => auditTrailFromEnv({ AUDIT_LOG_PATH: join(dir, "no", "such.jsonl") }, memoryLogger()),
        ConfigError,
      );
    });

    await t.step("a writable path: the file is created and records go to it", async () => {
      const path = join(dir, "audit.jsonl");
      const trail = auditTrailFromEnv({ AUDIT_LOG_PATH: path }, memoryLogger());
      assert.ok(trail !== undefined);
      assert.equal(await Deno.readTextFile(path), "");
      await trail.checkWritable();
      const record = await trail.append(anAuditEntry());
      assert.equal(await Deno.readTextFile(path), canonicalJson(record) + "\n");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
