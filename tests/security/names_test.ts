/**
 * Names that cannot alias (issue 12, point 5): a project name is a folder name as it is, so every form
 * that could stand for another name, or for another folder on some filesystem, is refused with 422 in
 * the CR8TOR envelope before anything is read, connected or written: decomposed (NFD) text, unpaired
 * surrogates sent as JSON `\ud800` escapes, U+FFFD and the undecodable bytes that become it, look-alikes
 * of refused characters (fullwidth solidus), invisible and bidirectional controls, trailing dots and
 * spaces, Windows device names and NTFS stream colons. The other names a request carries obey the same
 * Unicode rules.
 *
 * Then the two spellings of one folder: `Café` in NFC and in NFD cannot both exist (the NFD one is
 * refused), and two names that differ only in case, which are one folder on a case-insensitive share,
 * never run at the same time, while two different projects do.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { AuditRecord } from "../../domain/audit.ts";
import {
  type MemoryRows,
  MemorySourceDatabase,
} from "../../adapters/memory/memory_source_database.ts";
import type { SchemaCatalog, TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import type { SqlConnectionOptions } from "../../ports/source_database.ts";
import { FakeWorld, PUBLISH_KEY } from "../support/apps.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../support/requests.ts";
import { POST_ROUTES, type Service, SERVICE_KEYS } from "./_hostile_cases.ts";
import {
  assertErrorEnvelope,
  assertLeaksNothing,
  changedPaths,
  type HostileWorld,
  hostileWorld,
  snapshotTree,
} from "./_hostile_world.ts";

type Json = Record<string, unknown>;

/** One way of spelling a project name that must be refused. */
interface NameAttack {
  readonly name: string;
  /** The project name as a JavaScript string; the request is JSON-encoded from it. */
  readonly value?: string;
  /** The project name exactly as it appears between the quotes of the JSON text. */
  readonly jsonText?: string;
  /** Raw bytes put between the quotes of the JSON text (not UTF-8 text). */
  readonly bytes?: readonly number[];
}

const ATTACKS: readonly NameAttack[] = [
  { name: "'Café' decomposed (NFD), aliasing the composed 'Café'", value: "Cafe\u0301" },
  { name: "an unpaired high surrogate as a JSON escape", jsonText: "Pr042\\ud800" },
  { name: "an unpaired low surrogate as a JSON escape", jsonText: "\\udc00Pr042" },
  { name: "a reversed surrogate pair as JSON escapes", jsonText: "Pr\\ude00\\ud83d042" },
  { name: "U+FFFD, the replacement character", value: "Pr042\ufffd" },
  { name: "an invalid UTF-8 byte, which decodes to U+FFFD", bytes: [0x50, 0x72, 0xff, 0x34] },
  { name: "a fullwidth solidus (U+FF0F)", value: "Pr042\uff0fPWNED" },
  { name: "fullwidth dots and solidus", value: "\uff0e\uff0e\uff0fPWNED" },
  { name: "a right-to-left override (U+202E)", value: "Pr042\u202etxt.exe" },
  { name: "a zero-width joiner (U+200D)", value: "Pr\u200d042" },
  { name: "a zero-width space (U+200B)", value: "Pr042\u200b" },
  { name: "a no-break space (U+00A0) that looks like a space", value: "CR8TOR\u00a0Demo" },
  { name: "a trailing dot, which Windows drops", value: "Pr042." },
  { name: "a trailing space, which Windows drops", value: "Pr042 " },
  { name: "a leading space", value: " Pr042" },
  { name: "an NTFS alternate data stream colon", value: "Pr042:stream" },
  { name: "a Windows device name", value: "NUL" },
  { name: "a wildcard", value: "Pr04?" },
];

/** The JSON text of `body` with its `project_name` replaced by the attack's spelling, as bytes. */
function bodyBytes(body: Json, attack: NameAttack): Uint8Array<ArrayBuffer> {
  const marker = "@@PROJECT_NAME@@";
  const text = JSON.stringify({ ...body, project_name: attack.value ?? marker });
  if (attack.value !== undefined) return new TextEncoder().encode(text);
  const [before, after] = text.split(marker) as [string, string];
  const encoder = new TextEncoder();
  const middle = attack.bytes !== undefined
    ? Uint8Array.from(attack.bytes)
    : encoder.encode(attack.jsonText!);
  const head = encoder.encode(before);
  const tail = encoder.encode(after);
  const out = new Uint8Array(head.length + middle.length + tail.length);
  out.set(head, 0);
  out.set(middle, head.length);
  out.set(tail, head.length + middle.length);
  return out;
}

