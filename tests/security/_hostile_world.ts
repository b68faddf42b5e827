/**
 * What the adversarial tests need around a {@link FakeWorld}: a temporary root with sentinel files next to
 * and above the filestore base and a real secrets directory, snapshots of that tree, and the checks every
 * hostile reply must pass (the CR8TOR error envelope, nothing secret or server-side in it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { SourceAccess } from "../../apps/_shared/source_access.ts";
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import type { SchemaCatalog } from "../../domain/catalog.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../support/catalogs.ts";
import {
  APPROVAL_KEY,
  FakeWorld,
  METADATA_KEY,
  PUBLISH_KEY,
  SOURCE_PASSWORD,
} from "../support/apps.ts";

/** The content of a file just outside the secrets directory: what a traversing secret name would read. */
export const OUTSIDE_SECRET = `outside-secret-${crypto.randomUUID()}`;

/** Every value that must never appear in a reply, a log line or an audit record. */
export const SECRET_VALUES = [
  SOURCE_PASSWORD,
  APPROVAL_KEY,
  METADATA_KEY,
  PUBLISH_KEY,
  OUTSIDE_SECRET,
] as const;

/**
 * A source schema whose table names are hostile: a request cannot name them (names are checked), but a
 * request for every table (`tables: null`) reaches them through the catalogue.
 */
export const HOSTILE_NAMES: SchemaCatalog = {
  name: "hostile_names",
  description: null,
  tables: ["../../../../PWNED", 'x"; DROP TABLE tumour_stage; --'].map((name) => ({
    ...ONCOLOGY.tables[0]!,
    name,
  })),
};

/** A secret store over real files that records every name it is asked for. */
class RecordingFileSecretStore extends MemorySecretStore {
  readonly reads: string[] = [];
  readonly #files: FileSecretStore;

  constructor(directory: string) {
    super();
    this.#files = new FileSecretStore(directory);
  }

  override get(name: string): Promise<string> {
    this.reads.push(name);
    return this.#files.get(name);
  }
}

/**
 * A FakeWorld whose filestore base lies three folders below a temporary root, whose secrets are files in
 * `{root}/secrets`, and whose three apps share an audit trail. Build it with {@link hostileWorld}.
 */
export class HostileWorld extends FakeWorld {
  readonly root: string;
  readonly secretsDir: string;
  readonly fileSecrets: RecordingFileSecretStore;

  constructor(root: string) {
    super();
    this.root = root;
    this.secretsDir = join(root, "secrets");
    this.fileSecrets = new RecordingFileSecretStore(this.secretsDir);
    this.audit = new MemoryAuditTrail();
    this.catalogs = [ONCOLOGY, HOSTILE_NAMES];
    const hostileRows = HOSTILE_NAMES.tables.map((t): [string, (string | null)[][]] => [
      `hostile_names.${t.name}`,
      [["1", "a", null]],
    ]);
    this.rows = new Map([...ONCOLOGY_ROWS, ...hostileRows]);
  }

  override sourceAccess(): SourceAccess {
    return { ...super.sourceAccess(), secrets: this.fileSecrets };
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    Deno.removeSync(this.root, { recursive: true });
  }
}

/** The folders between the root and the filestore base; traversal up to five levels lands in the root. */
const LEVELS = ["l1", "l2", "l3"] as const;

/**
 * Creates the temporary root, its sentinels and secrets, and a {@link HostileWorld} whose filestore base is
 * `{root}/l1/l2/l3/cr8tor-filestore-*`. FakeWorld makes its base with `Deno.makeTempDirSync`, which honours
 * `TMPDIR`; it is set only for the (synchronous) construction.
 *
 * @param World the class to build, a {@link HostileWorld} or a subclass of it.
 */
