import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { NodeHttpFileClient } from "../../adapters/http/node_http_file_client.ts";
import { MemoryFileRegistry } from "../../adapters/memory/memory_file_registry.ts";
import { newRun, transition } from "../../domain/run.ts";
import { PUBLISH_KEY } from "../../tests/support/apps.ts";
import { postJson } from "../../tests/support/requests.ts";
import { withHttpSourcesService } from "../../tests/support/http_sources_service.ts";
import { memoryLogger } from "../_shared/log.ts";
import { HttpSources } from "./http_sources.ts";

const ASYNC = { prefer: "respond-async" };

function get(path: string): Request {
  return new Request(`http://test.local${path}`, { headers: { "x-api-key": PUBLISH_KEY } });
}

Deno.test("POST /http-sources/{name}/run fetches into staging; a second run fetches nothing; publish makes a bag", async () => {
  await withHttpSourcesService(async ({ world, server, service }) => {
    server.put("/a.csv", "id\n1\n");
    const res = await service.app.request(postJson("/http-sources/weekly/run", {}, PUBLISH_KEY));
    assert.equal(res.status, 200);
    const first = (await res.json()).payload;
    assert.deepEqual(first.files.map((f: { outcome: string }) => f.outcome), ["fetched"]);
    const start = first.project_start_time as string;

    const again = await service.app.request(postJson("/http-sources/weekly/run", {}, PUBLISH_KEY));
    const second = (await again.json()).payload;
    assert.deepEqual(second.files.map((f: { outcome: string }) => f.outcome), ["unchanged"]);
    assert.equal(second.project_start_time, "20261207_010011", "never the first run's folder");
    assert.equal(server.bodiesServed("/a.csv"), 1);

    const listed = (await (await service.app.request(get("/http-sources"))).json()).payload;
    assert.deepEqual(listed.sources[0].files, { processed: 1, failed: 0, ignored: 0 });
    assert.equal(listed.sources[0].next_run_at, "2026-12-07T02:00:00.000Z");
    const files = (await (await service.app.request(get("/http-sources/weekly/files"))).json())
      .payload.files;
    assert.equal(files[0].state, "processed");

    const published = await service.app.request(postJson("/data-publish/publish", {
      project_name: "Pr042",
      project_start_time: start,
      destination: { name: "LSC", type: "filestore", format: "csv" },
    }, PUBLISH_KEY));
    assert.equal(published.status, 200, await published.clone().text());
    const bagFile = await readFile(
      join(world.base, "production/Pr042", start, "data/outputs/weekly/a.csv"),
      "utf8",
    );
    assert.equal(bagFile, "id\n1\n");
  });
});

Deno.test("an unknown source is a 404; Prefer: respond-async gives the run at once", async () => {
  await withHttpSourcesService(async ({ server, service }) => {
    server.put("/a.csv", "id\n1\n");
    server.misbehaviours.set("/a.csv", { kind: "slow", delayMs: 300 });
    const missing = await service.app.request(postJson("/http-sources/nope/run", {}, PUBLISH_KEY));
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).payload.code, "unknown_http_source");
    const res = await service.app.request(
      postJson("/http-sources/weekly/run", {}, PUBLISH_KEY, ASYNC),
    );
    assert.equal(res.status, 202);
    const run = (await res.json()).payload;
    assert.equal(run.action, "fetch");
    const again = await service.app.request(
      postJson("/http-sources/weekly/run", {}, PUBLISH_KEY, ASYNC),
    );
    assert.equal((await again.json()).payload.id, run.id, "attached to the active run");
    const settled = await service.runner.settled(run.id);
    assert.equal(settled.run.state, "succeeded");
  });
});

Deno.test("the schedule runs a slot once, never beside an active run, and fails a stuck run", async () => {
  await withHttpSourcesService(async ({ server, sources, service, runStore, clock }) => {
    server.put("/a.csv", "id\n1\n");
    const log = memoryLogger();
    await sources.tick(service.runner, log); // first look: 01:00:10, nothing since 00:59:40
    assert.equal((await runStore.list({ limit: 10 })).runs.length, 1, "the 01:00 slot ran");
    const [slotRun] = (await runStore.list({ limit: 10 })).runs;
    assert.equal(slotRun!.project_start_time, "20261207_010000");
    await service.runner.settled(slotRun!.id);

    clock.now = new Date("2026-12-07T01:30:00.000Z");
    await sources.tick(service.runner, log);
    assert.equal((await runStore.list({ limit: 10 })).runs.length, 1, "no slot between");

    // A run of the source still running when the 02:00 slot comes: the slot is skipped.
    const busy = newRun(
      sources.runInput(sources.source("weekly"), clock.now, null),
      clock.now.toISOString(),
    );
    await runStore.create(busy, { exclusive: false });
    await runStore.update(busy.id, 1, transition(busy, "start", "2026-12-07T01:59:50.000Z"));
    clock.now = new Date("2026-12-07T02:00:30.000Z");
    await sources.tick(service.runner, log);
    assert.equal((await runStore.get(busy.id))?.state, "running");
    assert.equal((await runStore.list({ limit: 10 })).runs.length, 2, "the slot was skipped");

    // Still running at the 03:00 slot, past its source's run_timeout_ms: it is stuck, and failed.
    clock.now = new Date("2026-12-07T03:00:30.000Z");
    await sources.tick(service.runner, log);
    const failed = await runStore.get(busy.id);
    assert.equal(failed?.state, "failed");
    assert.equal(
      (failed?.outcome?.body as { payload: { code: string } }).payload.code,
      "http_source_run_timed_out",
    );
    const runs = (await runStore.list({ limit: 10 })).runs;
    assert.equal(runs.length, 3, "the 03:00 slot ran once the stuck run was failed");
    const slot = runs.find((r) => r.project_start_time === "20261207_030000");
    assert.ok(slot !== undefined, "the 03:00 slot ran");
    await service.runner.settled(slot.id);

    // Another replica, looking at the same slot for the first time, stores nothing new.
    const replica = new HttpSources({
      sources: [sources.source("weekly")],
      registry: new MemoryFileRegistry(),
      client: new NodeHttpFileClient(),
      now: () => new Date("2026-12-07T03:00:20.000Z"),
    });
    await replica.tick(service.runner, log);
    assert.equal((await runStore.list({ limit: 10 })).runs.length, 3);
  });
});
