import assert from "node:assert/strict";
import {
  type AuditEntry,
  auditKeyId,
  auditRequestFields,
  canonicalJson,
  chainAuditRecord,
  type DataReadsEntry,
  GENESIS_SHA256,
  publishedOutput,
  readAuditLine,
  type RefusalSummaryEntry,
  sha256Hex,
  verifyAuditChain,
} from "./audit.ts";

function anEntry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    kind: "operation",
    time: "2025-06-11T09:30:00.000Z",
    request_id: "req-1",
    service_request_id: "6b1f3c7e-8a52-4d0e-9c11-2f4e5d6a7b8c",
    service: "approval",
    caller_key_id: "0123456789abcdef",
    action: "/project/package",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    source_host: "db.internal",
    schema_name: "oncology",
    tables: ["tumour_stage"],
    destination: { type: "filestore", name: "LSC", format: "csv" },
    outcome: "success",
    status: 200,
    error_code: null,
    files: null,
    destination_tables: null,
    opal_resources: null,
    ...overrides,
  };
}

function aRefusalSummary(overrides: Partial<RefusalSummaryEntry> = {}): RefusalSummaryEntry {
  return {
    kind: "refusals",
    time: "2025-06-11T09:31:00.000Z",
    service: "approval",
    period_start: "2025-06-11T09:30:00.000Z",
    period_end: "2025-06-11T09:30:59.000Z",
    missing_key: 1200,
    wrong_key: 3,
    ...overrides,
  };
}

/** The lines of a trail of `count` records, chained; the fourth is a refusal summary. */
async function trailLines(count: number): Promise<string[]> {
  const lines: string[] = [];
  let previous: { seq: number; sha256: string } | undefined;
  for (let i = 1; i <= count; i++) {
    const entry = i === 4 ? aRefusalSummary() : anEntry({ request_id: `req-${i}` });
    const { record, line } = await chainAuditRecord(entry, previous);
    previous = { seq: record.seq, sha256: record.sha256 };
    lines.push(line);
  }
  return lines;
}

function text(lines: readonly string[]): string {
  return lines.map((line) => line + "\n").join("");
}

/** Replaces one field of a stored line, keeping the line canonical (but not re-hashing it). */
function edit(line: string, changes: Record<string, unknown>): string {
  return canonicalJson({ ...JSON.parse(line), ...changes });
}

/** Replaces fields and recomputes the record's own sha256, as a careful forger would. */
async function forge(line: string, changes: Record<string, unknown>): Promise<string> {
  const { sha256: _, ...content } = { ...JSON.parse(line), ...changes };
  return canonicalJson({ ...content, sha256: await sha256Hex(canonicalJson(content)) });
}

Deno.test("canonicalJson() sorts keys at every depth and adds no whitespace", () => {
  assert.equal(
    canonicalJson({ b: 1, a: [{ z: null, y: "é\n" }], c: { e: true, d: -0.5 } }),
    '{"a":[{"y":"é\\n","z":null}],"b":1,"c":{"d":-0.5,"e":true}}',
  );
  assert.equal(canonicalJson({ b: undefined, a: 1 }), '{"a":1}');
  assert.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
  assert.throws(() => canonicalJson(() => 1), TypeError);
});

Deno.test("sha256Hex() and auditKeyId() hash UTF-8 text", async () => {
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(await auditKeyId("abc"), "ba7816bf8f01cfea");
});

Deno.test("chainAuditRecord() links to the genesis, then to the previous record", async () => {
  const first = await chainAuditRecord(anEntry(), undefined);
  assert.equal(first.record.seq, 1);
  assert.equal(first.record.prev_sha256, GENESIS_SHA256);
  assert.equal(first.line, canonicalJson(first.record));
  const { sha256, ...content } = first.record;
  assert.equal(sha256, await sha256Hex(canonicalJson(content)));
  const second = await chainAuditRecord(anEntry(), first.record);
  assert.equal(second.record.seq, 2);
  assert.equal(second.record.prev_sha256, first.record.sha256);
});

