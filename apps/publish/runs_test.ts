import assert from "node:assert/strict";
import postgres from "postgres";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { quotePostgresIdentifier } from "../../adapters/postgres/postgres_dialect.ts";
import { postgresClientOptions } from "../../adapters/postgres/postgres_source_database.ts";
import type { SqlConnectionOptions } from "../../ports/source_database.ts";
import type { RunStore } from "../../ports/run_store.ts";
import { postgresConnectionOptions } from "../../tests/support/databases.ts";
import { FakeWorld, PUBLISH_KEY, testPublishLimits } from "../../tests/support/apps.ts";
import { aTransferRequest, postJson } from "../../tests/support/requests.ts";
import {
  ignorePostgres,
  LOCAL_DATABASES_WITHOUT_TLS,
  POSTGRES,
  randomName,
} from "../../tests/support/services.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { memoryLogger } from "../_shared/log.ts";
import { createPublishService, type PublishDeps } from "./app.ts";
import { runStoreFromEnv } from "./main.ts";

const PACKAGE = "/data-publish/package";
const ASYNC = { prefer: "respond-async" };

/** A publish service on `world`, whose source connections wait for `gate` when one is given. */
function serviceOf(
  world: FakeWorld,
  options: { gate?: Promise<void>; runStore?: RunStore } = {},
  overrides: Partial<PublishDeps> = {},
) {
  const connect = async (connection: SqlConnectionOptions) => {
    await options.gate;
    return await world.connect(connection);
  };
  return createPublishService({
    ...world.sourceAccess(),
    connectors: { postgresql: connect, mysql: connect },
    apiKey: PUBLISH_KEY,
    log: world.publishLog,
    maxBodyBytes: 64 * 1024,
    filestores: new Map([["LSC", world.filestore]]),
    ...testPublishLimits(),
    ...(options.runStore === undefined ? {} : { runStore: options.runStore }),
    ...overrides,
  });
}

function get(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://test.local${path}`, {
    headers: { "x-api-key": PUBLISH_KEY, ...headers },
  });
}

