/**
 * Concurrency (issue 5, item 4): package requests for two datasets of one project and publish requests
 * for it, all fired at once. Requests for the same project are serialised, so afterwards staging and
 * production each hold one complete set: the staging manifest matches its files' SHA-512 and sizes, and
 * the production bag validates. Without the per-project lock (`apps/publish/project_locks.ts`) this fails:
 * concurrent packages lose each other's manifest updates, and a publish removes staging under a package.
 */
import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import type { SchemaCatalog } from "../../domain/catalog.ts";
import { APPROVAL_KEY, FakeWorld, PUBLISH_KEY } from "../support/apps.ts";
import { bagProblems } from "../support/bagit_check.ts";
import { ONCOLOGY } from "../support/catalogs.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../support/requests.ts";

const ROUNDS = 4;
const ROWS = 300;
const RUN = join("Pr042", "20250611_093000");

function rows(prefix: string): (string | null)[][] {
  return Array.from({ length: ROWS }, (_, i) => [String(i), `${prefix}-${i}`, null]);
}

/** A world whose source has two schemas, `oncology` and `reference`, each with enough rows to interleave. */
function twoDatasetWorld(): FakeWorld {
  const world = new FakeWorld();
  const reference: SchemaCatalog = { ...ONCOLOGY, name: "reference" };
  world.catalogs = [ONCOLOGY, reference];
  world.rows = new Map([
    ["oncology.tumour_stage", rows("onc")],
    ["reference.tumour_stage", rows("ref")],
  ]);
  return world;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await walk(path));
    else out.push(path);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

/** Every problem with the staging run folder: files and manifest must agree exactly. */
async function stagingProblems(runDir: string): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(runDir, ".cr8tor-staging.json"), "utf8")) as {
    files: { path: string; sha512: string; bytes: number; datasets: string[] }[];
  };
  const problems: string[] = [];
  const present = (await walk(runDir)).map((p) => relative(runDir, p))
    .filter((p) => p !== ".cr8tor-staging.json");
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const path of present) {
    if (!listed.has(path)) problems.push(`${path} is not in the manifest`);
  }
  for (const entry of manifest.files) {
    const file = join(runDir, entry.path);
    if (!(await exists(file))) {
      problems.push(`${entry.path} is listed but missing`);
      continue;
    }
    const bytes = await readFile(file);
    if (bytes.length !== entry.bytes) problems.push(`${entry.path} has ${bytes.length} bytes`);
    if (createHash("sha512").update(bytes).digest("hex") !== entry.sha512) {
      problems.push(`${entry.path} does not match its SHA-512`);
    } else if (entry.path.endsWith(".duckdb")) {
      problems.push(...await duckdbProblems(file, entry.datasets));
    }
  }
  return problems;
}

