import assert from "node:assert/strict";
import { MemoryReleaseReader } from "../adapters/memory/memory_release_reader.ts";
import { InvalidCursorError, readCursorKey } from "../domain/release_read.ts";
import { PostgresqlDestinationNotConfiguredError } from "../ports/destination.ts";
import { UnknownDestinationError } from "../ports/filestore.ts";
import { ReleaseNotReadableError } from "../ports/release_reader.ts";
import {
  listReleaseTables,
  readReleaseRows,
  ReadRowsRequest,
  type ReleaseReaders,
} from "./read_release.ts";

const KEY = readCursorKey("test key material for cursors");
const RUN = { project: "Pr042", startTime: "20250611_093000" };

function readers(): { readers: ReleaseReaders; memory: MemoryReleaseReader } {
  const memory = new MemoryReleaseReader();
  memory.publish(RUN, [{
    table: {
      name: "t",
      dataset: "d",
      key: ["id"],
      columns: [
        { name: "id", type: "integer", description: null },
        { name: "v", type: "text", description: "a value" },
      ],
    },
    rows: [["1", "a"], ["2", null], ["3", ""]],
  }]);
  return { memory, readers: { filestores: new Map([["LSC", memory]]) } };
}

function aRequest(overrides: Record<string, unknown> = {}): ReadRowsRequest {
  return ReadRowsRequest.parse({
    project_name: RUN.project,
    project_start_time: RUN.startTime,
    destination: { type: "filestore", name: "lsc" },
    dataset: "d",
    table: "t",
    limit: 2,
    orientation: "tabular",
    next_base: "/next?cursor=",
    ...overrides,
  });
}

Deno.test("readReleaseRows() pages with a signed cursor and builds next from next_base", async () => {
  const { readers: r } = readers();
  const first = await readReleaseRows(aRequest(), { readers: r, cursorKey: KEY });
  assert.equal(first.rowCount, 2);
  assert.deepEqual(first.rows, { kind: "values", values: [["1", "a"], ["2", null]] });
  assert.ok(first.cursor !== null);
  assert.equal(first.next, `/next?cursor=${encodeURIComponent(first.cursor)}`);
  const second = await readReleaseRows(aRequest({ cursor: first.cursor }), {
    readers: r,
    cursorKey: KEY,
  });
  assert.deepEqual(second.rows, { kind: "values", values: [["3", ""]] });
  assert.equal(second.next, null);
  assert.equal(second.cursor, null);
});

Deno.test("readReleaseRows() refuses a cursor of another key or table before reading", async () => {
  const { readers: r } = readers();
  const first = await readReleaseRows(aRequest(), { readers: r, cursorKey: KEY });
  await assert.rejects(
    readReleaseRows(aRequest({ cursor: first.cursor }), {
      readers: r,
      cursorKey: readCursorKey("another key"),
    }),
    InvalidCursorError,
  );
  await assert.rejects(
    readReleaseRows(aRequest({ cursor: first.cursor, table: "u" }), {
      readers: r,
      cursorKey: KEY,
    }),
    InvalidCursorError,
  );
});

Deno.test("readReleaseRows() and listReleaseTables() name unknown destinations and revoked runs", async () => {
  const { readers: r, memory } = readers();
  await assert.rejects(
    readReleaseRows(aRequest({ destination: { type: "filestore", name: "OTHER" } }), {
      readers: r,
      cursorKey: KEY,
    }),
    UnknownDestinationError,
  );
  await assert.rejects(
    listReleaseTables(aRequest({ destination: { type: "postgresql" } }), { readers: r }),
    PostgresqlDestinationNotConfiguredError,
  );
  assert.equal((await listReleaseTables(aRequest(), { readers: r }))[0]?.name, "t");
  memory.revoke(RUN);
  await assert.rejects(listReleaseTables(aRequest(), { readers: r }), ReleaseNotReadableError);
});

Deno.test("ReadRowsRequest refuses limits outside 1..10000", () => {
  for (const limit of [0, 10_001, 2.5]) {
    assert.equal(ReadRowsRequest.safeParse({ ...aRequest(), limit }).success, false);
  }
});
