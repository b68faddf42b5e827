/**
 * `deno task verify-release <folder> [--keys <JWKS file or URL>]`: checks a published filestore release
 * offline (`docs/provenance.md`) and prints one line per check:
 *
 * - the bag: `bagit.txt`, every payload manifest entry (the file exists with that SHA-512), no payload
 *   file unlisted, `Payload-Oxum`, every tag manifest entry, and that the tag manifest lists the RO-Crate
 *   and every other tag file (only the receipt stays out: it signs the tag manifest);
 * - the RO-Crate: every File entity under `data/` is a payload file with its size and SHA-512, and every
 *   payload file has a File entity;
 * - the receipt: `release-receipt.jws` verifies against the keys, signs the SHA-512 of
 *   `tagmanifest-sha512.txt`, and names the bag's project and start time (`External-Identifier`).
 *
 * Exit status 0 only if every check holds; 1 when one fails or was not made (without `--keys` the
 * receipt is not checked); 2 on a usage error or when the keys cannot be read. It needs nothing but
 * Deno: its module graph holds only `node:` built-ins and npm-free domain modules (a test asserts it),
 * files are hashed as streams, and only `--keys <URL>` needs `--allow-net`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type ManifestEntry, parseManifest } from "../domain/bagit.ts";
import { filePathOfEntityId } from "../domain/crate_file_ids.ts";
import {
  CRATE_TAG_FILE,
  RECEIPT_TAG_FILE,
  type ReleaseKeySet,
  verifyReceipt,
} from "../domain/release_receipt.ts";

/** One check: `ok` is `null` when it could not be made. */
export interface ReleaseCheck {
  readonly ok: boolean | null;
  readonly what: string;
}

const PAYLOAD_MANIFEST = "manifest-sha512.txt";
const TAG_MANIFEST = "tagmanifest-sha512.txt";

/** A file's SHA-512 (lower-case hex) and size, read as a stream so a large file never sits in memory. */
async function sha512OfFile(path: string): Promise<{ sha512: string; bytes: number }> {
  const hash = createHash("sha512");
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Uint8Array);
    bytes += (chunk as Uint8Array).length;
  }
  return { sha512: hash.digest("hex"), bytes };
}

/** A manifest path that stays inside the bag: relative, `/`-separated, no empty, `.` or `..` segment. */
function isSafeRelativePath(path: string): boolean {
  return path.split("/").every((s) => s !== "" && s !== "." && s !== "..") &&
    !path.includes("\\") && !path.includes("\0");
}

/** Every plain file under `dir` (paths relative to `root`); links and other entries as problems. */
async function walkPayload(
  root: string,
  dir: string,
): Promise<{ files: string[]; problems: string[] }> {
  const files: string[] = [];
  const problems: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      const inner = await walkPayload(root, path);
      files.push(...inner.files);
      problems.push(...inner.problems);
    } else if (entry.isFile()) files.push(path);
    else problems.push(`${path} is not a plain file`);
  }
  return { files, problems };
}

/** A file's text, or `undefined` when it is missing. */
async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Checks each entry of a manifest: a plain file at a safe path with that SHA-512. */
async function checkEntries(
  folder: string,
  entries: readonly ManifestEntry[],
): Promise<{ problems: string[]; bytes: Map<string, number> }> {
  const problems: string[] = [];
  const bytes = new Map<string, number>();
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.path)) {
      problems.push(`${entry.path} is listed twice`);
      continue;
    }
    seen.add(entry.path);
    if (!isSafeRelativePath(entry.path)) {
      problems.push(`${JSON.stringify(entry.path)} is not a path inside the bag`);
      continue;
    }
    const full = join(folder, entry.path);
    const info = await lstat(full).catch(() => undefined);
    if (info === undefined) {
      problems.push(`${entry.path} is missing`);
      continue;
    }
    if (!info.isFile()) {
      problems.push(`${entry.path} is not a plain file`);
      continue;
    }
    const digest = await sha512OfFile(full);
    bytes.set(entry.path, digest.bytes);
    if (digest.sha512 !== entry.sha512) problems.push(`${entry.path} has another SHA-512`);
  }
  return { problems, bytes };
}

function summary(problems: readonly string[], max = 5): string {
  const shown = problems.slice(0, max).join("; ");
  return problems.length > max ? `${shown}; and ${problems.length - max} more` : shown;
}

