import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryFileRegistry } from "../adapters/memory/memory_file_registry.ts";
import { LocalFilestore } from "../adapters/filesystem/local_filestore.ts";
import { NodeHttpFileClient } from "../adapters/http/node_http_file_client.ts";
import { AllowedSources } from "../domain/allowed_sources.ts";
import { type HttpFileSource, parseHttpFileSources } from "../domain/http_file_sources.ts";
import { TEST_MANIFEST_KEY } from "../tests/support/manifest_key.ts";
import { HttpFileServer } from "../tests/support/http_file_server.ts";
import { RunInterruptedError } from "../domain/interruption.ts";
import {
  fetchHttpFiles,
  type FetchHttpFilesPorts,
  type FetchHttpFilesRun,
} from "./fetch_http_files.ts";

interface World {
  readonly server: HttpFileServer;
  readonly registry: MemoryFileRegistry;
  readonly base: string;
  readonly ports: FetchHttpFilesPorts;
  clock: Date;
  fetch(
    source: HttpFileSource,
    startTime?: string,
    run?: Partial<FetchHttpFilesRun>,
  ): ReturnType<typeof fetchHttpFiles>;
  source(over: Record<string, unknown>): HttpFileSource;
}

async function withWorld(
  body: (w: World) => Promise<void>,
  allow: { private?: boolean } = { private: true },
): Promise<void> {
  await using server = await HttpFileServer.start();
  const base = await mkdtemp(join(tmpdir(), "cr8tor-http-files-"));
  try {
    await mkdir(join(base, "staging"));
    await mkdir(join(base, "production"));
    const registry = new MemoryFileRegistry();
    const world: World = {
      server,
      registry,
      base,
      clock: new Date("2026-12-07T01:00:00.000Z"),
      ports: undefined as unknown as FetchHttpFilesPorts,
      fetch(source, startTime = "20261207_010000", run = {}) {
        return fetchHttpFiles(source, this.ports, {
          runId: crypto.randomUUID(),
          startTime,
          signal: new AbortController().signal,
          onProgress: () => {},
          ...run,
        });
      },
      source(over) {
        return parseHttpFileSources(JSON.stringify({
          sources: [{
            name: "weekly",
            index: { url: `${server.origin}/index.json`, format: "json", pattern: "\\.csv$" },
            destination: "LSC",
            project_name: "Pr042",
            ...over,
          }],
        }))[0]!;
      },
    };
    (world as { ports: FetchHttpFilesPorts }).ports = {
      allowedSources: new AllowedSources([], [{
        host: "127.0.0.1",
        port: server.port,
        scheme: "http",
        private: allow.private ?? false,
      }]),
      client: new NodeHttpFileClient(),
      registry,
      filestore: new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY }),
      now: () => world.clock,
    };
    await body(world);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

const sha512 = (text: string) => createHash("sha512").update(text).digest("hex");
const outcomes = (r: Awaited<ReturnType<typeof fetchHttpFiles>>) =>
  Object.fromEntries(r.files.map((f) => [new URL(f.url).pathname, f.reason ?? f.outcome]));

Deno.test("a second run fetches nothing when nothing changed; a changed listing fetches only what is new", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    w.server.put("/b.csv", "id\n2\n");
    w.server.put("/notes.txt", "not matched");
    const source = w.source({});
    const first = await w.fetch(source);
    assert.deepEqual(outcomes(first), { "/a.csv": "fetched", "/b.csv": "fetched" });
    const staged = await readFile(
      join(w.base, "staging/Pr042/20261207_010000/data/outputs/weekly/a.csv"),
      "utf8",
    );
    assert.equal(staged, "id\n1\n");
    assert.equal(first.staged.find((f) => f.path.endsWith("a.csv"))?.sha512, sha512("id\n1\n"));
    const records = await w.registry.records("weekly");
    assert.deepEqual(records.map((r) => [r.state, r.sha512]), [
      ["processed", sha512("id\n1\n")],
      ["processed", sha512("id\n2\n")],
    ]);

    const served = w.server.bodiesServed();
    const second = await w.fetch(source, "20261207_020000");
    assert.deepEqual(outcomes(second), { "/a.csv": "unchanged", "/b.csv": "unchanged" });
    assert.equal(second.staged.length, 0);
    assert.equal(w.server.bodiesServed(), served + 1, "only the index was served again");
    assert.ok(w.server.requests.filter((r) => r.status === 304).every((r) => r.conditional));

    w.server.put("/b.csv", "id\n2\n3\n");
    w.server.put("/c.csv", "id\n4\n");
    const third = await w.fetch(source, "20261207_030000");
    assert.deepEqual(outcomes(third), {
      "/a.csv": "unchanged",
      "/b.csv": "fetched",
      "/c.csv": "fetched",
    });
    assert.deepEqual(third.staged.map((f) => f.path), [
      "data/outputs/weekly/b.csv",
      "data/outputs/weekly/c.csv",
    ]);
    assert.equal(w.server.bodiesServed("/a.csv"), 1);
  });
});

