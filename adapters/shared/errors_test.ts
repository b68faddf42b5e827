import assert from "node:assert/strict";
import { messageOf } from "./errors.ts";
import { compareNames, groupBy } from "./collections.ts";

Deno.test("messageOf() reads the message of an error, a plain object and anything else", async (t) => {
  const coded = Object.assign(new Error(""), { code: "ECONNREFUSED" });
  const cases: [string, unknown, string][] = [
    ["an Error", new Error("boom"), "boom"],
    ["an Error without a message but with a code", coded, "ECONNREFUSED"],
    ["an Error without a message or code", new TypeError(""), "TypeError"],
    [
      "an AggregateError",
      new AggregateError([new Error("a refused"), new Error("b refused")], ""),
      "a refused; b refused",
    ],
    ["a plain object with a message", { message: "status error" }, "status error"],
    ["a string", "plain text", "plain text"],
    ["undefined", undefined, "undefined"],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => assert.equal(messageOf(input), expected));
  }
});

Deno.test("groupBy() keeps the order of the rows within each group", () => {
  const rows = [{ t: "b", c: 1 }, { t: "a", c: 2 }, { t: "b", c: 3 }];
  assert.deepEqual([...groupBy(rows, (r) => r.t)], [
    ["b", [{ t: "b", c: 1 }, { t: "b", c: 3 }]],
    ["a", [{ t: "a", c: 2 }]],
  ]);
});

Deno.test("compareNames() orders by code unit, upper case first", () => {
  assert.deepEqual(["b", "B", "a", "_"].sort(compareNames), ["B", "_", "a", "b"]);
});