/** The `Label: value` fields of `bag-info.txt` (first value of each label). */
function bagInfoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([^:\s][^:]*):\s*(.*)$/.exec(line.replace(/\r$/, ""));
    if (match !== null && !fields.has(match[1]!)) fields.set(match[1]!, match[2]!);
  }
  return fields;
}

/**
 * Verifies a release folder; `keys` absent leaves the receipt unchecked. Never throws on a bad bag:
 * every problem becomes a failed check.
 */
export async function verifyRelease(
  folder: string,
  keys: ReleaseKeySet | undefined,
): Promise<ReleaseCheck[]> {
  const checks: ReleaseCheck[] = [];
  const check = (ok: boolean | null, what: string) => checks.push({ ok, what });

  // bagit.txt
  const bagit = await readText(join(folder, "bagit.txt"));
  check(
    bagit !== undefined && /^BagIt-Version: 1\.\d+\r?\n/.test(bagit) &&
      /\nTag-File-Character-Encoding: UTF-8\r?\n?$/.test(bagit),
    bagit === undefined
      ? "bagit.txt is missing: this is not a bag"
      : "bagit.txt declares BagIt 1.x with UTF-8 tag files",
  );

  // payload manifest
  const manifestText = await readText(join(folder, PAYLOAD_MANIFEST));
  let payload: ManifestEntry[] | undefined;
  try {
    payload = manifestText === undefined ? undefined : parseManifest(manifestText);
  } catch {
    payload = undefined;
  }
  const payloadBytes = new Map<string, number>();
  if (payload === undefined) {
    check(
      false,
      `${PAYLOAD_MANIFEST} is ${manifestText === undefined ? "missing" : "not a manifest"}`,
    );
  } else {
    const outside = payload.filter((e) => !e.path.startsWith("data/"));
    const { problems, bytes } = await checkEntries(folder, payload);
    for (const [path, size] of bytes) payloadBytes.set(path, size);
    problems.unshift(...outside.map((e) => `${e.path} is not under data/`));
    check(
      problems.length === 0,
      problems.length === 0
        ? `${PAYLOAD_MANIFEST}: all ${payload.length} payload file(s) have their SHA-512`
        : `${PAYLOAD_MANIFEST}: ${summary(problems)}`,
    );
    const walked = await walkPayload(folder, "data").catch(() => ({
      files: [] as string[],
      problems: ["data/ cannot be read"],
    }));
    const listed = new Set(payload.map((e) => e.path));
    const unlisted = [
      ...walked.problems,
      ...walked.files.filter((f) => !listed.has(f)).map((f) => `${f} is not in the manifest`),
    ];
    check(
      unlisted.length === 0,
      unlisted.length === 0
        ? "data/ holds no file the payload manifest does not list"
        : `data/: ${summary(unlisted)}`,
    );
    const oxum = bagInfoFields(await readText(join(folder, "bag-info.txt")) ?? "").get(
      "Payload-Oxum",
    );
    let total = 0;
    for (const f of walked.files) total += (await lstat(join(folder, f))).size;
    const expected = `${total}.${walked.files.length}`;
    check(
      oxum === expected,
      oxum === undefined
        ? "bag-info.txt has no Payload-Oxum"
        : `Payload-Oxum ${oxum} ${oxum === expected ? "matches" : `does not match ${expected}`}`,
    );
  }

  // tag manifest
  const tagText = await readText(join(folder, TAG_MANIFEST));
  let tags: ManifestEntry[] | undefined;
  try {
    tags = tagText === undefined ? undefined : parseManifest(tagText);
  } catch {
    tags = undefined;
  }
  if (tags === undefined) {
    check(false, `${TAG_MANIFEST} is ${tagText === undefined ? "missing" : "not a manifest"}`);
  } else {
    const { problems } = await checkEntries(folder, tags);
    const listed = new Set(tags.map((e) => e.path));
    problems.unshift(
      ...tags.filter((e) => e.path.startsWith("data/")).map((e) => `${e.path} is payload`),
    );
    const rootFiles = (await readdir(folder, { withFileTypes: true }))
      .filter((e) => !e.isDirectory()).map((e) => e.name);
    const unlisted = rootFiles.filter((name) =>
      !listed.has(name) && name !== RECEIPT_TAG_FILE && !/^tagmanifest-[a-z0-9]+\.txt$/.test(name)
    );
    problems.push(...unlisted.map((name) => `${name} is not listed`));
    if (!listed.has(CRATE_TAG_FILE)) problems.push(`${CRATE_TAG_FILE} is not listed`);
    check(
      problems.length === 0,
      problems.length === 0
        ? `${TAG_MANIFEST}: all ${tags.length} tag file(s) have their SHA-512, ${CRATE_TAG_FILE} among them`
        : `${TAG_MANIFEST}: ${summary(problems)}`,
    );
  }

  // crate
  checks.push(await checkCrate(folder, payload, payloadBytes));

  // receipt
  checks.push(...await checkReceipt(folder, keys, tagText));
  return checks;
}

