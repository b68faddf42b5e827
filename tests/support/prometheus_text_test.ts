import assert from "node:assert/strict";
import { parsePrometheusText, samplesOf, valueOf } from "./prometheus_text.ts";

const VALID = [
  "# HELP req_total Requests, with a \\\\ and a \\n in the help.",
  "# TYPE req_total counter",
  'req_total{method="GET",route="/runs/:id"} 3',
  'req_total{method="POST",route="a \\"quoted\\" \\\\ value\\n"} 1.5e0',
  "# a comment",
  "",
  "# TYPE up gauge",
  "up 1 1700000000000",
  "# TYPE t_seconds histogram",
  't_seconds_bucket{le="0.5",route="x"} 1',
  't_seconds_bucket{le="1",route="x"} 2',
  't_seconds_bucket{le="+Inf",route="x"} 3',
  't_seconds_sum{route="x"} 4.25',
  't_seconds_count{route="x"} 3',
  "# TYPE odd gauge",
  "odd NaN",
  "# TYPE lower gauge",
  "lower Nan",
  "# TYPE big gauge",
  "big -inf",
  "",
].join("\n");

Deno.test("parsePrometheusText() reads families, labels, escapes and histograms", () => {
  const families = parsePrometheusText(VALID);
  assert.deepStrictEqual([...families.keys()], [
    "req_total",
    "up",
    "t_seconds",
    "odd",
    "lower",
    "big",
  ]);
  assert.equal(families.get("req_total")!.type, "counter");
  assert.equal(families.get("req_total")!.help, "Requests, with a \\ and a \n in the help.");
  assert.deepStrictEqual(samplesOf(families, "req_total", { method: "POST" })[0]!.labels, {
    method: "POST",
    route: 'a "quoted" \\ value\n',
  });
  assert.equal(valueOf(families, "req_total"), 4.5);
  assert.equal(valueOf(families, "up"), 1);
  assert.equal(valueOf(families, "t_seconds_count", { route: "x" }), 3);
  assert.equal(samplesOf(families, "t_seconds_bucket").length, 3);
  assert.ok(Number.isNaN(valueOf(families, "odd")));
  assert.ok(Number.isNaN(valueOf(families, "lower")));
  assert.equal(valueOf(families, "big"), -Infinity);
  assert.equal(valueOf(families, "missing_total"), 0);
});

Deno.test("parsePrometheusText() refuses what the format does not allow", async (t) => {
  const cases: [string, string][] = [
    ["no final newline", "# TYPE a counter\na 1"],
    ["a sample before any TYPE", "a 1\n"],
    ["a sample of another family", "# TYPE a counter\nb 1\n"],
    ["a second TYPE", "# TYPE a counter\n# TYPE a counter\n"],
    ["an unknown type", "# TYPE a meter\n"],
    ["a repeated series", '# TYPE a counter\na{x="1"} 1\na{x="1"} 2\n'],
    ["a bad label name", '# TYPE a counter\na{1x="1"} 1\n'],
    ["an unquoted label value", "# TYPE a counter\na{x=1} 1\n"],
    ["an unclosed label value", '# TYPE a counter\na{x="1} 1\n'],
    ["a repeated label", '# TYPE a counter\na{x="1",x="2"} 1\n'],
    ["a bad escape", '# TYPE a counter\na{x="\\t"} 1\n'],
    ["a bad value", "# TYPE a counter\na one\n"],
    ["a hexadecimal value", "# TYPE a counter\na 0x10\n"],
    ["two spaces", "# TYPE a counter\na  1\n"],
    ["a garbage line", "# TYPE a counter\ngarbage line here {{{\n"],
    ["a bucket without le", "# TYPE h histogram\nh_bucket 1\nh_count 1\n"],
    [
      "buckets that are not cumulative",
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    ],
    ["no +Inf bucket", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n'],
    ["+Inf differing from _count", '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 2\n'],
  ];
  for (const [name, text] of cases) {
    await t.step(name, () => {
      assert.throws(() => parsePrometheusText(text), SyntaxError);
    });
  }
});
