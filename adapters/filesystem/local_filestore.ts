/**
 * A filestore destination on a local or mounted filesystem (`TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`).
 *
 * Crash safety comes from renames, which are atomic within one filesystem:
 * - staging: a dataset is written into `{run}/.work-{uuid}/`, then each file is renamed into place and the
 *   manifest replaced by rename; a crash leaves at most a work folder (swept at startup) or a manifest that
 *   no longer matches, which publishing detects and refuses;
 * - production: the bag is assembled in `production/{project}/.publish-{start}-{uuid}/` and verified; the
 *   previous bag, if any, is renamed to `.old-{start}-{uuid}`, the new one renamed into place, then the old
 *   one removed. The startup sweep deletes unfinished `.publish-*` folders and renames an `.old-*` back when
 *   the swap did not complete, so production is always the previous or the new complete bag.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import {
  access,
  constants,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  bagInfoText,
  BAGIT_TXT,
  csvFormulaEscape,
  manifestText,
  parseManifest,
} from "../../domain/bagit.ts";
import { PROJECT_START_TIME_PATTERN } from "../../domain/names.ts";
import { emptyManifest, replaceDataset, StagingManifest } from "../../domain/staging_manifest.ts";
import { runFolder, type RunRef, STAGING_MANIFEST_NAME } from "../../domain/staging_layout.ts";
import type { StagedFile, StagingWork } from "../../ports/dataset_writer.ts";
import {
  type Filestore,
  FilestoreNotReadyError,
  NothingStagedError,
  type PublishedFile,
  StagingIntegrityError,
} from "../../ports/filestore.ts";
import { copyWithSha512, sha512File } from "./sha512.ts";

const AREAS = ["staging", "production"] as const;
const WORK_PREFIX = ".work-";
const PUBLISH_PREFIX = ".publish-";
const OLD_PREFIX = ".old-";
const TAG_FILES = ["bagit.txt", "bag-info.txt", "manifest-sha512.txt"] as const;

/** Options for {@link LocalFilestore}. */
export interface LocalFilestoreOptions {
  /** Today's date for `Bagging-Date`; injected for tests. */
  readonly today?: () => Date;
  /** Written as `Bag-Software-Agent`. */
  readonly softwareAgent?: string;
}

/** A filestore whose `staging/` and `production/` are directories under one base path. */
export class LocalFilestore implements Filestore {
  readonly #base: string;
  readonly #today: () => Date;
  readonly #agent: string;

  /** @param base the mount path; it is not touched until a method is called. */
  constructor(base: string, options: LocalFilestoreOptions = {}) {
    this.#base = base;
    this.#today = options.today ?? (() => new Date());
    this.#agent = options.softwareAgent ?? "cr8tor-publisher-ts";
  }