Deno.test("an HTML index works the same", async () => {
  await withWorld(async (w) => {
    w.server.put("/x.csv", "x\n");
    const result = await w.fetch(
      w.source({ index: { url: `${w.server.origin}/index.html`, format: "html" } }),
    );
    assert.deepEqual(outcomes(result), { "/x.csv": "fetched" });
  });
});

Deno.test("a file failing with 500 is recorded failed and retried only after its backoff", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    w.server.misbehaviours.set("/a.csv", { kind: "status", status: 500 });
    const source = w.source({});
    assert.deepEqual(outcomes(await w.fetch(source)), { "/a.csv": "http_file_refused" });
    const [failed] = await w.registry.records("weekly");
    assert.equal(failed?.state, "failed");
    assert.equal(failed?.attempts, 1);
    assert.equal(failed?.next_attempt_at, "2026-12-07T01:01:00.000Z");

    const asked = w.server.requests.length;
    assert.deepEqual(outcomes(await w.fetch(source, "20261207_010030")), { "/a.csv": "waiting" });
    assert.equal(w.server.requests.length, asked + 1, "only the index was asked for");

    w.clock = new Date("2026-12-07T01:01:00.000Z");
    assert.deepEqual(outcomes(await w.fetch(source, "20261207_010100")), {
      "/a.csv": "http_file_refused",
    });
    const [again] = await w.registry.records("weekly");
    assert.equal(again?.attempts, 2);
    assert.equal(again?.next_attempt_at, "2026-12-07T01:03:00.000Z");

    w.server.misbehaviours.delete("/a.csv");
    w.clock = new Date("2026-12-07T01:03:00.000Z");
    assert.deepEqual(outcomes(await w.fetch(source, "20261207_010300")), { "/a.csv": "fetched" });
    const [processed] = await w.registry.records("weekly");
    assert.equal(processed?.state, "processed");
    assert.equal(processed?.attempts, 0);
    assert.equal(processed?.next_attempt_at, null);
  });
});

Deno.test("a slow answer, a stalled body, a truncated body and an off-host redirect fail the file, not the run", async () => {
  await withWorld(async (w) => {
    w.server.put("/slow.csv", "id\n1\n");
    w.server.put("/stall.csv", "id\n" + "1\n".repeat(1000));
    w.server.put("/cut.csv", "id\n" + "1\n".repeat(1000));
    w.server.put("/away.csv", "id\n1\n");
    w.server.put("/moved.csv", "id\n1\n");
    w.server.put("/ok.csv", "id\n9\n");
    w.server.put("/loop.csv", "id\n1\n");
    w.server.misbehaviours.set("/loop.csv", { kind: "redirect", location: "/loop.csv" });
    w.server.misbehaviours.set("/slow.csv", { kind: "slow", delayMs: 3000 });
    w.server.misbehaviours.set("/stall.csv", { kind: "stall", sendBytes: 10, delayMs: 3000 });
    w.server.misbehaviours.set("/cut.csv", { kind: "truncate", sendBytes: 10 });
    w.server.misbehaviours.set("/away.csv", {
      kind: "redirect",
      location: `http://localhost:${w.server.port}/ok.csv`,
    });
    w.server.misbehaviours.set("/moved.csv", { kind: "redirect", location: "/ok.csv" });
    const result = await w.fetch(w.source({ limits: { timeout_ms: 300 } }));
    assert.deepEqual(outcomes(result), {
      "/slow.csv": "http_file_unreachable",
      "/stall.csv": "http_file_unreachable",
      "/cut.csv": "http_file_truncated",
      "/away.csv": "http_file_refused",
      "/loop.csv": "http_file_refused",
      "/moved.csv": "fetched",
      "/ok.csv": "fetched",
    });
    assert.equal(
      w.server.requests.filter((r) => r.path === "/loop.csv").length,
      6,
      "a redirect loop is followed 5 times, then refused",
    );
    assert.deepEqual(result.staged.map((f) => f.path), [
      "data/outputs/weekly/moved.csv",
      "data/outputs/weekly/ok.csv",
    ]);
    const states = Object.fromEntries(
      (await w.registry.records("weekly")).map((r) => [new URL(r.url).pathname, r.state]),
    );
    assert.deepEqual(states, {
      "/away.csv": "failed",
      "/cut.csv": "failed",
      "/loop.csv": "failed",
      "/moved.csv": "processed",
      "/ok.csv": "processed",
      "/slow.csv": "failed",
      "/stall.csv": "failed",
    });
  });
});