Deno.test("chainAuditRecord() rejects an invalid entry", async (t) => {
  const invalid: [string, unknown][] = [
    ["a time that is not ISO 8601", anEntry({ time: "now" })],
    ["a caller key id that is not a key id", anEntry({ caller_key_id: "the-key" })],
    ["an unsafe request id", anEntry({ request_id: "a b" })],
    ["a request id of 129 characters", anEntry({ request_id: "r".repeat(129) })],
    ["a service request id that is not a UUID", anEntry({ service_request_id: "req-1" })],
    ["a key the record kind does not define", { ...anEntry(), note: "x" }],
    ["a negative refusal count", aRefusalSummary({ wrong_key: -1 })],
    ["a refusal summary with an operation's key", { ...aRefusalSummary(), status: 403 }],
    ["an unknown kind", { ...anEntry(), kind: "other" }],
  ];
  for (const [name, entry] of invalid) {
    await t.step(name, async () => {
      await assert.rejects(chainAuditRecord(entry as AuditEntry, undefined), TypeError);
    });
  }
});

Deno.test("readAuditLine() returns an intact record of either kind", async () => {
  const lines = await trailLines(4);
  const operation = await readAuditLine(lines[0]!);
  assert.ok("record" in operation && operation.record.kind === "operation");
  assert.equal(operation.record.request_id, "req-1");
  const summary = await readAuditLine(lines[3]!);
  assert.ok("record" in summary && summary.record.kind === "refusals");
  assert.deepEqual([summary.record.missing_key, summary.record.wrong_key], [1200, 3]);
});

Deno.test("verifyAuditChain() accepts an intact trail and an empty one", async () => {
  const lines = await trailLines(5);
  const result = await verifyAuditChain(text(lines));
  assert.equal(result.intact, true);
  assert.equal(result.records, 5);
  assert.deepEqual(result.intact && result.last, {
    seq: 5,
    sha256: JSON.parse(lines[4]!).sha256,
  });
  assert.deepEqual(await verifyAuditChain(""), { intact: true, records: 0 });
});

