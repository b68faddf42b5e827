/**
 * Links planted inside a filestore (issue 12, point 3). Each attack starts from a world with real staged
 * and published runs of two projects (the publish app in-process, with the real LocalFilestore, the real
 * CSV and DuckDB writers and the memory source), plants a symbolic or hard link at one level (a project
 * folder, a run folder, `data/outputs`, a staged file, the staging manifest, a production folder), or edits
 * or copies a staging manifest, then sends `package` and `publish`. Every request must be refused with 409
 * in the CR8TOR envelope, naming the path relative to the base, and change nothing at all: not the file or
 * folder the link points to, not the other project, not production, not staging. No reply, log line or
 * audit record may hold a secret or a server path.
 *
 * The last tests cover the startup sweep, the audit trail and the startup checks of the publish service.
 */
import assert from "node:assert/strict";
import { cp, link, mkdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FileAuditTrail } from "../../adapters/filesystem/file_audit_trail.ts";
import { auditTrailFromEnv } from "../../apps/_shared/audit.ts";
import { ConfigError } from "../../apps/_shared/app_errors.ts";
import { memoryLogger } from "../../apps/_shared/log.ts";
import { buildPublishService } from "../../apps/publish/main.ts";
import type { SchemaCatalog } from "../../domain/catalog.ts";
import { AuditTrailUnavailableError } from "../../ports/audit_trail.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../support/catalogs.ts";
import { PUBLISH_KEY } from "../support/apps.ts";
import { aPublishRequest, aTransferRequest, postJson } from "../support/requests.ts";
import {
  assertErrorEnvelope,
  assertLeaksNothing,
  changedPaths,
  type HostileWorld,
  hostileWorld,
  snapshotTree,
} from "./_hostile_world.ts";

const START = "20250611_093000";
const RUN = `Pr042/${START}`;
const OTHER_RUN = `Other/${START}`;
const OTHER_DUCKDB_RUN = "Other/20250612_000000";
const OTHER_PUBLISHED_RUN = "Other/20250101_000000";
const CSV = "data/outputs/oncology/tumour_stage.csv";
const DUCKDB = "data/outputs/database.duckdb";
const MANIFEST = ".cr8tor-staging.json";

/** A second schema, so a run can hold two datasets. */
const CARDIOLOGY: SchemaCatalog = {
  name: "cardiology",
  description: null,
  tables: [{
    name: "echo",
    kind: "table",
    description: null,
    primaryKey: ["echo_id"],
    columns: [{
      name: "echo_id",
      dataType: "bigint",
      logicalType: { kind: "bigint" },
      nullable: false,
      description: null,
    }],
  }],
};

type Format = "csv" | "duckdb";

/** A world with an `outside` folder next to the base, and a second project staged and published. */
class LinkWorld {
  readonly world: HostileWorld;
  /** A folder outside the base, what a planted link points to. */
  readonly outside: string;

  constructor(world: HostileWorld) {
    this.world = world;
    this.outside = join(world.root, "outside");
  }

  /** `{base}/{relative}`. */
  at(relative: string): string {
    return join(this.world.base, relative);
  }

  async send(path: "package" | "publish", body: unknown): Promise<Response> {
    return await this.world.publishApp().request(
      postJson(`/data-publish/${path}`, body, PUBLISH_KEY),
    );
  }

  /** Packages a dataset and checks it succeeded. */
  async package(
    project: string,
    start: string,
    format: Format,
    schema: "oncology" | "cardiology" = "oncology",
  ): Promise<void> {
    const res = await this.send("package", packageBody(project, start, format, schema));
    assert.equal(res.status, 200, await res.text());
  }

  /** Publishes a run and checks it succeeded. */
  async publish(project: string, start: string): Promise<void> {
    const res = await this.send("publish", publishBody(project, start));
    assert.equal(res.status, 200, await res.text());
  }
}