Deno.test("a file over the size limit or of another type is ignored until it changes", async () => {
  await withWorld(async (w) => {
    w.server.put("/big.csv", "x".repeat(5000));
    w.server.put("/page.csv", "<html>", "text/html");
    w.server.put("/small.csv", "id\n1\n");
    const source = w.source({ limits: { max_file_bytes: 1000 } });
    const result = await w.fetch(source);
    assert.deepEqual(outcomes(result), {
      "/big.csv": "http_file_too_large",
      "/page.csv": "http_content_type_refused",
      "/small.csv": "fetched",
    });
    const records = await w.registry.records("weekly");
    assert.deepEqual(records.map((r) => r.state), ["ignored", "ignored", "processed"]);
    const bodies = w.server.bodiesServed();
    assert.deepEqual(outcomes(await w.fetch(source, "20261207_020000")), {
      "/big.csv": "unchanged",
      "/page.csv": "unchanged",
      "/small.csv": "unchanged",
    });
    assert.equal(w.server.bodiesServed(), bodies + 1);
  });
});

Deno.test("a host resolving to a private address is refused unless its entry allows it", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    await assert.rejects(w.fetch(w.source({})), { code: "http_index_unavailable" });
    const listed = w.source({ index: undefined, urls: [`${w.server.origin}/a.csv`] });
    assert.deepEqual(outcomes(await w.fetch(listed)), { "/a.csv": "http_address_not_allowed" });
    assert.equal(w.server.requests.length, 0, "nothing was sent");
  }, { private: false });
});

Deno.test("a URL whose host is not in the allow-list is ignored, never requested", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    const source = w.source({
      index: undefined,
      urls: [`http://localhost:${w.server.port}/a.csv`, `${w.server.origin}/a.csv`],
    });
    const result = await w.fetch(source);
    assert.deepEqual(result.files.map((f) => f.reason ?? f.outcome), [
      "source_not_allowed",
      "http_file_name_duplicate",
    ]);
    assert.equal(w.server.requests.length, 0);
  });
});

Deno.test("the same bytes under new validators are not staged again", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    const source = w.source({});
    await w.fetch(source);
    w.server.put("/a.csv", "id\n1\n"); // a new ETag and Last-Modified, the same content
    const again = await w.fetch(source, "20261207_020000");
    assert.deepEqual(outcomes(again), { "/a.csv": "unchanged" });
    assert.equal(again.staged.length, 0);
    const [record] = await w.registry.records("weekly");
    assert.equal(record?.etag, w.server.files.get("/a.csv")?.etag, "the new validators are kept");
    const third = await w.fetch(source, "20261207_030000");
    assert.deepEqual(outcomes(third), { "/a.csv": "unchanged" });
    assert.equal(w.server.bodiesServed("/a.csv"), 2);
  });
});

Deno.test("an interrupted fetch keeps the files it finished for its resumed run", async () => {
  await withWorld(async (w) => {
    w.server.put("/a.csv", "id\n1\n");
    w.server.put("/b.csv", "id\n2\n");
    const source = w.source({});
    const stop = new AbortController();
    const done = new Map<string, string>();
    await assert.rejects(
      w.fetch(source, "20261207_010000", {
        signal: stop.signal,
        onProgress: (p) => {
          if (p.done === undefined || p.done.sha512 === null) return;
          done.set(p.table, p.done.sha512);
          stop.abort(new RunInterruptedError("run-1"));
        },
      }),
      RunInterruptedError,
    );
    assert.deepEqual([...done.keys()], ["a.csv"]);
    assert.deepEqual(await w.registry.records("weekly"), [], "nothing recorded: nothing staged");

    const resumed = await w.fetch(source, "20261207_010000", { reuse: done });
    assert.deepEqual(outcomes(resumed), { "/a.csv": "fetched", "/b.csv": "fetched" });
    assert.equal(w.server.bodiesServed("/a.csv"), 1, "a.csv was kept, not fetched again");
    assert.deepEqual(resumed.staged.map((f) => f.sha512), [sha512("id\n1\n"), sha512("id\n2\n")]);
  });
});
