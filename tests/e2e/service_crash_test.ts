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
