import assert from "node:assert/strict";
import { AllowedSources, SourceNotAllowedError } from "./allowed_sources.ts";
import {
  fileDecision,
  type FileRecord,
  httpFileName,
  mediaTypeOf,
  nextAttemptAt,
  parseHttpFileSources,
  parseIndex,
  startTimeAt,
} from "./http_file_sources.ts";
import { isNonPublicAddress } from "./network_address.ts";

const source = {
  name: "weekly",
  urls: ["https://files.example/a.csv"],
  destination: "LSC",
  project_name: "Pr042",
};

Deno.test("parseHttpFileSources fills the limits and refuses what is not a source", () => {
  const [parsed] = parseHttpFileSources(JSON.stringify({ sources: [source] }));
  assert.equal(parsed!.limits.max_file_bytes, 1024 * 1024 * 1024);
  assert.ok(parsed!.limits.content_types.includes("text/csv"));
  const bad: unknown[] = [
    { ...source, index: { url: "https://files.example/", format: "html" } },
    { ...source, urls: undefined },
    { ...source, urls: ["ftp://files.example/a"] },
    { ...source, urls: ["https://user:pw@files.example/a"] },
    { ...source, name: "Weekly/.." },
    { ...source, schedule: "every day" },
    { ...source, index: undefined, urls: undefined, extra: 1 },
    {
      ...source,
      urls: undefined,
      index: { url: "https://f.example/", format: "json", pattern: "(" },
    },
  ];
  for (const entry of bad) {
    assert.throws(() => parseHttpFileSources(JSON.stringify({ sources: [entry] })));
  }
  assert.throws(() => parseHttpFileSources(JSON.stringify({ sources: [source, source] })));
});

Deno.test("parseIndex resolves links, keeps safe matching names once", () => {
  const html = `<a href="a.csv">a</a><A HREF='/data/b.csv'>b</A><a href="c.txt">c</a>
    <a href="a.csv#x">again</a><a href="../..%2Fetc%2Fpasswd">x</a><a href="javascript:alert(1)">j</a>
    <a href=https://other.example/d.csv>d</a>`;
  assert.deepEqual(parseIndex(html, "html", "https://files.example/data/", "\\.csv$"), [
    "https://files.example/data/a.csv",
    "https://files.example/data/b.csv",
    "https://other.example/d.csv",
  ]);
  const json = JSON.stringify({ files: ["x.csv", { url: "y.csv" }, { href: "z.csv" }, 3] });
  assert.deepEqual(parseIndex(json, "json", "https://files.example/i.json", undefined), [
    "https://files.example/x.csv",
    "https://files.example/y.csv",
    "https://files.example/z.csv",
  ]);
  assert.throws(() => parseIndex("{}", "json", "https://files.example/", undefined), SyntaxError);
});

Deno.test("httpFileName keeps only safe last segments", () => {
  assert.equal(httpFileName("https://f.example/dir/a_1.csv?x=1"), "a_1.csv");
  assert.equal(httpFileName("https://f.example/dir/"), undefined);
  assert.equal(httpFileName("https://f.example/%2e%2e"), undefined);
  assert.equal(httpFileName("https://f.example/a%2Fb.csv"), undefined);
  assert.equal(httpFileName("https://f.example/.hidden"), undefined);
});

const record = (over: Partial<FileRecord>): FileRecord => ({
  source: "weekly",
  url: "https://files.example/a.csv",
  state: "processed",
  etag: '"v1"',
  last_modified: "Mon, 07 Dec 2026 00:00:00 GMT",
  bytes: 3,
  sha512: null,
  attempts: 0,
  next_attempt_at: null,
  run_id: "r1",
  reason: null,
  updated_at: "2026-12-07T00:00:00.000Z",
  ...over,
});

Deno.test("fileDecision: new files fetched, known ones conditionally, failed ones after backoff", () => {
  const now = new Date("2026-12-07T01:00:00.000Z");
  assert.deepEqual(fileDecision(undefined, now), { kind: "fetch", etag: null, lastModified: null });
  assert.deepEqual(fileDecision(record({}), now), {
    kind: "fetch",
    etag: '"v1"',
    lastModified: "Mon, 07 Dec 2026 00:00:00 GMT",
  });
  const later = "2026-12-07T01:05:00.000Z";
  assert.deepEqual(fileDecision(record({ state: "failed", next_attempt_at: later }), now), {
    kind: "wait",
    until: later,
  });
  assert.equal(
    fileDecision(record({ state: "failed", next_attempt_at: "2026-12-07T00:59:00.000Z" }), now)
      .kind,
    "fetch",
  );
});

Deno.test("nextAttemptAt doubles the wait per failure, up to a day", () => {
  const at = new Date("2026-12-07T00:00:00.000Z");
  assert.equal(nextAttemptAt(1, at), "2026-12-07T00:01:00.000Z");
  assert.equal(nextAttemptAt(3, at), "2026-12-07T00:04:00.000Z");
  assert.equal(nextAttemptAt(40, at), "2026-12-08T00:00:00.000Z");
});

Deno.test("mediaTypeOf and startTimeAt", () => {
  assert.equal(mediaTypeOf("Text/CSV; charset=utf-8"), "text/csv");
  assert.equal(mediaTypeOf(null), undefined);
  assert.equal(startTimeAt(new Date("2026-12-07T01:02:03.456Z")), "20261207_010203");
});

Deno.test("isNonPublicAddress covers loopback, private, link-local and mapped forms", () => {
  for (
    const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.20.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
    ]
  ) assert.equal(isNonPublicAddress(a), true, a);
  for (const a of ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    assert.equal(isNonPublicAddress(a), false, a);
  }
});

Deno.test("authorizeHttp matches scheme, canonical host and port, never credentials", () => {
  const allowed = AllowedSources.parse(JSON.stringify({
    sources: [],
    http_sources: [
      { host: "files.example" },
      { host: "127.0.0.1", port: 8080, scheme: "http", private: true },
    ],
  }));
  assert.equal(allowed.authorizeHttp("https://FILES.example./a.csv").port, 443);
  assert.equal(allowed.authorizeHttp("http://127.1:8080/a").allowPrivate, true);
  for (
    const url of [
      "http://files.example/a.csv",
      "https://files.example:8443/a.csv",
      "https://other.example/a.csv",
      "https://u:p@files.example/a.csv",
      "http://127.0.0.1:8081/a",
      "not a url",
    ]
  ) {
    assert.throws(() => allowed.authorizeHttp(url), SourceNotAllowedError, url);
  }
});