/** Each schema of a DuckDB file with the row count of its `tumour_stage` table. */
async function duckdbSchemas(path: string): Promise<Record<string, number>> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  try {
    const schemas = (await connection.runAndReadAll(
      "SELECT DISTINCT table_schema FROM information_schema.tables ORDER BY 1",
    )).getRows().map((row) => String(row[0]));
    const counts: Record<string, number> = {};
    for (const schema of schemas) {
      const rows = (await connection.runAndReadAll(
        `SELECT count(*) FROM "${schema}"."tumour_stage"`,
      )).getRows();
      counts[schema] = Number(rows[0]![0]);
    }
    return counts;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** A DuckDB file holds exactly the datasets its manifest entry names, each complete. */
async function duckdbProblems(
  file: string,
  datasets: readonly string[] | undefined,
): Promise<string[]> {
  const counts = await duckdbSchemas(file);
  const problems = Object.entries(counts).filter(([, n]) => n !== ROWS)
    .map(([schema, n]) => `${schema}.tumour_stage has ${n} rows`);
  if (datasets !== undefined && Object.keys(counts).join() !== [...datasets].sort().join()) {
    problems.push(`holds ${Object.keys(counts).join()}, the manifest says ${datasets.join()}`);
  }
  return problems;
}

function packageBody(schema: string, format: "csv" | "duckdb") {
  const body = aTransferRequest({ destination: { name: "LSC", type: "filestore", format } });
  (body.dataset as Record<string, unknown>).schema_name = schema;
  return body;
}

Deno.test("concurrent package and publish requests for one project leave one complete set", async (t) => {
  for (const format of ["csv", "duckdb"] as const) {
    await t.step(format, async () => {
      using world = twoDatasetWorld();
      const publish = world.publishApp();
      const gateway = world.approvalApp();
      const requests: (Response | Promise<Response>)[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Half through the gateway, half straight to the publish service: one lock serves both.
        const [app, prefix, key] = round % 2 === 0
          ? [publish, "/data-publish", PUBLISH_KEY]
          : [gateway, "/project", APPROVAL_KEY];
        const publishRequest = aPublishRequest({
          destination: { name: "LSC", type: "filestore", format },
        });
        requests.push(
          app.request(postJson(`${prefix}/package`, packageBody("oncology", format), key)),
          app.request(postJson(`${prefix}/publish`, publishRequest, key)),
          app.request(postJson(`${prefix}/package`, packageBody("reference", format), key)),
        );
      }
      const replies = await Promise.all(
        requests.map(async (r) => {
          const res = await r;
          return { status: res.status, body: await res.text() };
        }),
      );
      for (const reply of replies) {
        // 409 nothing_staged is fine (a publish that ran before any package); nothing else is.
        const fine = reply.status === 200 ||
          (reply.status === 409 && reply.body.includes('"code":"nothing_staged"'));
        assert.ok(fine, `${reply.status} ${reply.body.slice(0, 300)}`);
      }

      const stagingDir = join(world.base, "staging", RUN);
      const productionDir = join(world.base, "production", RUN);
      assert.ok(
        (await exists(stagingDir)) || (await exists(productionDir)),
        "something was staged or published",
      );
      if (await exists(stagingDir)) assert.deepEqual(await stagingProblems(stagingDir), []);
      if (await exists(productionDir)) {
        assert.deepEqual(await bagProblems(productionDir), []);
        const database = join(productionDir, "data/outputs/database.duckdb");
        if (format === "duckdb") assert.deepEqual(await duckdbProblems(database, undefined), []);
      }
      const leftovers = (await walk(world.base)).filter((p) => /\/\.(work|publish|old)-/.test(p));
      assert.deepEqual(leftovers, [], "no work folders are left behind");

      // And the set is whole: publishing what is staged now gives a valid bag with both datasets.
      const last = await publish.request(
        postJson("/data-publish/publish", aPublishRequest(), PUBLISH_KEY),
      );
      assert.equal(last.status, 200, await last.clone().text());
      assert.deepEqual(await bagProblems(productionDir), []);
      const published = ((await last.json()).payload.data_published as { file_path: string }[])
        .map((f) => f.file_path);
      assert.ok(published.length >= 1, "something was published");
      assert.ok(!(await exists(stagingDir)), "staging is removed once published");
    });
  }
});

Deno.test("packages of two datasets at once both end up in the staging manifest", async (t) => {
  for (const format of ["csv", "duckdb"] as const) {
    await t.step(format, async () => {
      using world = twoDatasetWorld();
      const app = world.publishApp();
      const replies = await Promise.all(
        Array.from({ length: 3 }, () => ["oncology", "reference"]).flat().map((schema) =>
          app.request(postJson("/data-publish/package", packageBody(schema, format), PUBLISH_KEY))
        ),
      );
      for (const res of replies) assert.equal(res.status, 200, await res.text());
      const stagingDir = join(world.base, "staging", RUN);
      assert.deepEqual(await stagingProblems(stagingDir), []);
      const manifest = JSON.parse(
        await readFile(join(stagingDir, ".cr8tor-staging.json"), "utf8"),
      ) as { files: { path: string; datasets: string[] }[] };
      const datasets = [...new Set(manifest.files.flatMap((f) => f.datasets))].sort();
      assert.deepEqual(datasets, ["oncology", "reference"], "neither dataset was lost");
      const res = await app.request(
        postJson("/data-publish/publish", aPublishRequest(), PUBLISH_KEY),
      );
      assert.equal(res.status, 200);
      assert.deepEqual(await bagProblems(join(world.base, "production", RUN)), []);
    });
  }
});
