/**
 * Durable runs end to end (issue 13), with real service processes, a real PostgreSQL source and the gateway
 * in front: an async package watched over SSE by a streaming client, cancel during a slow PostgreSQL view,
 * attach on a retried request, the publish service's `/metrics`, and two publish processes sharing one
 * PostgreSQL run store (queue, cancel from the other process, SIGKILL then lease expiry and resume).
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox, quotePostgres } from "../support/databases.ts";
import {
  newServiceKeys,
  type ServiceProcess,
  startService,
  startStack,
  writeAllowList,
} from "../support/processes.ts";
import { parsePrometheusText, samplesOf, valueOf } from "../support/prometheus_text.ts";
import { callApi, pollRun, pollUntil, readEvents, type RunView } from "../support/runs_client.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const START = "20250611_093000";
const FINAL_STATES = ["succeeded", "failed", "cancelled", "interrupted"];

/**
 * `people` is a plain analysed table (so the source estimates its rows); the views read `series` through
 * `nap`, which sleeps 50 ms per row: `wide_slow` (60 rows of 4 kB, ~3 s, so the COPY streams in several
 * chunks), `medium_slow` (~4 s), `very_slow` (~100 s, only ever cancelled or killed).
 */
const DDL = `
  create function $s.nap(i int) returns int language plpgsql as $f$
  begin perform pg_sleep(0.05); return i; end $f$;
  create table $s.people (id int primary key, name text);
  insert into $s.people select i, 'name ' || i from generate_series(1, 500) as i;
  analyze $s.people;
  create table $s.series (id int primary key);
  insert into $s.series select generate_series(1, 2000);
  create view $s.wide_slow as
    select $s.nap(id) as id, repeat('x', 4000) as pad from $s.series where id <= 60;
  create view $s.medium_slow as select $s.nap(id) as id from $s.series where id <= 80;
  create view $s.very_slow as select $s.nap(id) as id from $s.series;
`;

/** Every file under `dir` with its content, relative paths sorted. */
async function snapshot(dir: string, prefix = ""): Promise<[string, string][]> {
  const found: [string, string][] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory()) found.push(...await snapshot(join(dir, entry.name), `${path}/`));
    else found.push([path, await readFile(join(dir, entry.name), "utf8")]);
  }
  return found.sort(([a], [b]) => a.localeCompare(b));
}

/** A test database sandbox with the schema above and the secrets a stack reads. */
async function setUp(pg: PostgresSandbox, schema: string, secrets: string, extra: object) {
  await pg.createRole();
  await pg.createSchema(schema, DDL);
  await pg.admin.unsafe(
    `grant execute on function ${quotePostgres(schema)}.nap(int) to ${quotePostgres(pg.role)}`,
  );
  await mkdir(secrets, { recursive: true });
  const files = { pguser: pg.role, pgpassword: pg.password, ...extra };
  for (const [name, value] of Object.entries(files)) await writeFile(join(secrets, name), value);
}

/** A package request for `tables` of `schema` into the filestore `LSC` as CSV. */
function packageRequest(project: string, schema: string, tables: string[]) {
  return {
    project_name: project,
    project_start_time: START,
    destination: { name: "LSC", type: "filestore", format: "csv" },
    source: {
      type: "postgresql",
      host_url: POSTGRES.host,
      port: POSTGRES.port,
      database: POSTGRES.database,
      credentials: { username_key: "pguser", password_key: "pgpassword" },
    },
    dataset: { schema_name: schema, tables: tables.map((name) => ({ name })) },
  };
}