function packageBody(
  project: string,
  start: string,
  format: Format,
  schema: "oncology" | "cardiology" = "oncology",
) {
  return aTransferRequest({
    project_name: project,
    project_start_time: start,
    destination: { name: "LSC", type: "filestore", format },
    dataset: {
      name: `${schema}_extract`,
      schema_name: schema,
      description: null,
      tables: [{ name: schema === "oncology" ? "tumour_stage" : "echo" }],
      staging_path: null,
      publish_path: null,
    },
  });
}

function publishBody(project: string, start: string) {
  return aPublishRequest({ project_name: project, project_start_time: start });
}

async function linkWorld(): Promise<LinkWorld> {
  const world = hostileWorld();
  world.catalogs = [ONCOLOGY, CARDIOLOGY];
  world.rows = new Map([...ONCOLOGY_ROWS, ["cardiology.echo", [["1"], ["2"]]]]);
  const w = new LinkWorld(world);
  await mkdir(join(w.outside, "payload", "oncology"), { recursive: true });
  await writeFile(join(w.outside, "secret.csv"), "outside,data\n1,2\n");
  await writeFile(join(w.outside, "payload", "oncology", "tumour_stage.csv"), "stage_id\n9\n");
  // Another project: one run published, one CSV run and one DuckDB run staged.
  await w.package("Other", "20250101_000000", "csv");
  await w.publish("Other", "20250101_000000");
  await w.package("Other", START, "csv");
  await w.package("Other", "20250612_000000", "duckdb");
  return w;
}

/** One planted link (or edited manifest) and the requests it must make the service refuse. */
interface Attack {
  readonly name: string;
  /** Stages (or publishes) what the attack needs, then plants it. */
  plant(w: LinkWorld): Promise<void>;
  /** The requests to send, all of which must be refused. */
  readonly requests: readonly ("package" | "publish")[];
  /** The format of the `package` request. */
  readonly format?: Format;
  /** `unsafe_filesystem_entry` unless said otherwise. */
  readonly code?: "unsafe_filesystem_entry" | "staging_integrity";
  /** The relative path the detail must name. */
  readonly names: string;
}

/** Replaces a staged file with a symbolic link, or a hard link, to `target`. */
async function replaceWith(
  kind: "symlink" | "hardlink",
  target: string,
  path: string,
): Promise<void> {
  await rm(path);
  if (kind === "symlink") await symlink(target, path);
  else await link(target, path);
}

/** Edits a staged run's manifest as JSON, keeping its signature. */
async function editManifest(
  w: LinkWorld,
  run: string,
  edit: (files: { path: string; sha512: string; bytes: number; datasets: string[] }[]) => void,
): Promise<void> {
  const path = w.at(`staging/${run}/${MANIFEST}`);
  const manifest = JSON.parse(await readFile(path, "utf8"));
  edit(manifest.files);
  await writeFile(path, JSON.stringify(manifest, null, 2));
}