function appOf(world: HostileWorld, service: Service) {
  if (service === "approval") return world.approvalApp();
  return service === "metadata" ? world.metadataApp() : world.publishApp();
}

function isPublishRoute(path: string): boolean {
  return path === "/project/publish" || path === "/data-publish/publish";
}

/**
 * Sends `body` to a route of a fresh hostile world and checks the refusal: 422 `invalid_request` naming
 * exactly `issues`, the CR8TOR envelope, no file changed anywhere, no connection, no secret read, one
 * audit record of the refusal, nothing secret in the reply, logs or audit trail.
 */
async function assertRefused(
  service: Service,
  path: string,
  body: Uint8Array<ArrayBuffer>,
  issues: readonly string[],
): Promise<void> {
  using world = hostileWorld();
  const before = await snapshotTree(world.root);
  const forbidden = [world.root, world.base, world.secretsDir, Deno.cwd()];

  const res = await appOf(world, service).request(
    new Request(`http://test.local${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": SERVICE_KEYS[service] },
      body,
    }),
  );
  const text = await res.text();

  assert.equal(res.status, 422, text.slice(0, 500));
  const payload = assertErrorEnvelope(JSON.parse(text), { code: "invalid_request", forbidden });
  assert.deepEqual(payload.issues?.map((i) => i.path), issues, payload.detail);
  assert.deepEqual(changedPaths(before, await snapshotTree(world.root)), [], "files changed");
  assert.deepEqual(world.connections, [], "no connection was made");
  assert.deepEqual(world.fileSecrets.reads, [], "no secret was read");
  const records = (world.audit?.records ?? []).filter((r: AuditRecord) => r.service === service);
  assert.equal(records.length, 1, "one audit record");
  assert.equal(records[0]!.status, 422);
  assert.equal(records[0]!.error_code, "invalid_request");
  if (issues.includes("project_name")) {
    assert.equal(records[0]!.project_name, null, "the refused name is not recorded as a project");
  }
  assertLeaksNothing(world.audit?.text() ?? "", []);
  assertLeaksNothing(world.allLogLines().join("\n"), []);
}

Deno.test("names: project names that could alias another are refused on every route, changing nothing", async (t) => {
  for (const attack of ATTACKS) {
    for (const [service, path] of POST_ROUTES) {
      await t.step(`${attack.name}: ${service} ${path}`, async () => {
        const body = isPublishRoute(path) ? aPublishRequest() : aTransferRequest();
        await assertRefused(service, path, bodyBytes(body, attack), ["project_name"]);
      });
    }
  }
});

Deno.test("names: the other names a request carries obey the same Unicode rules", async (t) => {
  const dataset = aTransferRequest().dataset as Json;
  const source = aTransferRequest().source as Json;
  const fields: [path: string, body: (bad: string) => Json][] = [
    ["dataset.name", (bad) => aTransferRequest({ dataset: { ...dataset, name: bad } })],
    [
      "dataset.schema_name",
      (bad) => aTransferRequest({ dataset: { ...dataset, schema_name: bad } }),
    ],
    [
      "dataset.tables.0.name",
      (bad) => aTransferRequest({ dataset: { ...dataset, tables: [{ name: bad }] } }),
    ],
    [
      "dataset.tables.0.columns.0.name",
      (bad) =>
        aTransferRequest({
          dataset: { ...dataset, tables: [{ name: "tumour_stage", columns: [{ name: bad }] }] },
        }),
    ],
    [
      "destination.name",
      (bad) => aTransferRequest({ destination: { name: bad, type: "filestore", format: "csv" } }),
    ],
    ["source.database", (bad) => aTransferRequest({ source: { ...source, database: bad } })],
    [
      "source.credentials.password_key",
      (bad) =>
        aTransferRequest({
          source: { ...source, credentials: { username_key: "sourceuser", password_key: bad } },
        }),
    ],
  ];
  const spellings: [label: string, value: string][] = [
    ["NFD", "onc\u0301"],
    ["an unpaired surrogate", "onc\ud800"],
    ["U+FFFD", "onc\ufffd"],
  ];
  for (const [path, body] of fields) {
    for (const [label, value] of spellings) {
      await t.step(`${path} with ${label} through the gateway's package`, async () => {
        const bytes = new TextEncoder().encode(JSON.stringify(body(value)));
        // JSON.stringify writes a lone surrogate as a \ud800 escape, so it reaches the parser intact.
        if (label === "an unpaired surrogate") {
          assert.match(new TextDecoder().decode(bytes), /\\ud800/);
        }
        await assertRefused("approval", "/project/package", bytes, [path]);
      });
    }
  }
});

