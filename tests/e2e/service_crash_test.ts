/**
 * Crash safety of the publish service as a real process: killed with SIGKILL during a package or a publish,
 * then restarted, it sweeps the leftovers at startup, staging still holds the previous complete dataset,
 * production holds the previous or the new complete bag, and running the request again succeeds.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bagProblems } from "../support/bagit_check.ts";
import { PostgresSandbox } from "../support/databases.ts";
import { type ServiceProcess, startService, writeAllowList } from "../support/processes.ts";
import { callApi, pollRun, pollUntil, type RunView } from "../support/runs_client.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEY = `publish-${crypto.randomUUID()}`;
const PROJECT = "ServiceCrash";
const START = "20250611_093000";
const MANIFEST = ".cr8tor-staging.json";
const BIG_ROWS = 300_000;

/**
 * `small` is a plain table; `slow_rows` yields 40 rows, one every 50 ms; `big` is ~300k rows whose content
 * changes with the tag in `version`, so each package of it stages a different bag.
 */
const DDL = `
  create function $s.slow(n int) returns setof int language plpgsql as $f$
  begin
    for i in 1..n loop perform pg_sleep(0.05); return next i; end loop;
  end $f$;
  create table $s.small (id int primary key, name text);
  insert into $s.small values (1, 'one'), (2, 'two'), (3, 'three');
  create view $s.slow_rows as select id from $s.slow(40) as id;
  create table $s.version (tag text not null);
  insert into $s.version values ('v0');
  create view $s.big as
    select i as id, md5(i::text || v.tag) as a, md5(v.tag || i::text) as b, v.tag
    from generate_series(1, ${BIG_ROWS}) as i, $s.version as v;
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

async function sha512Of(path: string): Promise<string> {
  return createHash("sha512").update(await readFile(path)).digest("hex");
}

interface ManifestEntry {
  path: string;
  sha512: string;
  bytes: number;
}

/** The staging manifest of the run, or undefined when nothing is staged. */
async function stagingManifest(runDir: string): Promise<{ files: ManifestEntry[] } | undefined> {
  const text = await readFile(join(runDir, MANIFEST), "utf8").catch(() => undefined);
  return text === undefined ? undefined : JSON.parse(text);
}

/** The payload a manifest describes, as sorted `sha512  path` lines. */
function payloadLines(files: readonly ManifestEntry[]): string[] {
  return files.map((f) => `${f.sha512}  ${f.path}`).sort();
}

/** The payload of the production bag after checking it is complete and valid, or undefined if absent. */
async function productionPayload(bagDir: string): Promise<string[] | undefined> {
  const present = await readdir(bagDir).then(() => true, () => false);
  if (!present) return undefined;
  assert.deepEqual(await bagProblems(bagDir), [], "production is a complete, valid bag");
  const text = await readFile(join(bagDir, "manifest-sha512.txt"), "utf8");
  return text.split("\n").filter((l) => l !== "").map((l) => l.replace(/\s+/, "  ")).sort();
}

Deno.test({
  name: "e2e: SIGKILL during package or publish, restart, sweep and re-run leave staging and " +
    "production complete",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-service-crash-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const stagingRun = join(storage, "staging", PROJECT, START);
    const productionProject = join(storage, "production", PROJECT);
    const productionBag = join(productionProject, START);
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_crash");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await pg.createRole();
      await pg.createSchema(schema, DDL);
      await pg.admin.unsafe(`grant execute on function "${schema}".slow(int) to "${pg.role}"`);
      const files = { publishserviceapikey: KEY, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const allowList = await writeAllowList(work, [allowedLocalPostgres()]);
      const start = async () => {
        const service = await startService("publish", {
          SECRETS_MNT_PATH: secrets,
          ALLOWED_SOURCES_FILE: allowList,
          TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: storage,
        });
        services.push(service);
        return service;
      };
      const kill = async (service: ServiceProcess) => {
        try {
          Deno.kill(service.pid, "SIGKILL");
        } catch {
          // already ended
        }
        await service.exited;
      };
      const events = (service: ServiceProcess) =>
        service.logs.map((l) => {
          try {
            return JSON.parse(l) as { event?: string; paths?: string[] };
          } catch {
            return {};
          }
        });
      const post = (service: ServiceProcess, path: string, body: unknown) =>
        fetch(`${service.url}/data-publish/${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": KEY },
          body: JSON.stringify(body),
        });
      const destination = { name: "LSC", type: "filestore", format: "csv" };
      const packageTable = (service: ServiceProcess, table: string) =>
        post(service, "package", {
          project_name: PROJECT,
          project_start_time: START,
          destination,
          source: {
            type: "postgresql",
            host_url: POSTGRES.host,
            port: POSTGRES.port,
            database: POSTGRES.database,
            credentials: { username_key: "pguser", password_key: "pgpassword" },
          },
          dataset: { schema_name: schema, tables: [{ name: table }] },
        });
      const publish = (service: ServiceProcess) =>
        post(service, "publish", { project_name: PROJECT, project_start_time: START, destination });
      /** Checks that every file the staging manifest lists exists with its recorded SHA-512. */
      const stagingIntact = async () => {
        const manifest = await stagingManifest(stagingRun);
        assert.ok(manifest !== undefined, "a staging manifest");
        for (const file of manifest.files) {
          assert.equal(await sha512Of(join(stagingRun, file.path)), file.sha512, file.path);
        }
        return manifest;
      };

      let service = await start();

      await t.step("killed during a package, staging keeps the previous dataset", async () => {
        const first = await packageTable(service, "small");
        assert.equal(first.status, 200, await first.text());
        const manifestBefore = await readFile(join(stagingRun, MANIFEST), "utf8");
        const version1 = await stagingIntact();
        assert.deepEqual(version1.files.map((f) => f.path), [`data/outputs/${schema}/small.csv`]);

        const reply = packageTable(service, "slow_rows").then(
          (res) => res.status,
          () => "no reply",
        );
        // Wait until the package is writing into its work folder, then a little longer.
        const deadline = performance.now() + 10_000;
        while (!(await readdir(stagingRun)).some((n) => n.startsWith(".work-"))) {
          assert.ok(performance.now() < deadline, "the package started a work folder");
          await sleep(20);
        }
        await sleep(500);
        await kill(service);
        assert.equal(await reply, "no reply", "the package was killed before it answered");
        assert.ok((await tree(stagingRun)).some((p) => p.startsWith(".work-")), "a leftover");
        await pg.terminateSessions();

        service = await start();
        const recovered = events(service).find((e) => e.event === "recovered_interrupted_runs");
        assert.ok(recovered !== undefined, "the startup logged recovered_interrupted_runs");
        assert.ok(recovered.paths?.some((p) => p.includes(".work-")), JSON.stringify(recovered));
        assert.deepEqual(
          (await tree(join(storage, "staging"))).filter((p) => p.includes(".work-")),
          [],
          "no work folder left under staging",
        );
        assert.equal(await readFile(join(stagingRun, MANIFEST), "utf8"), manifestBefore);
        await stagingIntact();

        const again = await packageTable(service, "slow_rows");
        assert.equal(again.status, 200, await again.text());
        const after = await stagingIntact();
        assert.deepEqual(after.files.map((f) => f.path), [`data/outputs/${schema}/slow_rows.csv`]);
        assert.deepEqual(await tree(stagingRun), [
          MANIFEST,
          "data",
          "data/outputs",
          `data/outputs/${schema}`,
          `data/outputs/${schema}/slow_rows.csv`,
        ]);
      });

      await t.step("killed during a publish, production is the previous or new bag", async () => {
        let tag = 0;
        const stageNext = async () => {
          tag += 1;
          await pg.admin.unsafe(`update "${schema}".version set tag = 'v${tag}'`);
          const res = await packageTable(service, "big");
          assert.equal(res.status, 200, await res.text());
          return payloadLines((await stagingIntact()).files);
        };
        // A previous complete bag in production.
        let staged = await stageNext();
        const firstPublish = await publish(service);
        assert.equal(firstPublish.status, 200, await firstPublish.text());
        let previous = await productionPayload(productionBag);
        assert.deepEqual(previous, staged);
        staged = await stageNext();

        const outcomes: string[] = [];
        for (const delayMs of [0, 30, 80, 150, 300]) {
          if (await stagingManifest(stagingRun) === undefined) staged = await stageNext();
          const reply = publish(service).then((res) => res.status, () => "no reply");
          await sleep(delayMs);
          await kill(service);
          const answered = await reply;
          const leftovers = (await readdir(productionProject)).filter((n) => n.startsWith("."));

          service = await start();
          if (leftovers.length > 0) {
            assert.ok(
              events(service).some((e) => e.event === "recovered_interrupted_runs"),
              `the startup swept ${leftovers}`,
            );
          }
          assert.deepEqual(
            (await readdir(productionProject)).filter((n) =>
              n.startsWith(".publish-") || n.startsWith(".old-")
            ),
            [],
            "no leftovers after the startup sweep",
          );
          const now = await productionPayload(productionBag);
          const isNew = JSON.stringify(now) === JSON.stringify(staged);
          assert.ok(
            isNew || JSON.stringify(now) === JSON.stringify(previous),
            `killed ${delayMs} ms in: production is the previous or the new bag`,
          );
          if (answered === 200) assert.ok(isNew, "an answered publish left the new bag");
          outcomes.push(`${delayMs} ms: ${isNew ? "new" : "previous"}, ${leftovers.length} swept`);
          previous = now;
        }
        assert.ok(
          outcomes.some((o) => o.includes("previous")),
          `some kill landed before the publish finished: ${outcomes.join("; ")}`,
        );

        // Re-running the publish completes it, and once more answers the same.
        const res = await publish(service);
        const json = await res.json();
        assert.equal(res.status, 200, JSON.stringify(json));
        assert.deepEqual(await productionPayload(productionBag), staged);
        assert.equal(await stagingManifest(stagingRun), undefined, "staging consumed");
        const repeated = await publish(service);
        assert.equal(repeated.status, 200);
        assert.deepEqual(await repeated.json(), json, "publishing again answers the same");
        assert.deepEqual(await productionPayload(productionBag), staged);
      });
    } finally {
      for (const service of services) await service.stop();
      // A killed service's query runs on in PostgreSQL until it next writes to the closed connection.
      await pg
        .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${pg.role}`;
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});

/**
 * `a_slow`, `b_slow` and `c_slow` read 30 rows each of their base table through `nap` (50 ms per row),
 * so each takes ~1.5 s and the reads of one base table show in its `seq_scan` statistics.
 */
const RESUME_DDL = `
  create function $s.nap(i int) returns int language plpgsql as $f$
  begin perform pg_sleep(0.05); return i; end $f$;
  create table $s.a_base (id int primary key, note text);
  create table $s.b_base (id int primary key, note text);
  create table $s.c_base (id int primary key, note text);
  insert into $s.a_base select i, 'a' || md5(i::text) from generate_series(1, 30) as i;
  insert into $s.b_base select i, 'b' || md5(i::text) from generate_series(1, 30) as i;
  insert into $s.c_base select i, 'c' || md5(i::text) from generate_series(1, 30) as i;
  create view $s.a_slow as select $s.nap(id) as id, note from $s.a_base;
  create view $s.b_slow as select $s.nap(id) as id, note from $s.b_base;
  create view $s.c_slow as select $s.nap(id) as id, note from $s.c_base;
`;
const RESUME_TABLES = ["a_slow", "b_slow", "c_slow"];

/** Every file under `dir` with its bytes (base64), relative paths sorted. */
async function filesOf(dir: string, prefix = ""): Promise<[string, string][]> {
  const found: [string, string][] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory()) found.push(...await filesOf(join(dir, entry.name), `${path}/`));
    else found.push([path, (await readFile(join(dir, entry.name))).toString("base64")]);
  }
  return found.sort(([a], [b]) => a.localeCompare(b));
}

Deno.test({
  name: "e2e: SIGKILL after some tables are done; resume (or the same request) reuses them and " +
    "stages byte-identical files",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-service-resume-"));
    const secrets = join(work, "secrets");
    const stateDir = join(work, "state");
    const storage = join(work, "lsc");
    const reference = join(work, "lsc-reference");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_resume");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(stateDir);
      for (const base of [storage, reference]) {
        await mkdir(join(base, "staging"), { recursive: true });
        await mkdir(join(base, "production"));
      }
      await pg.createRole();
      await pg.createSchema(schema, RESUME_DDL);
      await pg.admin.unsafe(`grant execute on function "${schema}".nap(int) to "${pg.role}"`);
      const files = { publishserviceapikey: KEY, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      const allowList = await writeAllowList(work, [allowedLocalPostgres()]);
      const start = async (lsc: string) => {
        const service = await startService("publish", {
          SECRETS_MNT_PATH: secrets,
          ALLOWED_SOURCES_FILE: allowList,
          TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: lsc,
          ...(lsc === storage ? { STATE_DIR: stateDir } : {}),
          // A restarted process marks a run interrupted once its lease expired: keep that short.
          RUN_LEASE_SECONDS: "3",
        });
        services.push(service);
        return service;
      };
      const request = (startTime: string) => ({
        project_name: PROJECT,
        project_start_time: startTime,
        destination: { name: "LSC", type: "filestore", format: "csv" },
        source: {
          type: "postgresql",
          host_url: POSTGRES.host,
          port: POSTGRES.port,
          database: POSTGRES.database,
          credentials: { username_key: "pguser", password_key: "pgpassword" },
        },
        dataset: { schema_name: schema, tables: RESUME_TABLES.map((name) => ({ name })) },
      });
      const api = (service: ServiceProcess) => `${service.url}`;
      /** How often each base table was scanned, once every session of the reader has ended. */
      const scans = async (): Promise<Record<string, number>> => {
        await pg.terminateSessions();
        await pollUntil("the reader's sessions to end", async () => {
          const [row] = await pg.admin<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity where usename = ${pg.role}`;
          return row!.n === 0 || undefined;
        });
        await pg.admin`select pg_stat_clear_snapshot()`;
        const rows = await pg.admin<{ relname: string; seq_scan: number }[]>`
          select relname, seq_scan::int as seq_scan from pg_stat_user_tables
           where schemaname = ${schema}`;
        return Object.fromEntries(
          rows.map((r) => [r.relname.replace("_base", "_slow"), r.seq_scan]),
        );
      };

      // The same data packaged without interruption, into another filestore.
      const referenceService = await start(reference);
      const expected = new Map<string, [string, string][]>();
      for (const startTime of ["20250611_100000", "20250611_110000"]) {
        const res = await callApi(`${api(referenceService)}/data-publish/package`, KEY, {
          body: request(startTime),
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        expected.set(startTime, await filesOf(join(reference, "staging", PROJECT, startTime)));
      }
      await referenceService.stop();

      let service = await start(storage);
      for (
        const [how, startTime] of [["resume", "20250611_100000"], ["resend", "20250611_110000"]]
      ) {
        await t.step(`killed after a table was done, then ${how}`, async () => {
          const started = await callApi(`${api(service)}/data-publish/package`, KEY, {
            body: request(startTime!),
            headers: { Prefer: "respond-async" },
          });
          assert.equal(started.status, 202, JSON.stringify(started.json));
          const id = started.json.payload.id as string;
          const before = await pollRun(
            api(service),
            KEY,
            id,
            (r) => r.tables.some((x) => x.state === "done" && x.sha512 !== null),
            "a table done",
          );
          Deno.kill(service.pid, "SIGKILL");
          await service.exited;
          assert.notEqual(before.state, "succeeded", "killed before the run finished");
          const scansAtKill = await scans();
          const stagingRun = join(storage, "staging", PROJECT, startTime!);

          service = await start(storage);
          const interrupted = await pollRun(
            api(service),
            KEY,
            id,
            (r) => r.state !== "running",
            "the run's lease to expire",
          );
          assert.equal(interrupted.state, "interrupted");
          const doneBefore = interrupted.tables.filter((x) => x.state === "done");
          assert.ok(doneBefore.length >= 1, JSON.stringify(interrupted.tables));
          assert.ok(doneBefore.length < RESUME_TABLES.length, "some table still to do");

          let finished: RunView;
          if (how === "resume") {
            const resumed = await callApi(`${api(service)}/runs/${id}/resume`, KEY, {
              method: "POST",
            });
            assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
            finished = await pollRun(
              api(service),
              KEY,
              id,
              (r) => !["queued", "running"].includes(r.state),
              "the resumed run",
            );
          } else {
            const again = await callApi(`${api(service)}/data-publish/package`, KEY, {
              body: request(startTime!),
            });
            assert.equal(again.status, 200, JSON.stringify(again.json));
            const runs = await callApi(`${api(service)}/runs?project=${PROJECT}&limit=1`, KEY);
            finished = runs.json.payload.runs[0];
          }
          assert.equal(finished.state, "succeeded", JSON.stringify(finished.outcome));
          const scansAfter = await scans();
          for (const table of RESUME_TABLES) {
            const reused = doneBefore.some((x) => x.name === table);
            const reads = scansAfter[table]! - scansAtKill[table]!;
            assert.equal(reads, reused ? 0 : 1, `${table}: read ${reads} times after the kill`);
            const now = finished.tables.find((x) => x.name === table)!;
            assert.equal(now.state, "done");
            if (reused) {
              assert.equal(now.sha512, doneBefore.find((x) => x.name === table)!.sha512);
            }
          }
          assert.deepEqual(
            await filesOf(stagingRun),
            expected.get(startTime!),
            "staged files and staging manifest byte-identical to an uninterrupted run's",
          );
        });
      }

      await t.step("the resumed package publishes a valid bag", async () => {
        const startTime = "20250611_100000";
        const res = await callApi(`${api(service)}/data-publish/publish`, KEY, {
          body: {
            project_name: PROJECT,
            project_start_time: startTime,
            destination: { name: "LSC", type: "filestore", format: "csv" },
          },
        });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(await bagProblems(join(storage, "production", PROJECT, startTime)), []);
      });
    } finally {
      for (const service of services) await service.stop();
      await pg
        .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${pg.role}`;
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