const ATTACKS: readonly Attack[] = [
  {
    name: "staging project folder is a link to another project's staging folder",
    plant: (w) => symlink(w.at("staging/Other"), w.at("staging/Pr042")),
    requests: ["package", "publish"],
    names: "staging/Pr042",
  },
  {
    name: "staging project folder is a link to a folder outside the base",
    plant: (w) => symlink(w.outside, w.at("staging/Pr042")),
    requests: ["package", "publish"],
    names: "staging/Pr042",
  },
  {
    name: "staging run folder is a link to another project's run folder",
    plant: async (w) => {
      await mkdir(w.at("staging/Pr042"));
      await symlink(w.at(`staging/${OTHER_RUN}`), w.at(`staging/${RUN}`));
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}`,
  },
  {
    name: "data/outputs is a link to a folder outside the base",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await rename(w.at(`staging/${RUN}/data/outputs`), w.at(`staging/${RUN}/data/moved`));
      await symlink(join(w.outside, "payload"), w.at(`staging/${RUN}/data/outputs`));
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/data/outputs`,
  },
  {
    name: "the dataset's folder is a link to another project's dataset folder",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      const dataset = `staging/${RUN}/data/outputs/oncology`;
      await rm(w.at(dataset), { recursive: true });
      await symlink(w.at(`staging/${OTHER_RUN}/data/outputs/oncology`), w.at(dataset));
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/data/outputs/oncology`,
  },
  {
    name: "a staged CSV is a link to a file outside the base",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await replaceWith("symlink", join(w.outside, "secret.csv"), w.at(`staging/${RUN}/${CSV}`));
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/${CSV}`,
  },
  {
    name: "a staged CSV is a hard link to a file outside the base",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await replaceWith("hardlink", join(w.outside, "secret.csv"), w.at(`staging/${RUN}/${CSV}`));
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/${CSV}`,
  },
  {
    name: "a staged CSV is a hard link to another project's staged CSV",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await replaceWith(
        "hardlink",
        w.at(`staging/${OTHER_RUN}/${CSV}`),
        w.at(`staging/${RUN}/${CSV}`),
      );
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/${CSV}`,
  },
  {
    name: "database.duckdb is a link to another project's database (DuckDB writer)",
    plant: async (w) => {
      await w.package("Pr042", START, "duckdb");
      await replaceWith(
        "symlink",
        w.at(`staging/${OTHER_DUCKDB_RUN}/${DUCKDB}`),
        w.at(`staging/${RUN}/${DUCKDB}`),
      );
    },
    requests: ["package", "publish"],
    format: "duckdb",
    names: `staging/${RUN}/${DUCKDB}`,
  },
  {
    name: "database.duckdb is a hard link to another project's database (DuckDB writer)",
    plant: async (w) => {
      await w.package("Pr042", START, "duckdb");
      await replaceWith(
        "hardlink",
        w.at(`staging/${OTHER_DUCKDB_RUN}/${DUCKDB}`),
        w.at(`staging/${RUN}/${DUCKDB}`),
      );
    },
    requests: ["package", "publish"],
    format: "duckdb",
    names: `staging/${RUN}/${DUCKDB}`,
  },
  {
    name: "database.duckdb is planted as a link before the first package (DuckDB writer)",
    plant: async (w) => {
      await mkdir(w.at(`staging/${RUN}/data/outputs`), { recursive: true });
      await symlink(join(w.outside, "secret.csv"), w.at(`staging/${RUN}/${DUCKDB}`));
    },
    requests: ["package"],
    format: "duckdb",
    names: `staging/${RUN}/${DUCKDB}`,
  },
  {
    name: "the staging manifest is a link to another project's manifest",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await replaceWith(
        "symlink",
        w.at(`staging/${OTHER_RUN}/${MANIFEST}`),
        w.at(`staging/${RUN}/${MANIFEST}`),
      );
    },
    requests: ["package", "publish"],
    names: `staging/${RUN}/${MANIFEST}`,
  },
  {
    name: "a manifest entry is edited to point outside the base",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await editManifest(w, RUN, (files) => {
        files[0]!.path = "data/outputs/../../../../../../outside/secret.csv";
      });
    },
    requests: ["publish"],
    code: "staging_integrity",
    names: MANIFEST,
  },
  {
    name: "a manifest entry is edited to point at another project's file, with its hash",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      const other = JSON.parse(await readFile(w.at(`staging/${OTHER_RUN}/${MANIFEST}`), "utf8"));
      await editManifest(w, RUN, (files) => {
        files[0] = { ...other.files[0], path: `data/outputs/../../../../${OTHER_RUN}/${CSV}` };
      });
    },
    requests: ["publish"],
    code: "staging_integrity",
    names: MANIFEST,
  },
  {
    name: "a manifest entry's hash is changed to match an edited file",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await writeFile(w.at(`staging/${RUN}/${CSV}`), "stage_id\n666\n");
      const sha512 = await sha512Hex("stage_id\n666\n");
      await editManifest(w, RUN, (files) => {
        files[0]!.sha512 = sha512;
        files[0]!.bytes = 13;
      });
    },
    requests: ["publish"],
    code: "staging_integrity",
    names: MANIFEST,
  },
  {
    name: "a manifest entry is added",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await writeFile(w.at(`staging/${RUN}/data/outputs/oncology/extra.csv`), "x\n");
      const sha512 = await sha512Hex("x\n");
      await editManifest(w, RUN, (files) => {
        files.push({
          path: "data/outputs/oncology/extra.csv",
          sha512,
          bytes: 2,
          datasets: ["oncology"],
        });
      });
    },
    requests: ["publish"],
    code: "staging_integrity",
    names: MANIFEST,
  },
  {
    name: "another project's staged run is copied in as plain files, manifest included",
    plant: async (w) => {
      await mkdir(w.at("staging/Pr042"));
      await cp(w.at(`staging/${OTHER_RUN}`), w.at(`staging/${RUN}`), { recursive: true });
    },
    requests: ["publish"],
    code: "staging_integrity",
    names: MANIFEST,
  },
  {
    name: "the production project folder is a link to a folder outside the base",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await symlink(w.outside, w.at("production/Pr042"));
    },
    requests: ["publish"],
    names: "production/Pr042",
  },
  {
    name: "the production project folder is a link to another project's production folder",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await symlink(w.at("production/Other"), w.at("production/Pr042"));
    },
    requests: ["publish"],
    names: "production/Pr042",
  },
  {
    name: "the production run folder is a link to another project's published bag",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await mkdir(w.at("production/Pr042"));
      await symlink(w.at(`production/${OTHER_PUBLISHED_RUN}`), w.at(`production/${RUN}`));
    },
    requests: ["publish"],
    names: `production/${RUN}`,
  },
  {
    name: "a published file is a link outside the base (publish again with nothing staged)",
    plant: async (w) => {
      await w.package("Pr042", START, "csv");
      await w.publish("Pr042", START);
      await replaceWith("symlink", join(w.outside, "secret.csv"), w.at(`production/${RUN}/${CSV}`));
    },
    requests: ["publish"],
    names: `production/${RUN}/${CSV}`,
  },
];

