import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileAuditTrail } from "../../adapters/filesystem/file_audit_trail.ts";
import {
  type AnyAuditRecord,
  auditKeyId,
  type DataRead,
  sha256Hex,
  verifyAuditChain,
} from "../../domain/audit.ts";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { DataReadAudit } from "../_shared/data_read_audit.ts";
import { memoryLogger } from "../_shared/log.ts";
import { createPublishApp } from "./app.ts";
import { buildPublishService } from "./main.ts";

const RUN = { project_name: "Pr042", project_start_time: "20250611_093000" };
const FILESTORE = { type: "filestore", name: "LSC" };
const PAGES = 100;

function aReadRequest(overrides: Record<string, unknown> = {}) {
  return {
    ...RUN,
    destination: FILESTORE,
    dataset: "oncology",
    table: "tumour_stage",
    limit: 1,
    cursor: null,
    orientation: "records",
    next_base: "/data/v1/releases/rel-1/tables/tumour_stage/rows?cursor=",
    ...overrides,
  };
}

/** The records of an audit file, in order. */
async function recordsOf(path: string): Promise<AnyAuditRecord[]> {
  const text = await readFile(path, "utf8");
  return text.trimEnd().split("\n").map((line) => JSON.parse(line));
}

Deno.test("publish app /data-publish/read with AUDIT_LOG_PATH: 100 pages are one data_reads record, not 100 operation records", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-read-audit-"));
  try {
    using world = new FakeWorld();
    const path = join(dir, "audit.jsonl");
    const trail = new FileAuditTrail(path);
    // A period longer than the test: the reads are written when the batch is closed (at shutdown).
    const readAudit = new DataReadAudit({
      service: "publish",
      log: memoryLogger("publish"),
      trail,
      flushMs: 60_000,
    });
    const app = createPublishApp({ ...world.publishDeps(), auditTrail: trail, readAudit });
    for (
      const [route, body] of [
        ["/data-publish/package", aTransferRequest()],
        ["/data-publish/publish", aPublishRequest()],
      ] as const
    ) {
      const res = await app.request(postJson(route, body, PUBLISH_KEY));
      assert.equal(res.status, 200, route);
      await res.body?.cancel();
    }
    const operations = (await recordsOf(path)).length;
    assert.ok(operations >= 2, "package and publish are recorded one by one, at once");

    // 100 pages of one row each: through the 3-row table, again from the start at its end.
    const cursors: (string | null)[] = [];
    const values: string[] = [];
    let rows = 0;
    let cursor: string | null = null;
    for (let page = 0; page < PAGES; page++) {
      const res = await app.request(
        postJson("/data-publish/read/rows", aReadRequest({ cursor }), PUBLISH_KEY),
      );
      assert.equal(res.status, 200);
      const body = await res.json();
      rows += Number(res.headers.get("x-rows-returned"));
      for (const record of body.payload.records) values.push(...Object.values<string>(record));
      const next: string | null = body.payload.next;
      cursor = next === null ? null : new URL(next, "http://x").searchParams.get("cursor");
      cursors.push(cursor);
    }
    assert.equal(rows, PAGES);
    const tables = await app.request(
      postJson("/data-publish/read/tables", { ...RUN, destination: FILESTORE }, PUBLISH_KEY),
    );
    assert.equal(tables.status, 200);
    await tables.body?.cancel();
    const unknown = await app.request(
      postJson("/data-publish/read/rows", aReadRequest({ table: "nope" }), PUBLISH_KEY),
    );
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const invalid = await app.request(
      postJson("/data-publish/read/rows", aReadRequest({ limit: 0 }), PUBLISH_KEY),
    );
    assert.equal(invalid.status, 422);
    await invalid.body?.cancel();
    const refused = await app.request(postJson("/data-publish/read/rows", aReadRequest(), "wrong"));
    assert.equal(refused.status, 403);
    await refused.body?.cancel();

    assert.equal((await recordsOf(path)).length, operations, "no record, no disk sync, per read");
    assert.equal(readAudit.pending, PAGES + 3);
    await readAudit.close();

    const text = await readFile(path, "utf8");
    assert.equal((await verifyAuditChain(text)).intact, true);
    const records = await recordsOf(path);
    assert.equal(records.length, operations + 1);
    const actions = records.flatMap((r) => r.kind === "operation" ? [r.action] : []);
    assert.deepEqual(actions, ["/data-publish/package", "/data-publish/publish"]);
    const batch = records.at(-1)!;
    assert.equal(batch.kind, "data_reads");
    if (batch.kind !== "data_reads") return;
    assert.equal(batch.service, "publish");
    assert.equal(
      batch.reads.length,
      PAGES + 3,
      "every authenticated read, once; the 403 is not one",
    );

    const keyId = await auditKeyId(PUBLISH_KEY);
    const pages = batch.reads.slice(0, PAGES);
    const sha = (c: string | null) => c === null ? Promise.resolve(null) : sha256Hex(c);
    for (const [i, read] of pages.entries()) {
      const expected: DataRead = {
        time: read.time,
        request_id: read.request_id,
        caller_key_id: keyId,
        action: "read_rows",
        release_id: null,
        ...RUN,
        destination: FILESTORE,
        dataset: "oncology",
        table: "tumour_stage",
        status: 200,
        error_code: null,
        rows_returned: 1,
        cursor_in_sha256: await sha(i === 0 ? null : cursors[i - 1]!),
        cursor_out_sha256: await sha(cursors[i]!),
      };
      assert.deepEqual(read, expected, `page ${i}`);
    }
    const [tablesRead, unknownRead, invalidRead] = batch.reads.slice(PAGES);
    assert.equal(tablesRead!.action, "list_tables");
    assert.equal(tablesRead!.status, 200);
    assert.equal(tablesRead!.table, null);
    assert.equal(tablesRead!.project_name, RUN.project_name);
    assert.equal(unknownRead!.action, "read_rows");
    assert.equal(unknownRead!.table, "nope");
    assert.equal(unknownRead!.status, 404);
    assert.equal(unknownRead!.error_code, "table_not_found");
    assert.equal(unknownRead!.rows_returned, null);
    assert.equal(unknownRead!.cursor_out_sha256, null);
    assert.equal(invalidRead!.status, 422);
    assert.equal(invalidRead!.error_code, "invalid_request");
    assert.equal(invalidRead!.caller_key_id, keyId);

    assert.ok(!text.includes(PUBLISH_KEY), "never the key");
    for (const c of cursors) if (c !== null) assert.ok(!text.includes(c), "never a cursor");
    // Timestamps left out: a stage such as "T1" is in every time of day from 10:00 to 19:59.
    const withoutTimes = text.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, "");
    for (const value of values.filter((v) => v.length > 1)) {
      assert.ok(!withoutTimes.includes(value), `never row data: ${value}`);
    }
    assert.ok(!text.includes("client_id"), "the publish service knows no data API client");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("publish service from its environment: DATA_API_AUDIT_FLUSH_SECONDS batches reads, and shutdown writes the batch", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-read-audit-env-"));
  try {
    await mkdir(join(dir, "secrets"));
    await mkdir(join(dir, "lsc"));
    await writeFile(join(dir, "secrets", "publishserviceapikey"), PUBLISH_KEY);
    const path = join(dir, "audit.jsonl");
    const service = await buildPublishService({
      SECRETS_MNT_PATH: join(dir, "secrets"),
      STATE_DIR: join(dir, "state"),
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: join(dir, "lsc"),
      AUDIT_LOG_PATH: path,
      DATA_API_AUDIT_FLUSH_SECONDS: "3600",
    }, () => {});
    try {
      for (let i = 0; i < 3; i++) {
        const res = await service.fetch(
          postJson("/data-publish/read/rows", aReadRequest(), PUBLISH_KEY),
        );
        assert.equal(res.status, 404);
        assert.equal((await res.json()).payload.code, "release_not_published");
      }
      const before = await readFile(path, "utf8").catch(() => "");
      assert.ok(!before.includes("data_reads"), "nothing written before the period ends");
    } finally {
      await service.close?.();
    }
    const records = await recordsOf(path);
    assert.equal(records.length, 1);
    const batch = records[0]!;
    assert.ok(batch.kind === "data_reads");
    assert.equal(batch.service, "publish");
    assert.deepEqual(batch.reads.map((r) => [r.status, r.error_code]), [
      [404, "release_not_published"],
      [404, "release_not_published"],
      [404, "release_not_published"],
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