/** How many sessions of `role` are running a query (that mentions `text`) right now. */
async function activeQueries(pg: PostgresSandbox, text = ""): Promise<number> {
  const [row] = await pg.admin<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
     where usename = ${pg.role} and state = 'active' and strpos(query, ${text}) > 0`;
  return row!.n;
}

Deno.test({
  name: "e2e runs through the gateway: async + SSE, cancel, attach on retry, /metrics",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const keys = newServiceKeys();
    const key = keys.approvalserviceapikey;
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-runs-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_runs");
    const services: ServiceProcess[] = [];
    try {
      await setUp(pg, schema, secrets, keys);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      const { approval, publish } = await startStack({
        secrets,
        storage,
        allowedSources: [allowedLocalPostgres()],
      }, services);
      const gateway = approval.url;
      const packageUrl = `${gateway}/project/package`;
      const async = { Prefer: "respond-async" };
      const scrape = async () => {
        const res = await fetch(`${publish.url}/metrics`, {
          headers: { "x-api-key": keys.publishserviceapikey },
        });
        assert.equal(res.status, 200);
        return parsePrometheusText(await res.text());
      };
      const metricsBefore = await scrape();
      let succeededId = "";

      await t.step("async package: 202, progress over SSE, outcome as the sync reply", async () => {
        const project = "RunsAsync";
        const request = packageRequest(project, schema, ["people", "wide_slow"]);
        const started = await callApi(packageUrl, key, { body: request, headers: async });
        assert.equal(started.status, 202, JSON.stringify(started.json));
        const run = started.json.payload as RunView;
        assert.equal(started.headers.get("location"), `/runs/${run.id}`);
        assert.equal(started.headers.get("preference-applied"), "respond-async");
        assert.equal(started.json.status, "success");
        assert.ok(["queued", "running"].includes(run.state), run.state);
        assert.equal("request" in run, false, "the view leaves the request out");

        const seen: RunView[] = [];
        for await (const event of readEvents(`${gateway}/runs/${run.id}/events`, key)) {
          assert.equal(event.event, "run");
          const view = JSON.parse(event.data) as RunView;
          assert.equal(event.id, String(view.version));
          seen.push(view);
        }
        const last = seen.at(-1)!;
        assert.equal(last.state, "succeeded", JSON.stringify(last));
        const versions = seen.map((v) => v.version);
        assert.deepEqual(versions, [...versions].sort((a, b) => a - b), "versions increase");
        assert.equal(new Set(versions).size, versions.length, "each version once");
        const slowBytes = seen.map((v) => v.tables.find((x) => x.name === "wide_slow")?.bytes ?? 0);
        for (let i = 1; i < slowBytes.length; i++) {
          assert.ok(slowBytes[i]! >= slowBytes[i - 1]!, `bytes never go down: ${slowBytes}`);
        }
        const progressing = seen.filter((v) =>
          v.state === "running" &&
          v.tables.some((x) => x.name === "wide_slow" && x.state === "running" && x.bytes > 0)
        );
        assert.ok(progressing.length >= 1, `a progress event mid-table: ${slowBytes}`);
        assert.ok(
          progressing[0]!.tables.find((x) => x.name === "wide_slow")!.bytes < slowBytes.at(-1)!,
          `progress seen before the end: ${slowBytes}`,
        );
        const people = last.tables.find((x) => x.name === "people")!;
        assert.deepEqual(
          people.expected_rows,
          { value: 500, estimate: true },
          JSON.stringify(seen),
        );
        assert.equal(last.tables.find((x) => x.name === "wide_slow")!.expected_rows, null);
        for (const table of last.tables) {
          assert.equal(table.state, "done");
          assert.match(table.sha512 ?? "", /^[0-9a-f]{128}$/);
        }

        const sync = await callApi(packageUrl, key, { body: request });
        assert.equal(sync.status, 200, JSON.stringify(sync.json));
        assert.equal(last.outcome?.status, 200);
        assert.deepEqual(last.outcome?.body, sync.json, "the run's outcome is the sync reply");

        const one = await callApi(`${gateway}/runs/${run.id}`, key);
        assert.equal(one.status, 200);
        assert.deepEqual(one.json.payload, last);
        const list = await callApi(`${gateway}/runs?project=${project}`, key);
        assert.equal(list.status, 200);
        assert.equal(list.json.payload.runs.length, 2, "the async run and the sync one");
        assert.equal(list.json.payload.runs[1].id, run.id, "newest first");
        assert.equal(list.json.payload.next, null);

        const after = last.version - 2;
        const resumed: RunView[] = [];
        const reconnect = readEvents(`${gateway}/runs/${run.id}/events`, key, {
          "Last-Event-ID": String(after),
        });
        for await (const event of reconnect) resumed.push(JSON.parse(event.data));
        assert.ok(resumed.length >= 1);
        assert.ok(resumed.every((v) => v.version > after), "only newer versions");
        assert.equal(resumed.at(-1)!.state, "succeeded");
        succeededId = run.id;
      });

      await t.step("cancel during a slow PostgreSQL view", async () => {
        const project = "RunsAsync";
        const staging = join(storage, "staging", project, START);
        const stagedBefore = await snapshot(staging);
        assert.ok(stagedBefore.length > 1, "the previous package is staged");
        const request = packageRequest(project, schema, ["people", "very_slow"]);
        // A synchronous caller starts the run and waits on it; the same request with
        // `Prefer: respond-async` attaches to that run (so the caller is known to be waiting).
        const attached = callApi(packageUrl, key, { body: request });
        const active = await pollUntil("the run", async () => {
          const list = await callApi(`${gateway}/runs?project=${project}&state=running`, key);
          return (list.json.payload.runs as RunView[])[0];
        });
        const started = await callApi(packageUrl, key, { body: request, headers: async });
        assert.equal(started.status, 202, JSON.stringify(started.json));
        const id = started.json.payload.id as string;
        assert.equal(id, active.id, "the async request attached to the running run");
        await pollUntil(
          "the slow view's query",
          async () => await activeQueries(pg, "very_slow") > 0 || undefined,
        );
        assert.equal((await callApi(`${gateway}/runs/${id}`, key)).json.payload.state, "running");

        const askedAt = performance.now();
        const cancelled = await callApi(`${gateway}/runs/${id}/cancel`, key, { method: "POST" });
        const tookMs = Math.round(performance.now() - askedAt);
        assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
        assert.equal(cancelled.json.payload.state, "cancelled", `after ${tookMs} ms`);
        assert.equal(cancelled.json.payload.outcome.status, 409);
        await pollUntil(
          "the source query to leave pg_stat_activity",
          async () => await activeQueries(pg) === 0 || undefined,
          10_000,
        );

        const waiting = await attached;
        assert.equal(waiting.status, 409, JSON.stringify(waiting.json));
        assert.equal(waiting.json.payload.code, "run_cancelled");
        assert.deepEqual(
          await snapshot(staging),
          stagedBefore,
          "staging unchanged, no partial file",
        );

        const again = await callApi(`${gateway}/runs/${id}/cancel`, key, { method: "POST" });
        assert.equal(again.status, 200);
        assert.deepEqual(again.json.payload, cancelled.json.payload, "unchanged");
        const finished = await callApi(`${gateway}/runs/${succeededId}/cancel`, key, {
          method: "POST",
        });
        assert.equal(finished.status, 409);
        assert.equal(finished.json.payload.code, "invalid_run_transition");
      });

      await t.step(
        "a retried request attaches; another request of the project queues",
        async () => {
          const project = "RunsRetry";
          const request = packageRequest(project, schema, ["medium_slow"]);
          const runsOf = async () =>
            (await callApi(`${gateway}/runs?project=${project}`, key)).json.payload
              .runs as RunView[];

          // The CLI's first try: it gives up (a gateway timeout) once the run has started.
          const giveUp = new AbortController();
          const firstTry = callApi(packageUrl, key, { body: request, signal: giveUp.signal })
            .then(() => "answered", () => "aborted");
          const running = await pollUntil("the first try's run", async () => {
            const runs = await runsOf();
            return runs.length === 1 && runs[0]!.state === "running" ? runs[0] : undefined;
          });
          giveUp.abort();
          assert.equal(await firstTry, "aborted");

          const other = await callApi(packageUrl, key, {
            body: packageRequest(project, schema, ["people"]),
            headers: async,
          });
          assert.equal(other.status, 202, JSON.stringify(other.json));
          const otherId = other.json.payload.id as string;
          assert.equal(other.json.payload.state, "queued");

          const retry = await callApi(packageUrl, key, { body: request });
          assert.equal(retry.status, 200, JSON.stringify(retry.json));
          assert.deepEqual(retry.json.payload, {
            data_retrieved: [{ file_path: `data/outputs/${schema}/medium_slow.csv` }],
          });
          const first = await pollRun(
            gateway,
            key,
            running.id,
            (r) => r.state === "succeeded",
            "run",
          );
          assert.deepEqual(retry.json, first.outcome?.body, "the retry got the run's reply");

          const queued = await pollRun(
            gateway,
            key,
            otherId,
            (r) => FINAL_STATES.includes(r.state),
            "the queued run",
          );
          assert.equal(queued.state, "succeeded", JSON.stringify(queued.outcome));
          assert.ok(
            queued.started_at! >= first.finished_at!,
            "it ran after the first had finished",
          );
          const runs = await runsOf();
          assert.deepEqual(
            runs.map((r) => r.id).sort(),
            [running.id, otherId].sort(),
            "one run each",
          );
        },
      );

      await t.step(
        "/metrics counts runs, rows and bytes, with no project in any label",
        async () => {
          // The CSV fast path does not count rows; a DuckDB package reads rows, so it counts them.
          const duckdb = await callApi(packageUrl, key, {
            body: {
              ...packageRequest("RunsMetrics", schema, ["people"]),
              destination: { name: "LSC", type: "filestore", format: "duckdb" },
            },
          });
          assert.equal(duckdb.status, 200, JSON.stringify(duckdb.json));
          const after = await scrape();
          const moved = (name: string, labels: Record<string, string>) =>
            valueOf(after, name, labels) - valueOf(metricsBefore, name, labels);
          const runs = (state: string) => moved("cr8tor_runs_total", { action: "package", state });
          assert.ok(runs("succeeded") >= 4, `succeeded: ${runs("succeeded")}`);
          assert.ok(runs("cancelled") >= 1, `cancelled: ${runs("cancelled")}`);
          assert.ok(runs("queued") >= 5, `queued: ${runs("queued")}`);
          const flow = { source_engine: "postgresql", destination: "filestore" };
          assert.ok(moved("cr8tor_bytes_total", flow) > 0, "bytes moved");
          assert.ok(moved("cr8tor_rows_total", flow) > 0, "rows moved");
          const labelValues = [...after.values()].flatMap((f) =>
            f.samples.flatMap((s) => Object.values(s.labels))
          );
          for (const project of ["RunsAsync", "RunsRetry", "RunsMetrics", schema]) {
            assert.ok(
              !labelValues.some((v) => v.includes(project)),
              `no label mentions ${project}`,
            );
          }
          assert.ok(samplesOf(after, "cr8tor_runs_total").length > 0);
        },
      );
    } finally {
      for (const service of services) await service.stop();
      await pg
        .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${pg.role}`;
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "e2e runs: two publish processes on one PostgreSQL run store",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const key = `publish-${crypto.randomUUID()}`;
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-runs2-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_runs2");
    const database = randomName("cr8_runstore");
    const services: ServiceProcess[] = [];
    try {
      await setUp(pg, schema, secrets, { publishserviceapikey: key, runstorepassword: "unused" });
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.admin.unsafe(`create database ${quotePostgres(database)}`);
      const allowList = await writeAllowList(work, [allowedLocalPostgres()]);
      const start = async () => {
        const service = await startService("publish", {
          SECRETS_MNT_PATH: secrets,
          ALLOWED_SOURCES_FILE: allowList,
          TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: storage,
          RUN_STORE: "postgresql",
          RUN_STORE_POSTGRESQL_HOST: POSTGRES.host,
          RUN_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
          RUN_STORE_POSTGRESQL_DATABASE: database,
          RUN_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
          RUN_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "runstorepassword",
          RUN_STORE_POSTGRESQL_SSLMODE: "disable",
          RUN_LEASE_SECONDS: "3",
        });
        services.push(service);
        return service;
      };
      const [a, b] = await Promise.all([start(), start()]);
      const project = "RunsShared";
      const post = (service: ServiceProcess, body: unknown) =>
        callApi(`${service.url}/data-publish/package`, key, {
          body,
          headers: { Prefer: "respond-async" },
        });

      await t.step("one project runs one at a time across both, FIFO", async () => {
        const first = await post(a, packageRequest(project, schema, ["medium_slow"]));
        assert.equal(first.status, 202, JSON.stringify(first.json));
        await pollRun(a.url, key, first.json.payload.id, (r) => r.state === "running", "running");
        const second = await post(b, packageRequest(project, schema, ["people"]));
        const third = await post(a, packageRequest(project, schema, ["wide_slow"]));
        assert.equal(second.status, 202);
        assert.equal(third.status, 202);
        const ids = [first, second, third].map((r) => r.json.payload.id as string);
        for (const service of [a, b]) {
          const list = await callApi(`${service.url}/runs?project=${project}`, key);
          assert.deepEqual(
            (list.json.payload.runs as RunView[]).map((r) => r.id),
            [...ids].reverse(),
            "each process lists every run, newest first",
          );
        }
        // Never two running at once, as seen from either process while they work.
        const done = await pollUntil("all three to finish", async () => {
          const runs = (await callApi(`${b.url}/runs?project=${project}`, key)).json.payload
            .runs as RunView[];
          assert.ok(runs.filter((r) => r.state === "running").length <= 1, "one running at most");
          return runs.every((r) => FINAL_STATES.includes(r.state)) ? runs : undefined;
        }, 60_000);
        const byId = new Map(done.map((r) => [r.id, r]));
        const [r1, r2, r3] = ids.map((id) => byId.get(id)!);
        for (const run of [r1!, r2!, r3!]) {
          assert.equal(run.state, "succeeded", JSON.stringify(run));
        }
        assert.ok(r2!.started_at! >= r1!.finished_at!, "the second waited for the first");
        assert.ok(r3!.started_at! >= r2!.finished_at!, "the third waited for the second");
      });

      await t.step("a cancel sent to the other process cancels the run", async () => {
        const started = await post(a, packageRequest(project, schema, ["very_slow"]));
        const id = started.json.payload.id as string;
        await pollRun(b.url, key, id, (r) => r.state === "running", "running");
        const cancelled = await callApi(`${b.url}/runs/${id}/cancel`, key, { method: "POST" });
        assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
        assert.equal(cancelled.json.payload.state, "cancelled");
        const seenByOwner = await callApi(`${a.url}/runs/${id}`, key);
        assert.equal(seenByOwner.json.payload.state, "cancelled");
        await pollUntil(
          "the owner to stop reading",
          async () => await activeQueries(pg) === 0 || undefined,
          15_000,
        );
      });

      await t.step(
        "SIGKILL one: its run is interrupted after the lease, the other resumes it",
        async () => {
          const started = await post(a, packageRequest(project, schema, ["people", "medium_slow"]));
          const id = started.json.payload.id as string;
          await pollRun(b.url, key, id, (r) => r.state === "running", "running");
          Deno.kill(a.pid, "SIGKILL");
          await a.exited;
          await pg.terminateSessions();
          const interrupted = await pollRun(
            b.url,
            key,
            id,
            (r) => r.state !== "running",
            "the lease to expire",
          );
          assert.equal(interrupted.state, "interrupted");
          const resumed = await callApi(`${b.url}/runs/${id}/resume`, key, { method: "POST" });
          assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
          assert.equal(resumed.headers.get("location"), `/runs/${id}`);
          const finished = await pollRun(
            b.url,
            key,
            id,
            (r) => FINAL_STATES.includes(r.state),
            "end",
          );
          assert.equal(finished.state, "succeeded", JSON.stringify(finished.outcome));
        },
      );
    } finally {
      for (const service of services) await service.stop();
      await pg
        .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${pg.role}`;
      await pg.admin.unsafe(`drop database if exists ${quotePostgres(database)} with (force)`)
        .catch(() => {});
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