  async checkReady(): Promise<void> {
    for (const area of AREAS) {
      const path = join(this.#base, area);
      try {
        if (!(await stat(path)).isDirectory()) {
          throw new FilestoreNotReadyError(`Cannot use the ${area} area: it is not a directory`);
        }
      } catch (e) {
        if (e instanceof FilestoreNotReadyError) throw e;
        throw new FilestoreNotReadyError(`Cannot use the ${area} area: it does not exist`, {
          cause: e,
        });
      }
      try {
        await access(path, constants.W_OK);
      } catch (e) {
        throw new FilestoreNotReadyError(`Cannot use the ${area} area: it is not writable`, {
          cause: e,
        });
      }
    }
  }

  async stage(
    run: RunRef,
    dataset: string,
    write: (work: StagingWork) => Promise<StagedFile[]>,
  ): Promise<StagedFile[]> {
    await this.checkReady();
    const runDir = join(this.#base, runFolder("staging", run));
    const workDir = join(runDir, WORK_PREFIX + randomUUID());
    await mkdir(workDir, { recursive: true });
    let done = false;
    try {
      const manifest = await this.#readStagingManifest(runDir) ?? emptyManifest();
      const staged = new Set(manifest.files.map((f) => f.path));
      const files = await write({
        dir: workDir,
        previous: (path) => staged.has(path) ? join(runDir, path) : undefined,
      });
      for (const file of files) {
        const size = (await stat(join(workDir, file.path))).size;
        if (size !== file.bytes) {
          throw new Error(`Writer reported ${file.bytes} bytes for ${file.path}, found ${size}`);
        }
      }
      const next = replaceDataset(manifest, dataset, files);
      for (const file of files) {
        await mkdir(dirname(join(runDir, file.path)), { recursive: true });
        await rename(join(workDir, file.path), join(runDir, file.path));
      }
      for (const path of next.removed) await rm(join(runDir, path), { force: true });
      await writeAtomically(
        join(runDir, STAGING_MANIFEST_NAME),
        JSON.stringify(next.manifest, null, 2),
      );
      done = true;
      return [...files].sort(byPath);
    } finally {
      await rm(workDir, { recursive: true, force: true });
      // A failed first package leaves no empty run or project folder behind.
      if (!done) {
        await removeIfEmpty(runDir);
        await removeIfEmpty(dirname(runDir));
      }
    }
  }

  async publish(run: RunRef): Promise<PublishedFile[]> {
    await this.checkReady();
    const stagingDir = join(this.#base, runFolder("staging", run));
    const finalDir = join(this.#base, runFolder("production", run));
    const manifest = await this.#readStagingManifest(stagingDir);
    if (manifest === undefined || manifest.files.length === 0) {
      const published = await this.#readPublished(finalDir);
      if (published === undefined) throw new NothingStagedError(run);
      return published;
    }

    const projectDir = dirname(finalDir);
    await mkdir(projectDir, { recursive: true });
    const bagDir = join(projectDir, `${PUBLISH_PREFIX}${run.startTime}-${randomUUID()}`);
    await mkdir(bagDir);
    try {
      for (const entry of manifest.files) {
        const target = join(bagDir, entry.path);
        await mkdir(dirname(target), { recursive: true });
        let copied;
        try {
          copied = await copyWithSha512(join(stagingDir, entry.path), target);
        } catch (e) {
          if ((e as { code?: string }).code === "ENOENT") {
            throw new StagingIntegrityError(entry.path, "is missing", { cause: e });
          }
          throw e;
        }
        if (copied.bytes !== entry.bytes) {
          throw new StagingIntegrityError(
            entry.path,
            `has ${copied.bytes} bytes, expected ${entry.bytes}`,
          );
        }
        if (copied.sha512 !== entry.sha512) {
          throw new StagingIntegrityError(entry.path, "does not match its SHA-512 checksum");
        }
      }
      await this.#writeTagFiles(bagDir, run, manifest);
      await this.#swapIntoPlace(bagDir, finalDir, run.startTime);
    } catch (e) {
      await rm(bagDir, { recursive: true, force: true });
      throw e;
    }
    await rm(stagingDir, { recursive: true, force: true });
    return manifest.files.map((f) => ({ path: f.path, sha512: f.sha512, bytes: f.bytes }));
  }

  async recover(): Promise<string[]> {
    const swept: string[] = [];
    for (const project of await listDirs(join(this.#base, "production"))) {
      const projectDir = join(this.#base, "production", project);
      const entries = await listDirs(projectDir);
      for (const name of entries.filter((n) => n.startsWith(PUBLISH_PREFIX))) {
        await rm(join(projectDir, name), { recursive: true, force: true });
        swept.push(join("production", project, name));
      }
      for (const name of entries.filter((n) => n.startsWith(OLD_PREFIX))) {
        const startTime = name.slice(OLD_PREFIX.length, OLD_PREFIX.length + 15);
        if (!PROJECT_START_TIME_PATTERN.test(startTime)) continue;
        const finalDir = join(projectDir, startTime);
        if (await exists(finalDir)) {
          await rm(join(projectDir, name), { recursive: true, force: true });
        } else await rename(join(projectDir, name), finalDir);
        swept.push(join("production", project, name));
      }
    }
    for (const project of await listDirs(join(this.#base, "staging"))) {
      for (const start of await listDirs(join(this.#base, "staging", project))) {
        const runDir = join(this.#base, "staging", project, start);
        const leftovers = (await readdir(runDir)).filter((n) =>
          n.startsWith(WORK_PREFIX) || (n.startsWith(STAGING_MANIFEST_NAME) && n.endsWith(".tmp"))
        );
        for (const name of leftovers) {
          await rm(join(runDir, name), { recursive: true, force: true });
          swept.push(join("staging", project, start, name));
        }
      }
    }
    return swept;
  }

  async #writeTagFiles(bagDir: string, run: RunRef, manifest: StagingManifest): Promise<void> {
    const payloadBytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
    const tagContents: Record<(typeof TAG_FILES)[number], string> = {
      "bagit.txt": BAGIT_TXT,
      "bag-info.txt": bagInfoText({
        baggingDate: this.#today().toISOString().slice(0, 10),
        payloadBytes,
        payloadFiles: manifest.files.length,
        externalIdentifier: `${run.project}/${run.startTime}`,
        softwareAgent: this.#agent,
        csvFormulaEscape: csvFormulaEscape(manifest.files),
      }),
      "manifest-sha512.txt": manifestText(manifest.files),
    };
    for (const [name, content] of Object.entries(tagContents)) {
      await writeFile(join(bagDir, name), content, { flush: true });
    }
    const tagEntries = [];
    for (const name of TAG_FILES) {
      tagEntries.push({ path: name, sha512: (await sha512File(join(bagDir, name))).sha512 });
    }
    await writeFile(join(bagDir, "tagmanifest-sha512.txt"), manifestText(tagEntries), {
      flush: true,
    });
  }

  async #swapIntoPlace(bagDir: string, finalDir: string, startTime: string): Promise<void> {
    const oldDir = join(dirname(finalDir), `${OLD_PREFIX}${startTime}-${randomUUID()}`);
    const hadPrevious = await exists(finalDir);
    if (hadPrevious) await rename(finalDir, oldDir);
    try {
      await rename(bagDir, finalDir);
    } catch (e) {
      if (hadPrevious) await rename(oldDir, finalDir);
      throw e;
    }
    if (hadPrevious) await rm(oldDir, { recursive: true, force: true });
  }

  async #readStagingManifest(runDir: string): Promise<StagingManifest | undefined> {
    let text: string;
    try {
      text = await readFile(join(runDir, STAGING_MANIFEST_NAME), "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return undefined;
      throw e;
    }
    const parsed = StagingManifest.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new StagingIntegrityError(STAGING_MANIFEST_NAME, "is not a valid staging manifest");
    }
    return parsed.data;
  }

  async #readPublished(finalDir: string): Promise<PublishedFile[] | undefined> {
    let text: string;
    try {
      text = await readFile(join(finalDir, "manifest-sha512.txt"), "utf8");
    } catch {
      return undefined;
    }
    const files: PublishedFile[] = [];
    for (const entry of parseManifest(text)) {
      files.push({
        path: entry.path,
        sha512: entry.sha512,
        bytes: (await stat(join(finalDir, entry.path))).size,
      });
    }
    return files.sort(byPath);
  }
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function listDirs(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) =>
      e.name
    );
  } catch {
    return [];
  }
}

/** Writes a file next to its target, flushes it, then renames it over the target. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`;
  await writeFile(temp, content, { flush: true });
  await rename(temp, path);
}

/** Removes a folder only if it is empty; anything else (not empty, gone, busy) leaves it as it is. */
async function removeIfEmpty(dir: string): Promise<void> {
  await rmdir(dir).catch(() => {});
}