/** Every File entity under `data/` is a payload file with its size and SHA-512, and vice versa. */
async function checkCrate(
  folder: string,
  payload: readonly ManifestEntry[] | undefined,
  payloadBytes: ReadonlyMap<string, number>,
): Promise<ReleaseCheck> {
  const text = await readText(join(folder, CRATE_TAG_FILE));
  if (text === undefined) return { ok: false, what: `${CRATE_TAG_FILE} is missing` };
  let graph: unknown;
  try {
    graph = (JSON.parse(text) as { "@graph"?: unknown })["@graph"];
  } catch {
    return { ok: false, what: `${CRATE_TAG_FILE} is not JSON` };
  }
  if (!Array.isArray(graph)) return { ok: false, what: `${CRATE_TAG_FILE} has no @graph` };
  if (payload === undefined) {
    return { ok: null, what: `${CRATE_TAG_FILE}: not compared (no payload manifest)` };
  }
  const manifest = new Map(payload.map((e) => [e.path, e.sha512]));
  const problems: string[] = [];
  const described = new Set<string>();
  for (const entity of graph as Record<string, unknown>[]) {
    const types = [entity?.["@type"]].flat();
    const id = entity?.["@id"];
    if (!types.includes("File") || typeof id !== "string") continue;
    let path: string;
    try {
      path = filePathOfEntityId(id);
    } catch {
      problems.push(`File ${JSON.stringify(id)} is not a valid path`);
      continue;
    }
    if (!path.startsWith("data/")) {
      problems.push(`File ${path} is not a payload file`);
      continue;
    }
    described.add(path);
    const sha512 = manifest.get(path);
    if (sha512 === undefined) {
      problems.push(`File ${path} is not in the payload`);
      continue;
    }
    if (entity.sha512 !== sha512) problems.push(`File ${path} has another SHA-512`);
    const size = payloadBytes.get(path);
    if (size !== undefined && String(entity.contentSize) !== String(size)) {
      problems.push(`File ${path} has another contentSize`);
    }
  }
  for (const path of manifest.keys()) {
    if (!described.has(path)) problems.push(`${path} has no File entity`);
  }
  return problems.length === 0
    ? {
      ok: true,
      what: `${CRATE_TAG_FILE}: ${described.size} File entit${
        described.size === 1 ? "y matches" : "ies match"
      } the payload (path, size, SHA-512)`,
    }
    : { ok: false, what: `${CRATE_TAG_FILE}: ${summary(problems)}` };
}

