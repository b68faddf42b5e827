import assert from "node:assert/strict";
import { causeChain, messageOf } from "./errors.ts";
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

Deno.test("causeChain() joins the messages of an error and its causes, once each", () => {
  const tls = new Error("invalid peer certificate: UnknownIssuer");
  const fetchError = new TypeError("fetch failed", { cause: new Error("", { cause: tls }) });
  assert.equal(causeChain(fetchError), "fetch failed: invalid peer certificate: UnknownIssuer");
  assert.equal(causeChain(new Error("same", { cause: new Error("same") })), "same");
  assert.equal(causeChain(new RangeError("")), "RangeError");
  assert.equal(causeChain("text"), "text");
});

Deno.test("causeChain() reads at most depth levels", () => {
  let error = new Error("level 5");
  for (let level = 4; level >= 1; level--) error = new Error(`level ${level}`, { cause: error });
  assert.equal(causeChain(error, 2), "level 1: level 2");
  assert.equal(causeChain(error), "level 1: level 2: level 3: level 4");
});