export function hostileWorld<W extends HostileWorld = HostileWorld>(
  World: new (root: string) => W = HostileWorld as new (root: string) => W,
): W {
  const root = Deno.makeTempDirSync({ prefix: "cr8tor-hostile-" });
  let dir = root;
  Deno.writeTextFileSync(join(root, "sentinel.txt"), "root sentinel\n");
  Deno.writeTextFileSync(join(root, "outside-secret"), OUTSIDE_SECRET);
  for (const level of LEVELS) {
    dir = join(dir, level);
    Deno.mkdirSync(join(dir, "staging"), { recursive: true });
    Deno.mkdirSync(join(dir, "production"));
    Deno.writeTextFileSync(join(dir, "sentinel.txt"), `${level} sentinel\n`);
    Deno.writeTextFileSync(join(dir, "staging", "decoy.csv"), "a\n1\n");
  }
  const secrets = join(root, "secrets");
  Deno.mkdirSync(secrets);
  const files: Record<string, string> = {
    sourceuser: "reader",
    sourcepassword: SOURCE_PASSWORD,
    approvalserviceapikey: APPROVAL_KEY,
    metadataserviceapikey: METADATA_KEY,
    publishserviceapikey: PUBLISH_KEY,
  };
  for (const [name, value] of Object.entries(files)) {
    Deno.writeTextFileSync(join(secrets, name), value + "\n");
  }
  const previous = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", dir);
  try {
    return new World(root);
  } finally {
    if (previous === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", previous);
  }
}

/** Each entry of a tree: its type and, for files, size, modification time and content hash. */
export type TreeSnapshot = Map<string, string>;

/** Every file, folder and link under `dir` (links are not followed), keyed by relative path. */
export async function snapshotTree(dir: string): Promise<TreeSnapshot> {
  const out: TreeSnapshot = new Map();
  async function walk(current: string): Promise<void> {
    for (const name of (await readdir(current)).sort()) {
      const path = join(current, name);
      const info = await lstat(path);
      const key = relative(dir, path).split(sep).join("/");
      if (info.isDirectory()) {
        // A folder is its entries; its mtime only says something was created and removed again.
        out.set(key, "dir");
        await walk(path);
      } else if (info.isFile()) {
        const hash = createHash("sha256").update(await readFile(path)).digest("hex");
        out.set(key, `file ${info.size} ${info.mtimeMs} ${hash}`);
      } else {
        out.set(key, `other ${info.mtimeMs}`);
      }
    }
  }
  await walk(dir);
  return out;
}

/** The paths that were added, removed or changed between two snapshots. */
export function changedPaths(before: TreeSnapshot, after: TreeSnapshot): string[] {
  const changed = new Set<string>();
  for (const [path, value] of before) if (after.get(path) !== value) changed.add(path);
  for (const path of after.keys()) if (!before.has(path)) changed.add(path);
  return [...changed].sort();
}

/** The CR8TOR error envelope, and nothing else, with a detail that leaks nothing. */
export function assertErrorEnvelope(
  json: unknown,
  expected: { code: string; forbidden: readonly string[] },
): { detail: string; code: string; request_id: string; issues?: { path: string }[] } {
  assert.ok(typeof json === "object" && json !== null, "the reply is a JSON object");
  const body = json as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ["payload", "status"]);
  assert.equal(body.status, "error");
  const payload = body.payload as Record<string, unknown>;
  assert.ok(typeof payload === "object" && payload !== null, "payload is an object");
  const keys = Object.keys(payload).sort();
  assert.ok(
    keys.join() === "code,detail,request_id" || keys.join() === "code,detail,issues,request_id",
    `payload keys: ${keys.join()}`,
  );
  assert.equal(typeof payload.detail, "string");
  assert.ok((payload.detail as string).length > 0, "detail is not empty");
  assert.equal(payload.code, expected.code, `code (detail: ${payload.detail})`);
  assert.equal(typeof payload.request_id, "string");
  assert.ok((payload.request_id as string).length > 0, "request_id is not empty");
  if (payload.issues !== undefined) {
    assert.ok(Array.isArray(payload.issues), "issues is a list");
    for (const issue of payload.issues as unknown[]) {
      const { path, message } = issue as { path?: unknown; message?: unknown };
      assert.equal(typeof path, "string");
      assert.equal(typeof message, "string");
    }
  }
  assertLeaksNothing(JSON.stringify(payload), expected.forbidden);
  return payload as ReturnType<typeof assertErrorEnvelope>;
}

/** Fails when `text` holds a secret value or one of the server's own paths. */
export function assertLeaksNothing(text: string, forbidden: readonly string[]): void {
  for (const value of [...SECRET_VALUES, ...forbidden, "file://", "/tmp/"]) {
    assert.ok(!text.includes(value), `leaks ${JSON.stringify(value)}: ${text.slice(0, 300)}`);
  }
}