Deno.test("verifyAuditChain() reports the first broken record of a tampered trail", async (t) => {
  const lines = await trailLines(5);
  const cases: [string, () => Promise<string[]> | string[], number, RegExp][] = [
    [
      "an edited field",
      () => lines.with(2, edit(lines[2]!, { project_name: "Other" })),
      3,
      /edited: its content/,
    ],
    ["an edited status", () => lines.with(0, edit(lines[0]!, { status: 201 })), 1, /edited/],
    [
      "an edited last record",
      () => lines.with(4, edit(lines[4]!, { outcome: "error" })),
      5,
      /edited/,
    ],
    [
      "an added field",
      () => lines.with(1, edit(lines[1]!, { note: "x" })),
      2,
      /not an audit record: .*"note"/,
    ],
    [
      "a removed field",
      () => {
        const { tables: _, ...rest } = JSON.parse(lines[1]!);
        return lines.with(1, canonicalJson(rest));
      },
      2,
      /not an audit record: tables/,
    ],
    [
      "an edited field with its own sha256 recomputed",
      async () => lines.with(2, await forge(lines[2]!, { project_name: "Other" })),
      4,
      /does not chain to the record before it/,
    ],
    [
      "a reformatted line",
      () => lines.with(3, JSON.stringify(JSON.parse(lines[3]!), null, 1).replaceAll("\n", "")),
      4,
      /canonical form/,
    ],
    ["a deleted line", () => lines.toSpliced(2, 1), 3, /has seq 4 where 3 was expected/],
    ["a deleted first line", () => lines.slice(1), 1, /has seq 2 where 1 was expected/],
    [
      "two swapped lines",
      () => lines.with(1, lines[2]!).with(2, lines[1]!),
      2,
      /has seq 3 where 2/,
    ],
    ["a duplicated line", () => lines.toSpliced(2, 0, lines[1]!), 3, /has seq 2 where 3/],
    [
      "a renumbered first record",
      async () => lines.with(0, await forge(lines[0]!, { prev_sha256: "1".repeat(64) })),
      1,
      /does not start the chain/,
    ],
    ["an empty line", () => lines.toSpliced(2, 0, ""), 3, /is empty/],
    ["a line that is not JSON", () => lines.with(3, "{oops"), 4, /not valid JSON/],
    ["a JSON array", () => lines.with(3, "[]"), 4, /not a JSON object/],
    [
      "a byte-order mark before the first record",
      () => lines.with(0, "\uFEFF" + lines[0]!),
      1,
      /byte-order mark/,
    ],
    [
      "a byte-order mark before a later record",
      () => lines.with(2, "\uFEFF" + lines[2]!),
      3,
      /byte-order mark/,
    ],
    [
      "an added key with the sha256 recomputed, on the last record",
      async () => lines.with(4, await forge(lines[4]!, { note: "x" })),
      5,
      /not an audit record: .*"note"/,
    ],
    [
      "an edited refusal count with the sha256 recomputed",
      async () => lines.with(3, await forge(lines[3]!, { missing_key: 0 })),
      5,
      /does not chain to the record before it/,
    ],
    [
      "a carriage return at the end of a line",
      () => lines.with(1, lines[1]! + "\r"),
      2,
      /canonical/,
    ],
    ["a space before a record", () => lines.with(1, " " + lines[1]!), 2, /canonical/],
    [
      "a character written as an escape",
      () => lines.with(1, lines[1]!.replace('"approval"', '"appr\\u006fval"')),
      2,
      /canonical/,
    ],
  ];
  for (const [name, tamper, line, reason] of cases) {
    await t.step(name, async () => {
      const result = await verifyAuditChain(text(await tamper()));
      assert.equal(result.intact, false, name);
      assert.ok(!result.intact);
      assert.equal(result.line, line);
      assert.equal(result.records, line - 1);
      assert.match(result.reason, reason);
      assert.match(result.reason, new RegExp(`^line ${line} `));
    });
  }

  await t.step("a truncated last line", async () => {
    const whole = text(lines);
    const result = await verifyAuditChain(whole.slice(0, whole.length - 30));
    assert.deepEqual(
      { intact: result.intact, line: !result.intact && result.line },
      { intact: false, line: 5 },
    );
    assert.match(!result.intact ? result.reason : "", /not ended by a newline/);
  });

  await t.step("a last line without its newline, even if complete", async () => {
    const result = await verifyAuditChain(text(lines).slice(0, -1));
    assert.equal(!result.intact && result.line, 5);
  });
});

Deno.test("auditRequestFields() keeps only well-formed names and nothing else", async (t) => {
  await t.step("a transfer request", () => {
    assert.deepEqual(
      auditRequestFields({
        project_name: "Pr042",
        project_start_time: "20250611_093000",
        destination: { name: "LSC", type: "filestore", format: "csv" },
        source: {
          type: "postgresql",
          host_url: "db.internal",
          port: 5432,
          database: "research",
          credentials: { username_key: "sourceuser", password_key: "sourcepassword" },
        },
        dataset: {
          schema_name: "oncology",
          tables: [{ name: "a", columns: [{ name: "secret_column" }] }, { name: "b" }],
        },
      }),
      {
        project_name: "Pr042",
        project_start_time: "20250611_093000",
        source_host: "db.internal",
        schema_name: "oncology",
        tables: ["a", "b"],
        destination: { type: "filestore", name: "LSC", format: "csv" },
      },
    );
  });

  await t.step("a Databricks source records the URL's host only", () => {
    const fields = auditRequestFields({
      source: { type: "databrickssql", host_url: "https://user:pw@adb-1.azuredatabricks.net/x?y" },
    });
    assert.equal(fields.source_host, "adb-1.azuredatabricks.net");
  });

  await t.step("a PostgreSQL destination gets its defaults", () => {
    assert.deepEqual(auditRequestFields({ destination: { type: "postgresql" } }).destination, {
      type: "postgresql",
      name: "",
      format: "sql",
    });
  });

  await t.step("malformed values are dropped", () => {
    assert.deepEqual(
      auditRequestFields({
        project_name: "../../etc",
        project_start_time: "yesterday",
        destination: { type: "nope", name: "LSC" },
        source: { host_url: "db.internal; drop table x" },
        dataset: { schema_name: "a b", tables: [{ name: "ok" }, { name: "not ok" }, "x", null] },
      }),
      {
        project_name: null,
        project_start_time: null,
        source_host: null,
        schema_name: null,
        tables: ["ok"],
        destination: null,
      },
    );
  });

  for (const body of [null, "text", [], 42, { dataset: { tables: null } }]) {
    await t.step(`nothing from ${JSON.stringify(body)}`, () => {
      assert.deepEqual(Object.values(auditRequestFields(body)), [
        null,
        null,
        null,
        null,
        null,
        null,
      ]);
    });
  }
});

