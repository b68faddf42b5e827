import assert from "node:assert/strict";
import { compareNewestFirst, decodeKeysetCursor, encodeKeysetCursor } from "./keyset_cursor.ts";

Deno.test("a keyset cursor reads back as the position it was made from", () => {
  const position = { created_at: "2026-12-06T12:00:00.000Z", id: "é/+=?" };
  const cursor = encodeKeysetCursor(position);
  assert.match(cursor, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeKeysetCursor(cursor), position);
});

Deno.test("anything else is not a cursor", () => {
  for (const bad of ["", "not-a-cursor", btoa("[1,2]"), btoa('["yesterday","x"]'), "%%%"]) {
    assert.equal(decodeKeysetCursor(bad), undefined, bad);
  }
});

Deno.test("newest first, then the larger id", () => {
  const a = { created_at: "2026-12-06T12:00:00.000Z", id: "a" };
  const b = { created_at: "2026-12-06T12:00:00.000Z", id: "b" };
  const older = { created_at: "2026-12-05T12:00:00.000Z", id: "z" };
  assert.deepEqual([older, a, b].sort(compareNewestFirst), [b, a, older]);
  assert.equal(compareNewestFirst(a, a), 0);
});