async function sha512Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("filesystem links: every planted link or edited manifest is refused and changes nothing", async (t) => {
  for (const attack of ATTACKS) {
    await t.step(attack.name, async () => {
      const w = await linkWorld();
      using world = w.world;
      await attack.plant(w);
      const before = await snapshotTree(world.root);
      const forbidden = [world.root, world.base, world.secretsDir];
      const auditBefore = world.audit?.records.length ?? 0;

      for (const request of attack.requests) {
        const res = await w.send(
          request,
          request === "package"
            ? packageBody("Pr042", START, attack.format ?? "csv", "cardiology")
            : publishBody("Pr042", START),
        );
        const text = await res.text();
        assert.equal(res.status, 409, `${request}: ${text}`);
        const payload = assertErrorEnvelope(JSON.parse(text), {
          code: attack.code ?? "unsafe_filesystem_entry",
          forbidden,
        });
        assert.ok(
          payload.detail.includes(`"${attack.names}"`),
          `${request} names ${attack.names}: ${payload.detail}`,
        );
      }

      // Nothing changed: not the link's target, not the other project, not production, not staging.
      assert.deepEqual(changedPaths(before, await snapshotTree(world.root)), [], "files changed");
      const records = world.audit?.records.slice(auditBefore) ?? [];
      assert.deepEqual(
        records.map((r) => [r.status, r.error_code, r.files]),
        attack.requests.map(() => [409, attack.code ?? "unsafe_filesystem_entry", null]),
      );
      assertLeaksNothing(world.audit?.text() ?? "", forbidden);
      assertLeaksNothing(world.allLogLines().join("\n"), forbidden);
    });
  }
});

