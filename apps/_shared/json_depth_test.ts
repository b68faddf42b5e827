import assert from "node:assert/strict";
import { jsonNestsDeeperThan } from "./json_depth.ts";

Deno.test("jsonNestsDeeperThan() counts arrays and objects, not brackets inside strings", async (t) => {
  const cases: [string, number, boolean][] = [
    ["{}", 1, false],
    ["{}", 0, true],
    ['{"a":[{"b":1}]}', 3, false],
    ['{"a":[{"b":1}]}', 2, true],
    ['{"a":"[[[[[[[[[["}', 1, false],
    ['{"a":"\\"[[[[[["}', 1, false],
    ['{"a":"\\\\",  "b":[[1]]}', 2, true],
    ["[1,[2],[3],[4]]", 2, false],
    ["[".repeat(100_000) + "]".repeat(100_000), 32, true],
    ["not json", 0, false],
  ];
  for (const [text, max, deeper] of cases) {
    await t.step(`${text.slice(0, 30)} (max ${max})`, () => {
      assert.equal(jsonNestsDeeperThan(text, max), deeper);
    });
  }
});
