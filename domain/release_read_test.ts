import assert from "node:assert/strict";
import {
  checkReadLimit,
  decodeReadCursor,
  encodeReadCursor,
  InvalidCursorError,
  InvalidReadLimitError,
  MAX_READ_LIMIT,
  pageIsFull,
  readCursorKey,
  type ReadPosition,
  rowChars,
} from "./release_read.ts";

const KEY = readCursorKey("a service secret of some length, not a real one");
const TABLE = { dataset: "demo", table: "people" };

Deno.test("encodeReadCursor() round-trips every kind of position", async (t) => {
  const positions: ReadPosition[] = [
    { kind: "key", values: ["42", "2020-01-01 00:00:00+00", 'é,"x"'] },
    { kind: "file", sha512: "ab".repeat(64), offset: 1234, row: 17 },
    { kind: "row", version: "16384:16390", after: "(12,3)" },
  ];
  for (const position of positions) {
    await t.step(position.kind, () => {
      const cursor = encodeReadCursor(TABLE, position, KEY);
      assert.match(cursor, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      assert.deepEqual(decodeReadCursor(cursor, TABLE, KEY), position);
    });
  }
});

Deno.test("decodeReadCursor() refuses a cursor for another table", () => {
  const cursor = encodeReadCursor(TABLE, { kind: "key", values: ["1"] }, KEY);
  assert.throws(
    () => decodeReadCursor(cursor, { dataset: "demo", table: "other" }, KEY),
    (e) => e instanceof InvalidCursorError && /another table/.test(e.message),
  );
  assert.throws(
    () => decodeReadCursor(cursor, { dataset: "other", table: "people" }, KEY),
    InvalidCursorError,
  );
});

Deno.test("decodeReadCursor() refuses a tampered, foreign or malformed cursor", async (t) => {
  const cursor = encodeReadCursor(TABLE, { kind: "key", values: ["1"] }, KEY);
  const [body, tag] = cursor.split(".") as [string, string];
  const forged = btoa(JSON.stringify([1, "demo", "people", { kind: "key", values: ["999"] }]))
    .replaceAll("=", "");
  const cases: [string, string][] = [
    ["another body, same tag", `${forged}.${tag}`],
    ["a changed tag", `${body}.${tag.slice(0, -1)}${tag.endsWith("A") ? "B" : "A"}`],
    ["another key", encodeReadCursor(TABLE, { kind: "key", values: ["1"] }, readCursorKey("x"))],
    ["no tag", body],
    ["empty", ""],
    ["not base64url", "!!!.AAAAAAAAAAAAAAAAAAAAAA"],
  ];
  for (const [name, bad] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeReadCursor(bad, TABLE, KEY), InvalidCursorError);
    });
  }
  await t.step("a signed body that is not a position", () => {
    for (
      const position of [
        { kind: "key", values: [] },
        { kind: "key", values: [1] },
        { kind: "file", sha512: "x", offset: 0, row: 0 },
        { kind: "file", sha512: "ab".repeat(64), offset: -1, row: 0 },
        { kind: "row", version: "1" },
        { kind: "other" },
      ]
    ) {
      const odd = encodeReadCursor(TABLE, position as unknown as ReadPosition, KEY);
      assert.throws(() => decodeReadCursor(odd, TABLE, KEY), InvalidCursorError);
    }
  });
});

Deno.test("checkReadLimit() takes 1 to MAX_READ_LIMIT only", () => {
  assert.equal(checkReadLimit(1), 1);
  assert.equal(checkReadLimit(MAX_READ_LIMIT), MAX_READ_LIMIT);
  for (const bad of [0, -1, MAX_READ_LIMIT + 1, 1.5, Number.NaN]) {
    assert.throws(() => checkReadLimit(bad), InvalidReadLimitError);
  }
});

Deno.test("pageIsFull() stops at the limit or the character cap", () => {
  assert.equal(pageIsFull(9, 10, 10), false);
  assert.equal(pageIsFull(10, 10, 10), true);
  assert.equal(pageIsFull(1, 100, 10, 100), true);
  assert.equal(rowChars(["ab", null, ""]), 2);
});
