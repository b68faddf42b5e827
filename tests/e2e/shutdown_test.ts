/**
 * Graceful shutdown of the publish service as a real process: SIGTERM lets a request in flight finish
 * within the grace period; past it, the request is cancelled and leaves nothing staged.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox } from "../support/databases.ts";
import { type ServiceProcess, startService, writeAllowList } from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEY = `publish-${crypto.randomUUID()}`;
const PROJECT = "Shutdown";
const START = "20250611_093000";

/** `slow(n)` yields n rows, one every 50 ms; the views read through it. */
const SLOW_DDL = `
  create function $s.slow(n int) returns setof int language plpgsql as $f$
  begin
    for i in 1..n loop perform pg_sleep(0.05); return next i; end loop;
  end $f$;
  create view $s.quick as select id from $s.slow(10) as id;
  create view $s.endless as select id from $s.slow(100000) as id;
`;

/** Every file and folder under `dir`, relative, sorted. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = `${prefix}${entry.name}`;
    found.push(path);
    if (entry.isDirectory()) found.push(...await tree(join(dir, entry.name), `${path}/`));
  }
  return found.sort();
}

Deno.test({
  name: "e2e: SIGTERM lets a package finish within the grace period and cancels it cleanly after",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-shutdown-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_slow");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(schema, SLOW_DDL);
      await pg.admin.unsafe(
        `grant execute on function "${schema}".slow(int) to "${pg.role}"`,
      );
      const files = { publishserviceapikey: KEY, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const allowList = await writeAllowList(work, [allowedLocalPostgres()]);
      const start = async (graceSeconds: number) => {
        const service = await startService("publish", {
          SECRETS_MNT_PATH: secrets,
          ALLOWED_SOURCES_FILE: allowList,
          TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: storage,
          SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
        });
        services.push(service);
        return service;
      };
      const packageTable = (service: ServiceProcess, table: string) =>
        fetch(`${service.url}/data-publish/package`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": KEY },
          body: JSON.stringify({
            project_name: PROJECT,
            project_start_time: START,
            destination: { name: "LSC", type: "filestore", format: "csv" },
            source: {
              type: "postgresql",
              host_url: POSTGRES.host,
              port: POSTGRES.port,
              database: POSTGRES.database,
              credentials: { username_key: "pguser", password_key: "pgpassword" },
            },
            dataset: { schema_name: schema, tables: [{ name: table }] },
          }),
        });

      await t.step("a request in flight finishes within the grace period", async () => {
        const service = await start(30);
        const reply = packageTable(service, "quick");
        await new Promise((resolve) => setTimeout(resolve, 150));
        Deno.kill(service.pid, "SIGTERM");
        const res = await reply;
        assert.equal(res.status, 200);
        assert.deepEqual((await res.json()).payload.data_retrieved, [
          { file_path: `data/outputs/${schema}/quick.csv` },
        ]);
        assert.equal(await service.exited, 0);
        const events = service.logs.map((l) => JSON.parse(l).event);
        assert.ok(events.includes("stopping") && events.includes("stopped"));
        assert.ok(!events.includes("grace_period_over"));
      });

      await t.step("new connections are refused once shutdown has begun", async () => {
        const service = await start(30);
        const reply = packageTable(service, "quick");
        await new Promise((resolve) => setTimeout(resolve, 150));
        Deno.kill(service.pid, "SIGTERM");
        await new Promise((resolve) => setTimeout(resolve, 100));
        await assert.rejects(fetch(`${service.url}/health`));
        assert.equal((await reply).status, 200);
        assert.equal(await service.exited, 0);
      });

      await t.step(
        "past the grace period the run is interrupted (503, resumable) and stages nothing",
        async () => {
          const staged = await tree(join(storage, "staging"));
          const service = await start(1);
          const started = performance.now();
          const reply = packageTable(service, "endless");
          await new Promise((resolve) => setTimeout(resolve, 300));
          Deno.kill(service.pid, "SIGTERM");
          const res = await reply;
          const json = await res.json();
          // The run stopped through its signal: the caller is told to resume it, not that the source
          // failed.
          assert.equal(res.status, 503, JSON.stringify(json));
          assert.equal(json.status, "error");
          assert.equal(json.payload.code, "run_interrupted");
          assert.equal(await service.exited, 0);
          assert.ok(performance.now() - started < 15_000, "ended soon after the grace period");
          assert.ok(service.logs.some((l) => JSON.parse(l).event === "grace_period_over"));
          // Only the earlier dataset is staged: no work folder, no partial file of this one.
          assert.deepEqual(await tree(join(storage, "staging")), staged);
        },
      );

      await t.step("a restarted service packages again", async () => {
        const service = await start(30);
        const res = await packageTable(service, "quick");
        assert.equal(res.status, 200);
        await service.stop();
      });
    } finally {
      for (const service of services) await service.stop();
      // The cancelled query runs on in PostgreSQL until it next writes to the closed connection.
      await pg
        .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${pg.role}`;
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
