import assert from "node:assert/strict";
import { hawkPayloadHash } from "../../adapters/hawk/hawk_request_verifier.ts";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { PostgresDestinationDatabase } from "../../adapters/postgres/postgres_destination.ts";
import { PostgresReleaseReader } from "../../adapters/postgres/postgres_release_reader.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import { tableExtracts } from "../../domain/catalog.ts";
import {
  DATASET,
  PEOPLE,
  PEOPLE_IN_KEY_ORDER,
} from "../../tests/contracts/release_reader_contract.ts";
import { FakeWorld, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { DestinationSandbox } from "../../tests/support/destination_databases.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import { createPublishApp } from "./app.ts";
import { testPublishLimits } from "../../tests/support/apps.ts";
import { createLogger } from "../_shared/log.ts";

const RUN = { project_name: "Pr042", project_start_time: "20250611_093000" };
const FILESTORE = { type: "filestore", name: "LSC" };

function aReadRequest(overrides: Record<string, unknown> = {}) {
  return {
    ...RUN,
    destination: FILESTORE,
    dataset: "oncology",
    table: "tumour_stage",
    limit: 2,
    cursor: null,
    orientation: "records",
    next_base: "/data/v1/releases/rel-1/tables/oncology.tumour_stage/rows?cursor=",
    ...overrides,
  };
}

async function packageAndPublish(app: OpenAPIHono): Promise<void> {
  const packaged = await app.request(
    postJson("/data-publish/package", aTransferRequest(), PUBLISH_KEY),
  );
  assert.equal(packaged.status, 200);
  const published = await app.request(
    postJson("/data-publish/publish", aPublishRequest(), PUBLISH_KEY),
  );
  assert.equal(published.status, 200);
}

async function read(app: OpenAPIHono, body: unknown) {
  const res = await app.request(postJson("/data-publish/read/rows", body, PUBLISH_KEY));
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { res, bytes, body: JSON.parse(new TextDecoder().decode(bytes)) };
}

/** Every page from the first, following the cursors; `between` runs after each page but the last. */
async function pageThrough(
  app: OpenAPIHono,
  request: Record<string, unknown>,
  between: () => Promise<void> = () => Promise.resolve(),
): Promise<unknown[]> {
  const rows: unknown[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const { res, bytes, body } = await read(app, { ...request, cursor });
    assert.equal(res.status, 200, JSON.stringify(body));
    const page = body.payload.rows ?? body.payload.records;
    // What the gateway relays the page by, without reading it.
    assert.equal(res.headers.get("x-rows-returned"), String(page.length));
    assert.equal(res.headers.get("content-length"), String(bytes.length));
    assert.equal(
      res.headers.get("x-hawk-payload-hash"),
      hawkPayloadHash(bytes, res.headers.get("content-type")!),
    );
    assert.equal(
      res.headers.get("link"),
      body.payload.next === null ? null : `<${body.payload.next}>; rel="next"`,
    );
    rows.push(...page);
    if (body.payload.next === null) return rows;
    const next = new URL(body.payload.next, "http://x");
    cursor = next.searchParams.get("cursor");
    assert.ok(cursor);
    await between();
  }
  throw new Error("paging does not end");
}

Deno.test("publish app /data-publish/read: a published CSV release, page by page", async (t) => {
  using world = new FakeWorld();
  const app = world.publishApp();

  await t.step("nothing published: release_not_published", async () => {
    const res = await app.request(
      postJson("/data-publish/read/tables", { ...RUN, destination: FILESTORE }, PUBLISH_KEY),
    );
    assert.equal(res.status, 404);
    assert.equal((await res.json()).payload.code, "release_not_published");
    const rows = await read(app, aReadRequest());
    assert.equal(rows.res.status, 404);
    assert.equal(rows.body.payload.code, "release_not_published");
  });

  await packageAndPublish(app);

  await t.step("tables: columns, key (none: file order)", async () => {
    const res = await app.request(
      postJson("/data-publish/read/tables", { ...RUN, destination: FILESTORE }, PUBLISH_KEY),
    );
    assert.equal(res.status, 200);
    const { payload } = await res.json();
    assert.deepEqual(payload.tables.map((t: { name: string }) => t.name), ["tumour_stage"]);
    assert.deepEqual(payload.tables[0].columns.map((c: { name: string }) => c.name), [
      "stage_id",
      "stage_label",
    ]);
    assert.deepEqual(payload.tables[0].key, []);
  });

  await t.step(
    "records and tabular pages give every row once, quoted and empty values exact",
    async () => {
      const records = await pageThrough(app, aReadRequest());
      assert.deepEqual(records, [
        { stage_id: "1", stage_label: "T1" },
        { stage_id: "2", stage_label: 'T2, "node"' },
        { stage_id: "3", stage_label: "" },
      ]);
      const tabular = await pageThrough(app, aReadRequest({ orientation: "tabular", limit: 1 }));
      assert.deepEqual(tabular, [
        ["1", "T1"],
        ["2", 'T2, "node"'],
        ["3", ""],
      ]);
    },
  );

  await t.step("next is next_base and the URI-encoded cursor", async () => {
    const { body } = await read(app, aReadRequest({ limit: 1 }));
    const next: string = body.payload.next;
    const base = aReadRequest().next_base;
    assert.ok(next.startsWith(base));
    assert.equal(
      next.slice(base.length),
      encodeURIComponent(decodeURIComponent(next.slice(base.length))),
    );
  });

  await t.step("a cursor altered, or for another table: invalid_cursor", async () => {
    const { body } = await read(app, aReadRequest({ limit: 1 }));
    const cursor = decodeURIComponent(body.payload.next.split("cursor=")[1]);
    const [data, tag] = cursor.split(".");
    for (
      const bad of [
        `${data}x.${tag}`,
        `${data}.${tag!.slice(0, -2)}AA`,
        "garbage",
      ]
    ) {
      const res = await read(app, aReadRequest({ cursor: bad }));
      assert.equal(res.res.status, 400);
      assert.equal(res.body.payload.code, "invalid_cursor");
    }
    const other = await read(app, aReadRequest({ cursor, table: "treatment_line" }));
    assert.equal(other.res.status, 400);
    assert.equal(other.body.payload.code, "invalid_cursor");
  });

  await t.step("an unknown table: table_not_found", async () => {
    const res = await read(app, aReadRequest({ table: "nope" }));
    assert.equal(res.res.status, 404);
    assert.equal(res.body.payload.code, "table_not_found");
  });

  await t.step("limits outside 1..10000 are refused, nothing read", async () => {
    for (const limit of [0, 10_001, 1.5, "10"]) {
      const res = await read(app, aReadRequest({ limit }));
      assert.equal(res.res.status, 422, String(limit));
      assert.equal(res.body.payload.code, "invalid_request");
    }
  });

  await t.step("without the key: 403", async () => {
    const res = await app.request(postJson("/data-publish/read/rows", aReadRequest(), "wrong"));
    assert.equal(res.status, 403);
  });

  await t.step("revoked: release_not_published", async () => {
    await world.filestore.revoke({ project: RUN.project_name, startTime: RUN.project_start_time }, {
      mode: "quarantine",
      releaseId: "rel-1",
      onRemoving: () => Promise.resolve(),
    });
    const res = await read(app, aReadRequest());
    assert.equal(res.res.status, 404);
    assert.equal(res.body.payload.code, "release_not_published");
  });
});

Deno.test({
  name:
    "publish app /data-publish/read: the PostgreSQL destination, every row once while republished",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sandbox = new DestinationSandbox();
    await sandbox.create();
    const destination = new PostgresDestinationDatabase(sandbox.options());
    const reader = new PostgresReleaseReader({
      ...sandbox.options(),
      readOnlyRole: sandbox.reader,
    });
    try {
      const run = { project: "Pr042", startTime: "20250611_093000" };
      const catalog = { name: DATASET, description: null, tables: [PEOPLE.table] };
      const publish = async () => {
        await destination.load(
          { ...run, schemaName: DATASET },
          new MemorySourceDatabase([catalog], new Map([[`${DATASET}.people`, [...PEOPLE.rows]]])),
          tableExtracts(catalog),
          { concurrency: 1, batchRows: 100 },
        );
        await destination.grantReadAccess(await destination.packagedTables(run));
      };
      await publish();
      using world = new FakeWorld();
      const app = createPublishApp({
        ...world.sourceAccess(),
        ...testPublishLimits(),
        apiKey: PUBLISH_KEY,
        log: createLogger("publish", () => {}),
        maxBodyBytes: 64 * 1024,
        filestores: new Map(),
        releaseReaders: { filestores: new Map(), postgresql: reader },
      });
      const request = {
        ...RUN,
        destination: { type: "postgresql", name: "" },
        dataset: DATASET,
        table: "people",
        limit: 4,
        cursor: null,
        orientation: "tabular",
        next_base: "?cursor=",
      };
      let republished = 0;
      const rows = await pageThrough(app, request, async () => {
        await publish();
        republished++;
      });
      assert.ok(republished >= 2);
      assert.deepEqual(rows, PEOPLE_IN_KEY_ORDER);
      const records = await pageThrough(app, { ...request, orientation: "records", limit: 5 });
      assert.deepEqual(
        records,
        PEOPLE_IN_KEY_ORDER.map((r) =>
          Object.fromEntries(PEOPLE.table.columns.map((c, i) => [c.name, r[i]]))
        ),
      );
      const tables = await app.request(
        postJson(
          "/data-publish/read/tables",
          { ...RUN, destination: request.destination },
          PUBLISH_KEY,
        ),
      );
      const people = (await tables.json()).payload.tables[0];
      assert.deepEqual(people.key, ["id"]);
      assert.equal(people.columns[2].type, "numeric(12,4)");
      assert.equal(people.columns[1].description, "The person's name");
    } finally {
      await reader.close();
      await destination.close();
      await sandbox.cleanup();
    }
  },
});