Deno.test("names: 'Café' composed and decomposed cannot both exist; the composed one is its own folder", async () => {
  using world = new FakeWorld();
  const app = world.publishApp();
  const nfc = "Caf\u00e9 Study";
  const nfd = "Cafe\u0301 Study";
  assert.equal(nfd.normalize("NFC"), nfc);

  const first = await app.request(
    postJson("/data-publish/package", aTransferRequest({ project_name: nfc }), PUBLISH_KEY),
  );
  assert.equal(first.status, 200, await first.text());
  const staged = await snapshotTree(join(world.base, "staging"));

  const second = await app.request(
    postJson("/data-publish/package", aTransferRequest({ project_name: nfd }), PUBLISH_KEY),
  );
  const json = await second.json();
  assert.equal(second.status, 422);
  assert.equal(json.payload.code, "invalid_request");
  assert.match(json.payload.detail, /NFC/);
  assert.deepEqual(await snapshotTree(join(world.base, "staging")), staged);
  // The folder's name is the composed name, byte for byte.
  assert.deepEqual(await readdir(join(world.base, "staging")), [nfc]);
  assert.deepEqual(
    [...new TextEncoder().encode((await readdir(join(world.base, "staging")))[0]!)].slice(0, 5),
    [0x43, 0x61, 0x66, 0xc3, 0xa9],
  );
});

/** When one read of rows started and ended (`performance.now()`). */
interface ReadInterval {
  start: number;
  end: number;
}

/**
 * Lets each read of rows wait, up to a limit, until a second read has started. Two reads that may run
 * together meet at once; two reads that are serialised never meet, so the first waits out the limit.
 */
class Rendezvous {
  #arrived = 0;
  readonly #met = Promise.withResolvers<void>();

  constructor(readonly limitMs: number) {}

  async arrive(): Promise<void> {
    this.#arrived += 1;
    if (this.#arrived >= 2) this.#met.resolve();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.limitMs);
    });
    try {
      await Promise.race([this.#met.promise, waited]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The in-memory source, recording when each read of rows runs and holding it at the rendezvous first. */
class RecordingSource extends MemorySourceDatabase {
  constructor(
    catalogs: readonly SchemaCatalog[],
    rows: MemoryRows,
    readonly reads: ReadInterval[],
    readonly rendezvous: Rendezvous,
  ) {
    super(catalogs, rows);
  }

  override async *readRows(
    extract: TableExtract,
    options?: { batchRows?: number },
  ): AsyncIterable<CanonicalRow[]> {
    const interval = { start: performance.now(), end: Number.NaN };
    this.reads.push(interval);
    try {
      await this.rendezvous.arrive();
      yield* super.readRows(extract, options);
    } finally {
      interval.end = performance.now();
    }
  }
}

/** A FakeWorld whose source records its reads and holds each at a rendezvous. */
class RecordingWorld extends FakeWorld {
  readonly reads: ReadInterval[] = [];
  readonly rendezvous = new Rendezvous(1_500);

  override sourceAccess() {
    const access = super.sourceAccess();
    const connect = (options: SqlConnectionOptions) => {
      this.connections.push(options);
      const db = new RecordingSource(this.catalogs, this.rows, this.reads, this.rendezvous);
      this.opened.push(db);
      return Promise.resolve(db);
    };
    return { ...access, connectors: { postgresql: connect, mysql: connect } };
  }
}

function overlap(a: ReadInterval, b: ReadInterval): boolean {
  return a.start < b.end && b.start < a.end;
}

/** Packages two projects at the same time and returns when each read of rows ran. */
async function packageTogether(first: string, second: string): Promise<ReadInterval[]> {
  using world = new RecordingWorld();
  const app = world.publishApp();
  const replies = await Promise.all([first, second].map((project_name) =>
    app.request(
      postJson("/data-publish/package", aTransferRequest({ project_name }), PUBLISH_KEY),
    )
  ));
  for (const res of replies) assert.equal(res.status, 200, await res.text());
  assert.equal(world.reads.length, 2, "one read of rows per request");
  return world.reads;
}

Deno.test("names: two names that differ only in case never package at the same time", async () => {
  const [a, b] = await packageTogether("Demo Study", "DEMO study");
  assert.ok(!overlap(a!, b!), `the reads overlapped: ${JSON.stringify([a, b])}`);
  assert.ok(b!.start >= a!.end, "the second read starts after the first ended");
});

Deno.test("names: two different projects do package at the same time (the check above can fail)", async () => {
  const [a, b] = await packageTogether("Demo Study", "Other Study");
  assert.ok(overlap(a!, b!), `the reads did not overlap: ${JSON.stringify([a, b])}`);
});