/** The receipt's signature, its subject (the tag manifest's SHA-512) and its project and start time. */
async function checkReceipt(
  folder: string,
  keys: ReleaseKeySet | undefined,
  tagText: string | undefined,
): Promise<ReleaseCheck[]> {
  const jws = await readText(join(folder, RECEIPT_TAG_FILE));
  if (jws === undefined) return [{ ok: false, what: `${RECEIPT_TAG_FILE} is missing` }];
  if (keys === undefined) {
    return [{
      ok: null,
      what: `${RECEIPT_TAG_FILE} not checked: give the service's public keys with --keys ` +
        "<JWKS file or URL> (its GET /.well-known/release-keys)",
    }];
  }
  let claims;
  try {
    claims = await verifyReceipt(jws, keys);
  } catch (e) {
    return [{ ok: false, what: `${RECEIPT_TAG_FILE}: ${(e as Error).message}` }];
  }
  const out: ReleaseCheck[] = [{
    ok: true,
    what:
      `${RECEIPT_TAG_FILE}: signature verifies with key ${claims.kid} (signed ${claims.signed_at}` +
      `${claims.release_id === null ? "" : `, release ${claims.release_id}`})`,
  }];
  const tagSha512 = tagText === undefined
    ? undefined
    : createHash("sha512").update(tagText, "utf8").digest("hex");
  const subjectOk = claims.subject.kind === "bagit-tagmanifest-sha512" &&
    claims.subject.sha512 === tagSha512;
  out.push({
    ok: subjectOk,
    what: subjectOk
      ? `${RECEIPT_TAG_FILE} signs the SHA-512 of ${TAG_MANIFEST}`
      : `${RECEIPT_TAG_FILE} signs another ${
        claims.subject.kind === "bagit-tagmanifest-sha512" ? TAG_MANIFEST : claims.subject.kind
      } than this bag's`,
  });
  const identifier = bagInfoFields(await readText(join(folder, "bag-info.txt")) ?? "").get(
    "External-Identifier",
  );
  const named = `${claims.project_name}/${claims.project_start_time}`;
  out.push({
    ok: identifier === named,
    what: identifier === named
      ? `${RECEIPT_TAG_FILE} names this bag's project and start time (${named})`
      : `${RECEIPT_TAG_FILE} names ${named}, the bag is ${identifier ?? "unnamed"}`,
  });
  return out;
}

/**
 * Reads a JWKS from a file or an http(s) URL and checks its shape.
 *
 * @throws {Error} saying why the keys cannot be used.
 */
export async function readKeySet(source: string): Promise<ReleaseKeySet> {
  let text: string;
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source, { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`GET ${source} answered ${response.status}`);
    text = await response.text();
  } else {
    text = await readFile(source, "utf8");
  }
  const value = JSON.parse(text) as { keys?: unknown };
  if (!Array.isArray(value.keys)) throw new Error("the key set has no keys array");
  for (const key of value.keys as Record<string, unknown>[]) {
    if (key?.kty !== "OKP" || key.crv !== "Ed25519" || typeof key.x !== "string") {
      throw new Error("the key set holds a key that is not an Ed25519 public key");
    }
  }
  return value as ReleaseKeySet;
}

function print(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  stream.writeSync(new TextEncoder().encode(text + "\n"));
}

const USAGE = "Usage: deno task verify-release <folder> [--keys <JWKS file or URL>]";

if (import.meta.main) {
  const args = [...Deno.args];
  let keysSource: string | undefined;
  let usageError = false;
  const positional: string[] = [];
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === "--keys") keysSource = args.shift() ?? "";
    else if (arg.startsWith("--keys=")) keysSource = arg.slice("--keys=".length);
    else if (arg.startsWith("-")) usageError = true;
    else positional.push(arg);
  }
  const [folder] = positional;
  if (usageError || folder === undefined || positional.length !== 1 || keysSource === "") {
    print(Deno.stderr, USAGE);
    Deno.exit(2);
  }
  if (!(await lstat(folder).catch(() => undefined))?.isDirectory()) {
    print(Deno.stderr, `Cannot verify ${folder}: it is not a folder`);
    Deno.exit(2);
  }
  let keys: ReleaseKeySet | undefined;
  if (keysSource !== undefined) {
    try {
      keys = await readKeySet(keysSource);
    } catch (e) {
      print(Deno.stderr, `Cannot read the keys from ${keysSource}: ${(e as Error).message}`);
      Deno.exit(2);
    }
  }
  const checks = await verifyRelease(folder, keys);
  for (const c of checks) {
    print(Deno.stdout, `${c.ok === true ? "✓" : c.ok === false ? "✗" : "–"} ${c.what}`);
  }
  const failed = checks.filter((c) => c.ok === false).length;
  const unchecked = checks.filter((c) => c.ok === null).length;
  if (failed === 0 && unchecked === 0) {
    print(Deno.stdout, `Release verified: all ${checks.length} checks hold.`);
    Deno.exit(0);
  }
  const parts = [
    ...(failed > 0 ? [`${failed} check(s) failed`] : []),
    ...(unchecked > 0 ? [`${unchecked} check(s) not made`] : []),
  ];
  print(Deno.stdout, `Release NOT verified: ${parts.join(", ")}.`);
  Deno.exit(1);
}
