/**
 * A small strict parser of the Prometheus text exposition format (version 0.0.4), written apart from
 * prom-client so that tests check `/metrics` against the format rather than against the library that
 * wrote it. (The npm package `parse-prometheus-text-format` installs, but drops the labels, `_sum` and
 * `_count` of every histogram prom-client writes, and accepts garbage lines.)
 *
 * Strict means: every line is a `# HELP`, a `# TYPE`, another comment, blank, or a well-formed sample;
 * a family's `# TYPE` comes once and before its samples; a sample belongs to the family declared before
 * it (`_bucket`, `_sum`, `_count` for a histogram); no series appears twice; a histogram's buckets carry
 * `le`, are cumulative, and end in `+Inf` equal to `_count`. Anything else throws a `SyntaxError` naming
 * the line.
 *
 * @module
 */

/** One sample line. */
export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, ... for a histogram). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The kinds `# TYPE` may name. */
export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

/** One metric family: its `# HELP`, `# TYPE` and samples. */
export interface Family {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<MetricType, readonly string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

/**
 * Parses an exposition into its families, by name.
 *
 * @throws {SyntaxError} on the first line or rule the text breaks.
 */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const series = new Set<string>();
  let current: Family | undefined;
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  else if (text !== "") {
    throw new SyntaxError("Cannot parse exposition: it must end with a newline");
  }
  lines.forEach((line, index) => {
    const where = `line ${index + 1} ("${line}")`;
    const fail = (why: string): never => {
      throw new SyntaxError(`Cannot parse ${where}: ${why}`);
    };
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (m === null) return; // an ordinary comment
      const [, keyword, name, rest = ""] = m as unknown as [string, string, string, string?];
      if (!METRIC_NAME.test(name)) fail("bad metric name");
      if (keyword === "HELP") {
        if (helps.has(name)) fail("second HELP for the family");
        helps.set(name, unescape(rest, false, fail));
        return;
      }
      if (!TYPES.has(rest as MetricType)) fail(`unknown type "${rest}"`);
      if (families.has(name)) fail("second TYPE for the family");
      current = { name, type: rest as MetricType, help: "", samples: [] };
      families.set(name, current);
      return;
    }
    const sample = parseSample(line, fail);
    if (current === undefined) fail("sample before any TYPE");
    const family = current!;
    const suffix = SUFFIXES[family.type].find((s) => sample.name === family.name + s);
    if (suffix === undefined) fail(`sample does not belong to family ${family.name}`);
    if (family.type === "histogram" && suffix === "_bucket" && sample.labels.le === undefined) {
      fail("bucket without le");
    }
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (series.has(key)) fail("series repeated");
    series.add(key);
    family.samples.push(sample);
  });
  for (const family of families.values()) {
    (family as { help: string }).help = helps.get(family.name) ?? "";
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

/** Parses `name{a="b",...} value [timestamp]`. */
function parseSample(line: string, fail: (why: string) => never): Sample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) fail("no metric name");
  const name = line.slice(0, nameEnd);
  if (!METRIC_NAME.test(name)) fail("bad metric name");
  const labels: Record<string, string> = {};
  let at = nameEnd;
  if (line[at] === "{") {
    at++;
    while (line[at] !== "}") {
      const eq = line.indexOf("=", at);
      if (eq < 0) fail("label without =");
      const labelName = line.slice(at, eq);
      if (!LABEL_NAME.test(labelName)) fail(`bad label name "${labelName}"`);
      if (line[eq + 1] !== '"') fail("label value not quoted");
      let end = eq + 2;
      while (end < line.length && line[end] !== '"') end += line[end] === "\\" ? 2 : 1;
      if (end >= line.length) fail("label value not closed");
      if (labelName in labels) fail(`label "${labelName}" repeated`);
      labels[labelName] = unescape(line.slice(eq + 2, end), true, fail);
      at = end + 1;
      if (line[at] === ",") at++;
      else if (line[at] !== "}") fail("expected , or } after a label");
    }
    at++;
  }
  const rest = line.slice(at);
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (m === null) fail("expected one space, a value and an optional timestamp");
  return { name, labels, value: parseValue(m![1]!, fail) };
}

/**
 * A sample value: a decimal float, or `NaN`, `+Inf`, `-Inf`. Like Prometheus's own parser (Go's
 * `strconv.ParseFloat`), the names are matched ignoring case: prom-client writes a NaN as `Nan`.
 */
function parseValue(raw: string, fail: (why: string) => never): number {
  if (/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(raw)) return Number(raw);
  if (/^nan$/i.test(raw)) return NaN;
  const inf = /^([+-]?)inf$/i.exec(raw);
  if (inf !== null) return inf[1] === "-" ? -Infinity : Infinity;
  return fail(`bad value "${raw}"`);
}

/** Undoes `\\`, `\n` and (in label values) `\"`. */
function unescape(text: string, quoted: boolean, fail: (why: string) => never): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && quoted) return '"';
    return fail(`bad escape "\\${c}"`);
  });
}

/** A histogram's buckets per series: with `le`, cumulative, ending in `+Inf` equal to `_count`. */
function checkHistogram(family: Family): void {
  const bySeries = new Map<string, { buckets: Sample[]; count?: number }>();
  const keyOf = (labels: Readonly<Record<string, string>>) =>
    JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
  for (const sample of family.samples) {
    const key = keyOf(sample.labels);
    const entry = bySeries.get(key) ?? { buckets: [] };
    bySeries.set(key, entry);
    if (sample.name.endsWith("_bucket")) entry.buckets.push(sample);
    if (sample.name.endsWith("_count")) entry.count = sample.value;
  }
  for (const [key, { buckets, count }] of bySeries) {
    const fail = (why: string): never => {
      throw new SyntaxError(`Cannot accept histogram ${family.name} ${key}: ${why}`);
    };
    const bounds = buckets.map((b) => Number(b.labels.le === "+Inf" ? Infinity : b.labels.le));
    if (bounds.some((b, i) => Number.isNaN(b) || (i > 0 && b <= bounds[i - 1]!))) {
      fail("bucket bounds are not increasing numbers");
    }
    if (buckets.some((b, i) => i > 0 && b.value < buckets[i - 1]!.value)) {
      fail("buckets are not cumulative");
    }
    if (bounds.at(-1) !== Infinity) fail("no +Inf bucket");
    if (count !== buckets.at(-1)!.value) fail("+Inf bucket differs from _count");
  }
}

/** The samples of `name` (a sample name such as `x_total` or `x_count`) whose labels include `labels`. */
export function samplesOf(
  families: ReadonlyMap<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Sample[] {
  return [...families.values()].flatMap((f) => f.samples).filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}

/** The sum of the values of {@link samplesOf}; 0 when there are none. */
export function valueOf(
  families: ReadonlyMap<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  return samplesOf(families, name, labels).reduce((sum, s) => sum + s.value, 0);
}