Deno.test("filesystem links: a package after an edited manifest starts afresh and never reads what it listed", async () => {
  const w = await linkWorld();
  using world = w.world;
  await w.package("Pr042", START, "csv");
  await editManifest(w, RUN, (files) => {
    files.push({
      path: "data/outputs/../../../../../../outside/secret.csv",
      sha512: "0".repeat(128),
      bytes: 1,
      datasets: ["cardiology"],
    });
  });
  const outsideBefore = await snapshotTree(w.outside);
  const otherBefore = await snapshotTree(w.at("staging/Other"));

  await w.package("Pr042", START, "csv", "cardiology");
  const res = await w.send("publish", publishBody("Pr042", START));
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  // Only what the new package staged; the datasets the unverifiable manifest listed are gone.
  assert.deepEqual(
    json.payload.data_published.map((f: { file_path: string }) => f.file_path),
    ["data/outputs/cardiology/echo.csv"],
  );
  assert.deepEqual(changedPaths(outsideBefore, await snapshotTree(w.outside)), []);
  assert.deepEqual(changedPaths(otherBefore, await snapshotTree(w.at("staging/Other"))), []);
  assert.ok(
    world.publishLog.lines.some((l) => l.includes('"staging_manifest_replaced"')),
    "the replaced manifest is logged",
  );
  assertLeaksNothing(world.allLogLines().join("\n"), [world.root, world.base]);
});

Deno.test("filesystem links: with the link removed, the same requests succeed", async () => {
  const w = await linkWorld();
  using _world = w.world;
  await symlink(w.outside, w.at("staging/Pr042"));
  const refused = await w.send("package", packageBody("Pr042", START, "duckdb"));
  assert.equal(refused.status, 409, await refused.text());
  await rm(w.at("staging/Pr042"));
  await w.package("Pr042", START, "duckdb");
  await w.package("Pr042", START, "duckdb", "cardiology");
  await w.publish("Pr042", START);
});

// ---------------------------------------------------------------------------------------------------------
// The startup sweep, the audit trail and the startup checks.

/** A secrets folder with the publish key, and a filestore base, under a fresh temporary root. */
async function serviceRoot(): Promise<{ root: string; base: string; env: Record<string, string> }> {
  const root = await Deno.makeTempDir({ prefix: "cr8tor-links-service-" });
  const base = join(root, "lsc");
  await mkdir(join(root, "secrets"));
  await writeFile(join(root, "secrets", "publishserviceapikey"), PUBLISH_KEY);
  await mkdir(join(base, "staging"), { recursive: true });
  await mkdir(join(base, "production"));
  await mkdir(join(root, "outside", "inner"), { recursive: true });
  await writeFile(join(root, "outside", "inner", "keep.csv"), "keep\n");
  return {
    root,
    base,
    env: {
      SECRETS_MNT_PATH: join(root, "secrets"),
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: base,
      AUDIT_LOG_PATH: join(root, "audit", "publish.jsonl"),
    },
  };
}