function post(path: string): Request {
  return new Request(`http://test.local${path}`, {
    method: "POST",
    headers: { "x-api-key": PUBLISH_KEY },
  });
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function waitForState(
  app: { request(r: Request): Response | Promise<Response> },
  id: string,
  state: string,
): Promise<Json> {
  for (let n = 0;; n++) {
    const res = await app.request(get(`/runs/${id}`));
    assert.equal(res.status, 200);
    const run = (await res.json()).payload;
    if (run.state === state) return run;
    assert.ok(n < 500, `run ${id} is ${run.state}, never ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The events of a finished server-sent event stream. */
function parseEvents(text: string): { id: number; event: string; data: Json }[] {
  return text.split("\n\n").filter((block) => block.startsWith("id:")).map((block) => {
    const fields = Object.fromEntries(
      block.split("\n").map((line) => {
        const at = line.indexOf(": ");
        return [line.slice(0, at), line.slice(at + 2)];
      }),
    );
    return {
      id: Number(fields.id),
      event: String(fields.event),
      data: JSON.parse(String(fields.data)),
    };
  });
}

Deno.test("publish app: Prefer: respond-async answers 202, then GET /runs/{id} follows the run", async () => {
  using world = new FakeWorld();
  const audit = new MemoryAuditTrail();
  const { app, runner } = serviceOf(world, {}, { auditTrail: audit });
  try {
    const res = await app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, ASYNC));
    assert.equal(res.status, 202);
    const body = await res.json();
    const run = body.payload;
    assert.equal(body.status, "success");
    assert.equal(res.headers.get("location"), `/runs/${run.id}`);
    assert.equal(res.headers.get("preference-applied"), "respond-async");
    assert.equal(run.state, "queued");
    assert.equal(run.action, "package");
    assert.equal("request" in run, false, "the view omits the stored request");
    assert.equal(run.dataset.source_engine, "postgresql");

    const done = await waitForState(app, run.id, "succeeded");
    assert.equal(done.outcome.status, 200);
    assert.equal(done.outcome.body.status, "success");
    assert.ok(done.outcome.body.payload.data_retrieved.length > 0);
    assert.ok(done.tables.length > 0);
    for (const table of done.tables) {
      assert.equal(table.state, "done");
      assert.ok(table.rows > 0 && table.bytes > 0);
      // The source's estimate reaches the run through the service's source access.
      assert.deepEqual(table.expected_rows, { value: table.rows, estimate: true }, table.name);
      // The SHA-512 comes with the writer's `done` report (CSV); `null` where it gives none.
      assert.ok(table.sha512 === null || /^[0-9a-f]{128}$/.test(table.sha512));
    }
    // The POST's own record (202), then the run's, with what it staged.
    for (let n = 0; audit.records.length < 2; n++) {
      assert.ok(n < 500, "the run's audit record never came");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const [posted, ended] = audit.records;
    assert.equal(posted?.status, 202);
    assert.equal(ended?.request_id, run.id);
    assert.equal(ended?.action, "/data-publish/package");
    assert.equal(ended?.outcome, "success");
    assert.ok((ended?.files ?? []).length > 0);
    const unknown = await app.request(get(`/runs/${crypto.randomUUID()}`));
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).payload.code, "run_not_found");
  } finally {
    await runner.close();
  }
});

Deno.test("publish app: GET /runs lists newest first with a next link, and refuses bad queries", async () => {
  using world = new FakeWorld();
  const { app, runner } = serviceOf(world);
  try {
    const ids: string[] = [];
    for (const start of ["20250611_093000", "20250612_093000", "20250613_093000"]) {
      const res = await app.request(
        postJson(PACKAGE, aTransferRequest({ project_start_time: start }), PUBLISH_KEY),
      );
      assert.equal(res.status, 200);
    }
    const all = (await (await app.request(get("/runs"))).json()).payload;
    assert.equal(all.runs.length, 3);
    assert.equal(all.next, null);
    ids.push(...all.runs.map((r: Json) => r.id));
    assert.deepEqual(all.runs.map((r: Json) => r.project_start_time), [
      "20250613_093000",
      "20250612_093000",
      "20250611_093000",
    ]);

    const first = (await (await app.request(get("/runs?project=Pr042&limit=2"))).json()).payload;
    assert.deepEqual(first.runs.map((r: Json) => r.id), ids.slice(0, 2));
    assert.match(first.next, /^\/runs\?project=Pr042&limit=2&cursor=/);
    const second = (await (await app.request(get(first.next))).json()).payload;
    assert.deepEqual(second.runs.map((r: Json) => r.id), ids.slice(2));
    assert.equal(second.next, null);
    const anonymous = await app.request(new Request("http://test.local/runs"));
    assert.equal(anonymous.status, 403, "the runs need the service key");
    const none = (await (await app.request(get("/runs?state=failed"))).json()).payload;
    assert.deepEqual(none, { runs: [], next: null });

    for (
      const [query, code] of <[string, string][]> [
        ["limit=0", "invalid_run_query"],
        ["limit=1001", "invalid_run_query"],
        ["limit=x", "invalid_run_query"],
        ["state=bogus", "invalid_run_query"],
        ["cursor=nonsense", "invalid_run_cursor"],
      ]
    ) {
      const res = await app.request(get(`/runs?${query}`));
      assert.equal(res.status, 400, query);
      assert.equal((await res.json()).payload.code, code);
    }
  } finally {
    await runner.close();
  }
});

Deno.test("publish app: GET /runs/{id}/events streams each version until the run stops", async () => {
  using world = new FakeWorld();
  const gate = Promise.withResolvers<void>();
  const { app, runner } = serviceOf(world, { gate: gate.promise });
  try {
    const res = await app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, ASYNC));
    const { id } = (await res.json()).payload;
    const stream = await app.request(get(`/runs/${id}/events`));
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get("content-type") ?? "", /^text\/event-stream/);
    const text = stream.text();
    await new Promise((resolve) => setTimeout(resolve, 50));
    gate.resolve();
    const events = parseEvents(await text);
    assert.ok(events.length >= 2, JSON.stringify(events.map((e) => e.data.state)));
    assert.ok(events.every((e) => e.event === "run" && e.data.id === id && !("request" in e.data)));
    assert.ok(events.every((e, n) => n === 0 || e.id > events[n - 1]!.id));
    assert.ok(events.every((e) => e.id === e.data.version));
    const last = events.at(-1)!;
    assert.equal(last.data.state, "succeeded");

    const replay = await app.request(
      get(`/runs/${id}/events`, { "last-event-id": String(last.id - 1) }),
    );
    assert.deepEqual(parseEvents(await replay.text()).map((e) => e.id), [last.id]);
    const nothing = await app.request(
      get(`/runs/${id}/events`, { "last-event-id": String(last.id) }),
    );
    assert.deepEqual(parseEvents(await nothing.text()), []);
    assert.equal((await app.request(get(`/runs/${crypto.randomUUID()}/events`))).status, 404);
  } finally {
    await runner.close();
  }
});

Deno.test("publish app: POST /runs/{id}/cancel stops the run; its waiting sync caller gets 409 run_cancelled", async () => {
  using world = new FakeWorld();
  const gate = Promise.withResolvers<void>();
  const { app, runner } = serviceOf(world, { gate: gate.promise });
  try {
    const accepted = await app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, ASYNC));
    const { id } = (await accepted.json()).payload;
    // An identical synchronous request attaches to the run and waits for it.
    const waiting = app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY));
    await waitForState(app, id, "running");
    const cancelling = app.request(post(`/runs/${id}/cancel`));
    await new Promise((resolve) => setTimeout(resolve, 50));
    gate.resolve();
    const cancelled = await cancelling;
    assert.equal(cancelled.status, 200);
    const run = (await cancelled.json()).payload;
    assert.equal(run.state, "cancelled");
    assert.equal(run.outcome.status, 409);
    assert.equal(run.outcome.body.payload.code, "run_cancelled");

    const sync = await waiting;
    assert.equal(sync.status, 409);
    const refused = await sync.json();
    assert.equal(refused.payload.code, "run_cancelled");
    assert.match(refused.payload.detail, /^PublishService: Run .* was cancelled$/);
    assert.equal(world.connections.length, 1, "the attached request ran nothing of its own");

    const again = await app.request(post(`/runs/${id}/cancel`));
    assert.equal(again.status, 200);
    assert.deepEqual((await again.json()).payload, run);

    const done = await app.request(
      postJson(PACKAGE, aTransferRequest({ project_name: "Pr043" }), PUBLISH_KEY, ASYNC),
    );
    const doneId = (await done.json()).payload.id;
    await waitForState(app, doneId, "succeeded");
    const late = await app.request(post(`/runs/${doneId}/cancel`));
    assert.equal(late.status, 409);
    assert.equal((await late.json()).payload.code, "invalid_run_transition");
    const resumeDone = await app.request(post(`/runs/${doneId}/resume`));
    assert.equal(resumeDone.status, 409);
    assert.equal((await app.request(post(`/runs/${crypto.randomUUID()}/cancel`))).status, 404);
  } finally {
    await runner.close();
  }
});

Deno.test("publish app: two identical sync requests share one run and get the same reply", async () => {
  using world = new FakeWorld();
  const gate = Promise.withResolvers<void>();
  const { app, runner } = serviceOf(world, { gate: gate.promise });
  try {
    const replies = [
      app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY)),
      app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY)),
    ];
    await new Promise((resolve) => setTimeout(resolve, 50));
    gate.resolve();
    const [a, b] = await Promise.all(replies);
    assert.equal(a!.status, 200);
    assert.equal(b!.status, 200);
    assert.equal(await a!.text(), await b!.text());
    assert.equal(world.connections.length, 1);
  } finally {
    await runner.close();
  }
});

Deno.test("publish app with the SQLite run store under STATE_DIR: a shutdown interrupts, resume finishes", async () => {
  using world = new FakeWorld();
  const stateDir = await Deno.makeTempDir({ prefix: "publish_state_" });
  const log = memoryLogger("publish");
  try {
    const gate = Promise.withResolvers<void>();
    const firstStore = await runStoreFromEnv({ STATE_DIR: stateDir }, new MemorySecretStore(), log);
    const first = serviceOf(world, { gate: gate.promise, runStore: firstStore });
    const accepted = await first.app.request(
      postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, ASYNC),
    );
    const { id } = (await accepted.json()).payload;
    await waitForState(first.app, id, "running");
    const stopping = first.runner.close();
    gate.resolve();
    await stopping;
    await firstStore.close();
    await Deno.stat(`${stateDir}/runs.sqlite`);

    const secondStore = await runStoreFromEnv(
      { STATE_DIR: stateDir },
      new MemorySecretStore(),
      log,
    );
    const second = serviceOf(world, { runStore: secondStore });
    try {
      const interrupted = (await (await second.app.request(get(`/runs/${id}`))).json()).payload;
      assert.equal(interrupted.state, "interrupted");
      const resumed = await second.app.request(post(`/runs/${id}/resume`));
      assert.equal(resumed.status, 202);
      assert.equal(resumed.headers.get("location"), `/runs/${id}`);
      assert.equal((await resumed.json()).payload.state, "queued");
      const done = await waitForState(second.app, id, "succeeded");
      assert.equal(done.outcome.status, 200);
      const twice = await second.app.request(post(`/runs/${id}/resume`));
      assert.equal(twice.status, 409);
      assert.equal((await twice.json()).payload.code, "invalid_run_transition");
    } finally {
      await second.runner.close();
      await secondStore.close();
    }
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test({
  name: "publish app with the PostgreSQL run store (RUN_STORE=postgresql) runs a package",
  ignore: ignorePostgres,
  fn: async () => {
    const database = randomName("runs_app");
    const admin = postgres(postgresClientOptions(postgresConnectionOptions()));
    await admin.unsafe(`create database ${quotePostgresIdentifier(database)}`);
    try {
      const env = {
        RUN_STORE: "postgresql",
        RUN_STORE_POSTGRESQL_HOST: POSTGRES.host,
        RUN_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
        RUN_STORE_POSTGRESQL_DATABASE: database,
        RUN_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
        RUN_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "runstorepassword",
        RUN_STORE_POSTGRESQL_SSLMODE: LOCAL_DATABASES_WITHOUT_TLS.SOURCE_POSTGRES_SSLMODE!,
      };
      const secrets = new MemorySecretStore({ runstorepassword: "unused-by-trust" });
      const log = memoryLogger("publish");
      await assert.rejects(
        runStoreFromEnv({ ...env, RUN_STORE_POSTGRESQL_SSLMODE: "prefer" }, secrets, log),
        ConfigError,
      );
      await assert.rejects(
        runStoreFromEnv(
          { ...env, RUN_STORE_POSTGRESQL_PASSWORD_SECRET_NAME: "absent" },
          secrets,
          log,
        ),
        ConfigError,
      );
      const store = await runStoreFromEnv(env, secrets, log);
      using world = new FakeWorld();
      const { app, runner } = serviceOf(world, { runStore: store });
      try {
        const res = await app.request(postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY));
        assert.equal(res.status, 200);
        const { runs } = (await (await app.request(get("/runs"))).json()).payload;
        assert.equal(runs.length, 1);
        assert.equal(runs[0].state, "succeeded");
        assert.ok(log.lines.some((l) => JSON.parse(l).event === "database_tls_disabled"));
      } finally {
        await runner.close();
        await store.close();
      }
    } finally {
      await admin.unsafe(
        `drop database if exists ${quotePostgresIdentifier(database)} with (force)`,
      );
      await admin.end({ timeout: 5 });
    }
  },
});

Deno.test("publish app: a sync request attached to another process's run replies with its stored outcome", async () => {
  using world = new FakeWorld();
  const gate = Promise.withResolvers<void>();
  const store = new MemoryRunStore();
  const owner = serviceOf(world, { gate: gate.promise, runStore: store });
  const other = serviceOf(world, { runStore: store });
  try {
    const accepted = await owner.app.request(
      postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, ASYNC),
    );
    const { id } = (await accepted.json()).payload;
    const waiting = other.app.request(
      postJson(PACKAGE, aTransferRequest(), PUBLISH_KEY, { "x-request-id": "req-other" }),
    );
    await waitForState(other.app, id, "running");
    world.refuseConnections = "connection refused";
    gate.resolve();
    const res = await waiting;
    const failed = await waitForState(owner.app, id, "failed");
    assert.equal(res.status, failed.outcome.status);
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["status", "payload"]);
    assert.deepEqual(Object.keys(body.payload), ["detail", "code", "request_id"]);
    assert.equal(body.payload.request_id, "req-other");
    assert.equal(body.payload.code, failed.outcome.body.payload.code);
    assert.match(body.payload.detail, /^PublishService: /);
  } finally {
    await owner.runner.close();
    await other.runner.close();
  }
});