Deno.test("publishedOutput() reads files or tables and resources from a publish payload", () => {
  assert.deepEqual(
    publishedOutput({
      data_published: [{ file_path: "data/outputs/s/t.csv", hash_value: "ab", total_bytes: 3 }],
    }),
    { files: [{ path: "data/outputs/s/t.csv", sha512: "ab", bytes: 3 }] },
  );
  assert.deepEqual(
    publishedOutput({
      data_published: [{
        postgresql_table_name: "s.t",
        opal_resource_name: "tre_postgresql_s_t",
        opal_project_name: "P",
        opal_group_name: "P_group",
      }],
    }),
    { destination_tables: ["s.t"], opal_resources: ["tre_postgresql_s_t"] },
  );
  assert.equal(publishedOutput({ validation_status: "success" }), undefined);
});

function someReads(overrides: Partial<DataReadsEntry["reads"][number]> = {}): DataReadsEntry {
  const read = {
    time: "2026-12-07T03:00:00.000Z",
    request_id: "req-1",
    client_id: "pipeline-a",
    action: "read_rows" as const,
    release_id: "r1",
    dataset: "clinic",
    table: "people",
    status: 200,
    error_code: null,
    rows_returned: 10,
    cursor_in_sha256: null,
    cursor_out_sha256: "b".repeat(64),
    ...overrides,
  };
  return {
    kind: "data_reads",
    time: "2026-12-07T03:00:05.000Z",
    service: "approval",
    period_start: read.time,
    period_end: read.time,
    reads: [read],
  };
}

Deno.test("chainAuditRecord() chains a data reads record, and readAuditLine() reads it back", async () => {
  const first = await chainAuditRecord(anEntry(), undefined);
  const reads = await chainAuditRecord(someReads(), first.record);
  assert.equal(reads.record.seq, 2);
  const read = await readAuditLine(reads.line);
  assert.ok("record" in read && read.record.kind === "data_reads");
  assert.equal((await verifyAuditChain(`${first.line}\n${reads.line}\n`)).intact, true);
});

Deno.test("chainAuditRecord() rejects a data reads record with a cursor instead of its hash", async () => {
  await assert.rejects(
    chainAuditRecord(someReads({ cursor_in_sha256: "eyJpZCI6NDJ9" }), undefined),
    TypeError,
  );
  await assert.rejects(
    chainAuditRecord({ ...someReads(), reads: [] }, undefined),
    TypeError,
  );
});

Deno.test("a data read names exactly one of client_id (gateway) and caller_key_id (publish service)", async () => {
  const { client_id: _client, ...keyed } = someReads().reads[0]!;
  const publishRead = {
    ...keyed,
    caller_key_id: "0123456789abcdef",
    release_id: null,
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
  };
  const publish = { ...someReads(), service: "publish", reads: [publishRead] };
  const chained = await chainAuditRecord(publish, undefined);
  const read = await readAuditLine(chained.line);
  assert.ok("record" in read && read.record.kind === "data_reads");
  assert.deepEqual(read.record.reads[0], publishRead);
  // A gateway read as written before the publish service recorded its reads still reads back.
  assert.ok("record" in await readAuditLine((await chainAuditRecord(someReads(), undefined)).line));
  for (
    const bad of [
      { ...publishRead, client_id: "pipeline-a" },
      keyed,
      { ...publishRead, caller_key_id: "the-key-itself" },
      { ...publishRead, destination: { type: "filestore", name: "LSC", format: "csv" } },
    ]
  ) {
    await assert.rejects(chainAuditRecord({ ...publish, reads: [bad] }, undefined), TypeError);
  }
});