Deno.test("filesystem links: the startup sweep of the publish service follows no link and logs it", async () => {
  const { root, base, env } = await serviceRoot();
  try {
    await mkdir(join(root, "audit"));
    const runDir = join(base, "staging", "Pr042", START);
    await mkdir(runDir, { recursive: true });
    await mkdir(join(base, "production", "Pr042"));
    await symlink(
      join(root, "outside"),
      join(runDir, ".work-11111111-1111-1111-1111-111111111111"),
    );
    await symlink(
      join(root, "outside"),
      join(base, "production", "Pr042", `.publish-${START}-22222222-2222-2222-2222-222222222222`),
    );
    await symlink(
      join(root, "outside", "inner"),
      join(
        base,
        "production",
        "Pr042",
        ".old-20240101_000000-33333333-3333-3333-3333-333333333333",
      ),
    );
    const before = await snapshotTree(root);
    const lines: string[] = [];
    await buildPublishService(env, (line) => lines.push(line));
    assert.deepEqual(
      changedPaths(before, await snapshotTree(root)).filter((p) => !p.startsWith("audit")),
      [],
    );
    const unsafe = lines.map((l) => JSON.parse(l)).filter((e) =>
      e.event === "unsafe_filesystem_entry"
    );
    assert.deepEqual(unsafe.map((e) => e.path).sort(), [
      "production/Pr042/.old-20240101_000000-33333333-3333-3333-3333-333333333333",
      `production/Pr042/.publish-${START}-22222222-2222-2222-2222-222222222222`,
      `staging/Pr042/${START}/.work-11111111-1111-1111-1111-111111111111`,
    ]);
    // The warnings name paths relative to the base; no line holds the key.
    assertLeaksNothing(JSON.stringify(unsafe), [root]);
    assert.ok(!lines.join("\n").includes(PUBLISH_KEY), "the key is never logged");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

Deno.test("filesystem links: the audit trail is never opened through a symbolic link", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "cr8tor-audit-link-" });
  try {
    const target = join(root, "target.txt");
    await writeFile(target, "not an audit trail\n");
    const linked = join(root, "audit.jsonl");
    await symlink(target, linked);
    const dangling = join(root, "dangling.jsonl");
    await symlink(join(root, "created-through-link.jsonl"), dangling);
    const before = await snapshotTree(root);

    await t.step("FileAuditTrail refuses to check or append", async () => {
      for (const path of [linked, dangling]) {
        const trail = new FileAuditTrail(path);
        await assert.rejects(trail.checkWritable(), (e) => {
          assert.ok(e instanceof AuditTrailUnavailableError);
          assert.match(e.message, /symbolic link/);
          return true;
        });
      }
    });
    await t.step("the service refuses to start", () => {
      for (const path of [linked, dangling]) {
        assert.throws(
          () => auditTrailFromEnv({ AUDIT_LOG_PATH: path }, memoryLogger()),
          (e) => e instanceof ConfigError && /symbolic link/.test(e.message),
        );
      }
    });
    assert.deepEqual(changedPaths(before, await snapshotTree(root)), []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

Deno.test("filesystem links: the publish service refuses an audit trail inside a filestore", async (t) => {
  const { root, base, env } = await serviceRoot();
  try {
    await mkdir(join(root, "audit"));
    // A folder outside the base that is a link into it, and an area mounted (linked) elsewhere.
    await symlink(join(base, "production"), join(root, "looks-outside"));
    const cases: [string, string][] = [
      ["in the base", join(base, "audit.jsonl")],
      ["in staging", join(base, "staging", "audit.jsonl")],
      ["through a link into production", join(root, "looks-outside", "audit.jsonl")],
      ["in a folder not created yet", join(base, "production", "new", "audit.jsonl")],
    ];
    for (const [name, path] of cases) {
      await t.step(name, async () => {
        const lines: string[] = [];
        await assert.rejects(
          buildPublishService({ ...env, AUDIT_LOG_PATH: path }, (l) => lines.push(l)),
          (e) => {
            assert.ok(e instanceof ConfigError, String(e));
            assert.match(e.message, /AUDIT_LOG_PATH is inside filestore destination LSC/);
            return true;
          },
        );
        await assert.rejects(readFile(path), { code: "ENOENT" });
      });
    }
    await t.step("an area mounted elsewhere counts as the filestore", async () => {
      const elsewhere = join(root, "staging-volume");
      await mkdir(elsewhere);
      await rm(join(base, "staging"), { recursive: true });
      await symlink(elsewhere, join(base, "staging"));
      await assert.rejects(
        buildPublishService({ ...env, AUDIT_LOG_PATH: join(elsewhere, "audit.jsonl") }, () => {}),
        ConfigError,
      );
    });
    await t.step("outside every filestore it starts", async () => {
      await buildPublishService(env, () => {});
      assert.equal(await readFile(env.AUDIT_LOG_PATH!, "utf8"), "");
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
