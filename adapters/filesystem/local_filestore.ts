/**
 * A filestore destination on a local or mounted filesystem (`TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`).
 *
 * Crash safety comes from renames, which are atomic within one filesystem:
 * - staging: a dataset is written into `{run}/.work-{uuid}-{dataset}/`, then each file is renamed into place
 *   and the manifest replaced by rename; a crash leaves at most a work folder or a manifest that no longer
 *   matches, which publishing detects and refuses;
 * - resuming: the files of a stage stopped by a `RunInterruptedError` (`domain/interruption.ts`), or of a
 *   work folder the startup sweep finds, are moved to `{run}/.resumable/{dataset}/` (only the dataset's own
 *   folder, `data/outputs/{dataset}/`), where the next stage of the dataset may keep those whose SHA-512 it
 *   was told (`StagingWork.reuse`); any other end of a stage of the dataset removes that folder, and the
 *   sweep removes one unchanged for {@link RESUMABLE_MAX_AGE_MS};
 * - production: the bag is assembled in `production/{project}/.publish-{start}-{uuid}/` and verified; the
 *   previous bag, if any, is renamed to `.old-{start}-{uuid}`, the new one renamed into place, then the old
 *   one removed. The startup sweep deletes unfinished `.publish-*` folders and renames an `.old-*` back when
 *   the swap did not complete, so production is always the previous or the new complete bag.
 *
 * - revocation: the run's production and staging folders are renamed to `.revoking-{start}` next to them
 *   (researchers lose them at once), then each file is hashed and reported, then deleted, or the folder is
 *   moved to `revoked/{project}/{start}-{release}/{area}` (owner-only, never served). The startup sweep
 *   leaves `.revoking-*` folders alone: calling `revoke` again finishes them.
 *
 * Links: every path is built from checked names under the base and used through {@link ConfinedTree},
 * which checks each folder and file below `staging/` and `production/` with `lstat` before it is read,
 * written, renamed or deleted, and refuses a symbolic link, a hard link or an unexpected kind of entry
 * ({@link UnsafeFilesystemEntryError}) before changing anything. The staging manifest is signed with a key
 * only this service holds, and publish copies nothing a manifest it cannot verify lists. Files and folders
 * are created owner-only unless `modes` says otherwise.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { access, constants, mkdir, realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import {
  bagInfoText,
  BAGIT_TXT,
  csvFormulaEscape,
  manifestText,
  parseManifest,
} from "../../domain/bagit.ts";
import { isInterruption } from "../../domain/interruption.ts";
import { isSafeIdentifier, PROJECT_START_TIME_PATTERN } from "../../domain/names.ts";
import {
  DISCLOSURE_TAG_FILE,
  disclosureTagText,
  emptyManifest,
  replaceDataset,
  signedManifestText,
  stagedContent,
  type StagedTable,
  type StagingEntry,
  StagingManifest,
  type StagingSummary,
  stagingSummary,
  verifyManifestText,
} from "../../domain/staging_manifest.ts";
import type { DatasetDisclosure } from "../../domain/disclosure.ts";
import { crateText, releaseCrate } from "../../domain/release_crate.ts";
import { SOFTWARE_NAME } from "../../domain/service_identity.ts";
import {
  CRATE_TAG_FILE,
  fromBase64url,
  RECEIPT_TAG_FILE,
  receiptClaimsOf,
  ReceiptInvalidError,
  sha512Hex,
} from "../../domain/release_receipt.ts";
import {
  isPayloadPath,
  PAYLOAD_DIR,
  RESUMABLE_DIR,
  runFolder,
  type RunRef,
  STAGING_MANIFEST_NAME,
} from "../../domain/staging_layout.ts";
import type { StagedFile, StagingWork } from "../../ports/dataset_writer.ts";
import type { PublishedRelease, ReleaseSigning } from "../../domain/release_signing.ts";
import {
  type Filestore,
  FilestoreNotReadyError,
  NothingStagedError,
  type PublishedFile,
  type RevokedFiles,
  type RevokeFilesOptions,
  StagingIntegrityError,
  UnsafeFilesystemEntryError,
} from "../../ports/filestore.ts";
import {
  ConfinedTree,
  type EntryKind,
  type FileModes,
  type ListedEntry,
  OWNER_ONLY,
  parentOf,
} from "./confined_tree.ts";
import { copyWithSha512, sha512OfOpenFile } from "./sha512.ts";
import { REVOKED_AREAS, type RevokedFile } from "../../domain/revocation.ts";

const AREAS = ["staging", "production"] as const;
const WORK_PREFIX = ".work-";
const PUBLISH_PREFIX = ".publish-";
const OLD_PREFIX = ".old-";
const REVOKING_PREFIX = ".revoking-";
/** The area of the base where quarantined releases go (`REVOCATION_MODE=quarantine`). */
export const REVOKED_AREA = "revoked";
const TAG_FILES = ["bagit.txt", "bag-info.txt", "manifest-sha512.txt"] as const;
/** `.work-{uuid}-{dataset}`: the UUID's length, to find the dataset. */
const UUID_LENGTH = 36;

/** How long the startup sweep keeps a dataset's left-over folder unchanged: one day. */
export const RESUMABLE_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const encoder = new TextEncoder();

/** Options for {@link LocalFilestore}. */
export interface LocalFilestoreOptions {
  /** Signs and checks staging manifests (`stagingManifestKey()` in `domain/staging_manifest.ts`). */
  readonly manifestKey: CryptoKey;
  /** Modes of the files and folders the filestore creates; owner-only by default. */
  readonly modes?: FileModes;
  /** Today's date for `Bagging-Date`; injected for tests. */
  readonly today?: () => Date;
  /** Written as `Bag-Software-Agent`. */
  readonly softwareAgent?: string;
  /**
   * Told what the filestore left alone or set aside without failing a request: an unsafe entry the startup
   * sweep skipped (`unsafe_filesystem_entry`), a staging manifest it could not verify, which a package
   * then started over from (`staging_manifest_replaced`), or an interrupted stage whose files it could not
   * keep for resuming (`resumable_not_kept`). Fields hold paths relative to the base.
   */
  readonly onWarning?: (event: string, fields: Record<string, string>) => void;
}

/** A filestore whose `staging/` and `production/` are directories under one base path. */
export class LocalFilestore implements Filestore {
  readonly #tree: ConfinedTree;
  readonly #key: CryptoKey;
  readonly #today: () => Date;
  readonly #agent: string;
  readonly #warn: (event: string, fields: Record<string, string>) => void;

  /** @param base the mount path; it is not touched until a method is called. */
  constructor(base: string, options: LocalFilestoreOptions) {
    this.#tree = new ConfinedTree(base, options.modes ?? OWNER_ONLY);
    this.#key = options.manifestKey;
    this.#today = options.today ?? (() => new Date());
    this.#agent = options.softwareAgent ?? SOFTWARE_NAME;
    this.#warn = options.onWarning ?? (() => {});
  }

  async checkReady(): Promise<void> {
    for (const area of AREAS) {
      const path = this.#tree.path(area);
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
    checks: () => DatasetDisclosure | null = () => null,
    tables?: readonly StagedTable[],
  ): Promise<StagedFile[]> {
    await this.checkReady();
    const tree = this.#tree;
    const runRel = runFolder("staging", run);
    // The run folder and those above it are checked before any is created, and what the run already
    // has (manifest, payload folders, staged files) before the source is read.
    if (!isSafeIdentifier(dataset)) {
      throw new RangeError("Cannot stage a dataset with an unsafe name");
    }
    await tree.ensureDir(runRel);
    let done = false;
    let interrupted = false;
    const workRel = `${runRel}/${WORK_PREFIX}${randomUUID()}-${dataset}`;
    const resumableRel = `${runRel}/${RESUMABLE_DIR}/${dataset}`;
    try {
      const manifest = await this.#readStagingManifest(run, runRel, "replace") ?? emptyManifest();
      await tree.expectDir(`${runRel}/${PAYLOAD_DIR}/${dataset}`, { missingOk: true });
      await tree.expectDir(resumableRel, { missingOk: true });
      for (const entry of manifest.files) await this.#expectStagedFile(runRel, entry);
      await tree.makeDir(workRel);
      const entries = new Map(manifest.files.map((f) => [f.path, f]));
      const files = await write({
        dir: tree.path(workRel),
        copyPrevious: (path) => this.#copyPrevious(runRel, workRel, entries.get(path)),
        reuse: (path, sha512) => this.#reuse(resumableRel, workRel, dataset, path, sha512),
        read: (path) => this.#readWork(workRel, path),
      }).catch(async (e: unknown) => {
        if (isInterruption(e)) {
          interrupted = true;
          await this.#keepForResume(runRel, workRel, dataset).catch((kept: unknown) =>
            this.#warn("resumable_not_kept", { path: workRel, reason: String(kept) })
          );
        }
        throw e;
      });

      // The writer's files must be plain files of the size it reported; their targets, and the files
      // this dataset no longer has, must be plain files or missing. All checked before any rename.
      for (const file of files) {
        if (!isPayloadPath(file.path)) {
          throw new RangeError(`Cannot stage "${file.path}": not a path under ${PAYLOAD_DIR}/`);
        }
        const written = await tree.inspect(`${workRel}/${file.path}`);
        if (written.kind !== "file") {
          throw new UnsafeFilesystemEntryError(`${workRel}/${file.path}`, "is not a file");
        }
        if (written.stats?.size !== file.bytes) {
          throw new Error(
            `Writer reported ${file.bytes} bytes for ${file.path}, found ${written.stats?.size}`,
          );
        }
      }
      const next = replaceDataset(manifest, dataset, files, {
        disclosure: checks(),
        ...(tables === undefined ? {} : { tables: [...tables] }),
      });
      for (const path of [...files.map((f) => f.path), ...next.removed, STAGING_MANIFEST_NAME]) {
        await tree.expectFileOrMissing(`${runRel}/${path}`);
      }

      for (const file of files) {
        const from = `${workRel}/${file.path}`;
        const to = `${runRel}/${file.path}`;
        await tree.setFileMode(from);
        await tree.ensureDir(parentOf(to));
        await tree.rename(from, to, "file");
      }
      for (const path of next.removed) await tree.remove(`${runRel}/${path}`);
      await this.#writeStagingManifest(run, runRel, next.manifest);
      done = true;
      return [...files].sort(byPath);
    } finally {
      await tree.remove(workRel).catch(() => {});
      // The dataset was staged again (or cancelled, or failed): what an interrupted stage left goes.
      if (!interrupted) {
        await tree.remove(resumableRel).catch(() => {});
        await tree.removeIfEmpty(`${runRel}/${RESUMABLE_DIR}`);
      }
      // A failed first package leaves no empty run or project folder behind.
      if (!done) {
        await tree.removeIfEmpty(runRel);
        await tree.removeIfEmpty(parentOf(runRel));
      }
    }
  }

  async staging(run: RunRef): Promise<StagingSummary> {
    await this.checkReady();
    const stagingRel = runFolder("staging", run);
    if (await this.#tree.expectDir(stagingRel, { missingOk: true }) !== "dir") {
      return stagingSummary(undefined);
    }
    return stagingSummary(await this.#readStagingManifest(run, stagingRel, "refuse"));
  }

  async publish(run: RunRef, release?: ReleaseSigning): Promise<PublishedFile[]> {
    await this.checkReady();
    const tree = this.#tree;
    const stagingRel = runFolder("staging", run);
    const finalRel = runFolder("production", run);
    const projectRel = parentOf(finalRel);
    await tree.expectDir(finalRel, { missingOk: true });
    const manifest = await this.#readStagingManifest(run, stagingRel, "refuse");
    if (manifest === undefined || manifest.files.length === 0) {
      const published = await this.#readPublished(finalRel);
      if (published === undefined) throw new NothingStagedError(run);
      return published;
    }
    // Every staged file is checked before anything is created in production.
    for (const entry of manifest.files) await this.#expectStagedFile(stagingRel, entry);

    const projectExisted = (await tree.inspect(projectRel)).kind === "dir";
    await tree.ensureDir(projectRel);
    const bagRel = `${projectRel}/${PUBLISH_PREFIX}${run.startTime}-${randomUUID()}`;
    try {
      await tree.makeDir(bagRel);
      for (const entry of manifest.files) {
        const copied = await this.#copyStaged(
          `${stagingRel}/${entry.path}`,
          `${bagRel}/${entry.path}`,
        );
        if (copied === undefined) throw new StagingIntegrityError(entry.path, "is missing");
        checkCopy(entry, copied);
      }
      const provenance = release?.provenance(stagedContent(manifest));
      const crate = provenance === undefined ? undefined : releaseCrate(provenance);
      const tagManifest = await this.#writeTagFiles(bagRel, run, manifest, crate);
      if (release !== undefined && provenance !== undefined) {
        const { jws } = await release.sign({
          receipt_version: 1,
          release_id: provenance.release_id,
          project_name: run.project,
          project_start_time: run.startTime,
          destination: { type: "filestore", name: provenance.destination.name },
          subject: { kind: "bagit-tagmanifest-sha512", sha512: await sha512Hex(tagManifest) },
          signed_at: new Date().toISOString(),
        });
        await this.#writeNewFile(`${bagRel}/${RECEIPT_TAG_FILE}`, jws + "\n");
      }
      await this.#swapIntoPlace(bagRel, finalRel, run.startTime);
    } catch (e) {
      await tree.remove(bagRel).catch(() => {});
      if (!projectExisted) await tree.removeIfEmpty(projectRel);
      throw e;
    }
    await tree.remove(stagingRel);
    return manifest.files.map((f) => ({ path: f.path, sha512: f.sha512, bytes: f.bytes }));
  }

  async publishedRelease(run: RunRef): Promise<PublishedRelease | undefined> {
    const finalRel = runFolder("production", run);
    if (await this.#tree.expectDir(finalRel, { missingOk: true }) !== "dir") return undefined;
    const jws = (await this.#readText(`${finalRel}/${RECEIPT_TAG_FILE}`))?.trim();
    const storedCrate = await this.#readText(`${finalRel}/${CRATE_TAG_FILE}`);
    if (jws === undefined || storedCrate === undefined) return undefined;
    const payload = jws.split(".")[1] ?? "";
    let claims: Record<string, unknown>;
    let crate: Record<string, unknown>;
    try {
      claims = JSON.parse(new TextDecoder().decode(fromBase64url(payload)));
      crate = JSON.parse(storedCrate);
    } catch {
      throw new ReceiptInvalidError("or the crate of the published bag is not JSON");
    }
    return { crate, receipt: { jws, claims: receiptClaimsOf(claims) } };
  }

  /** A plain file's text, `undefined` when it is missing. */
  async #readText(path: string): Promise<string | undefined> {
    const file = await this.#tree.openRead(path);
    if (file === undefined) return undefined;
    try {
      return await file.readFile({ encoding: "utf8" });
    } finally {
      await file.close();
    }
  }

  async recover(): Promise<string[]> {
    const tree = this.#tree;
    const swept: string[] = [];
    const safe = (path: string, entry: ListedEntry, kinds: string[]) => {
      if (entry.kind === "unsafe") {
        this.#warn("unsafe_filesystem_entry", { path, reason: entry.reason ?? "" });
      }
      return kinds.includes(entry.kind);
    };
    for (const project of await tree.list("production")) {
      const projectRel = `production/${project.name}`;
      if (!safe(projectRel, project, ["dir"])) continue;
      const entries = await tree.list(projectRel);
      for (const entry of entries.filter((e) => e.name.startsWith(PUBLISH_PREFIX))) {
        const path = `${projectRel}/${entry.name}`;
        if (!safe(path, entry, ["dir"])) continue;
        await tree.remove(path);
        swept.push(path);
      }
      for (const entry of entries.filter((e) => e.name.startsWith(OLD_PREFIX))) {
        const path = `${projectRel}/${entry.name}`;
        if (!safe(path, entry, ["dir"])) continue;
        const startTime = entry.name.slice(OLD_PREFIX.length, OLD_PREFIX.length + 15);
        if (!PROJECT_START_TIME_PATTERN.test(startTime)) continue;
        const finalRel = `${projectRel}/${startTime}`;
        let final: EntryKind;
        try {
          final = (await tree.inspect(finalRel)).kind;
        } catch (e) {
          if (!(e instanceof UnsafeFilesystemEntryError)) throw e;
          safe(finalRel, { name: startTime, kind: "unsafe", reason: e.reason }, []);
          continue;
        }
        if (final === "file") continue;
        if (final === "dir") await tree.remove(path);
        else await tree.rename(path, finalRel, "dir");
        swept.push(path);
      }
    }
    for (const project of await tree.list("staging")) {
      const projectRel = `staging/${project.name}`;
      if (!safe(projectRel, project, ["dir"])) continue;
      for (const start of await tree.list(projectRel)) {
        const runRel = `${projectRel}/${start.name}`;
        // A revocation in progress is finished by calling `revoke` again, never swept.
        if (start.name.startsWith(REVOKING_PREFIX)) continue;
        if (!safe(runRel, start, ["dir"])) continue;
        for (const entry of await tree.list(runRel)) {
          const leftover = entry.name.startsWith(WORK_PREFIX) ||
            (entry.name.startsWith(STAGING_MANIFEST_NAME) && entry.name.endsWith(".tmp"));
          const path = `${runRel}/${entry.name}`;
          if (!safe(path, entry, ["dir", "file"]) || !leftover) continue;
          const dataset = entry.name.slice(WORK_PREFIX.length + UUID_LENGTH + 1);
          if (entry.kind === "dir" && isSafeIdentifier(dataset)) {
            try {
              await this.#keepForResume(runRel, path, dataset);
            } catch (e) {
              if (!(e instanceof UnsafeFilesystemEntryError)) throw e;
              safe(e.path, { name: entry.name, kind: "unsafe", reason: e.reason }, []);
            }
          }
          await tree.remove(path);
          swept.push(path);
        }
        const resumableRel = `${runRel}/${RESUMABLE_DIR}`;
        let resumable: ListedEntry[] = [];
        try {
          resumable = await tree.list(resumableRel);
        } catch (e) {
          if (!(e instanceof UnsafeFilesystemEntryError)) throw e;
          safe(resumableRel, { name: RESUMABLE_DIR, kind: "unsafe", reason: e.reason }, []);
        }
        for (const entry of resumable) {
          const path = `${resumableRel}/${entry.name}`;
          if (!safe(path, entry, ["dir", "file"])) continue;
          const { stats } = await tree.inspect(path);
          if (entry.kind === "dir" && Date.now() - stats!.mtimeMs < RESUMABLE_MAX_AGE_MS) continue;
          await tree.remove(path);
          swept.push(path);
        }
        await tree.removeIfEmpty(resumableRel);
      }
    }
    return swept;
  }

  async revoke(run: RunRef, options: RevokeFilesOptions): Promise<RevokedFiles> {
    const tree = this.#tree;
    const files: RevokedFile[] = [];
    for (const area of REVOKED_AREAS) {
      const finalRel = runFolder(area, run);
      const projectRel = parentOf(finalRel);
      const hiddenRel = `${projectRel}/${REVOKING_PREFIX}${run.startTime}`;
      await tree.expectDir(finalRel, { missingOk: true });
      // A folder left hidden by an earlier attempt is finished first; then the visible one (if any).
      for (;;) {
        options.signal?.throwIfAborted();
        if (await tree.expectDir(hiddenRel, { missingOk: true }) === "dir") {
          await this.#checkTree(hiddenRel);
          const removed = await this.#revokeHidden(run, area, hiddenRel, options);
          files.push(...removed);
          continue;
        }
        if (await tree.expectDir(finalRel, { missingOk: true }) !== "dir") break;
        await this.#checkTree(finalRel);
        await tree.rename(finalRel, hiddenRel, "dir");
      }
      await tree.removeIfEmpty(projectRel);
    }
    return {
      mode: options.mode === "quarantine" ? "quarantined" : "deleted",
      files: files.sort((a, b) =>
        byPath(
          { path: `${a.area}/${a.path}` },
          { path: `${b.area}/${b.path}` },
        )
      ),
    };
  }

  /**
   * Hashes, reports and deletes (or moves, with `quarantine`) every file of a hidden revoking folder,
   * then the folder itself.
   */
  async #revokeHidden(
    run: RunRef,
    area: RevokedFile["area"],
    hiddenRel: string,
    options: RevokeFilesOptions,
  ): Promise<RevokedFile[]> {
    const tree = this.#tree;
    const removed: RevokedFile[] = [];
    for (const path of await this.#filesOf(hiddenRel)) {
      options.signal?.throwIfAborted();
      const file = await tree.openRead(`${hiddenRel}/${path}`);
      if (file === undefined) continue;
      let digest: { sha512: string; bytes: number };
      try {
        digest = await sha512OfOpenFile(file);
      } finally {
        await file.close();
      }
      const revoked: RevokedFile = { area, path, sha512: digest.sha512, bytes: digest.bytes };
      await options.onRemoving(revoked);
      if (options.mode === "delete") await tree.remove(`${hiddenRel}/${path}`);
      removed.push(revoked);
    }
    options.signal?.throwIfAborted();
    if (options.mode === "quarantine") {
      const targetRel = `${REVOKED_AREA}/${run.project}/${run.startTime}-${
        safeReleaseId(options.releaseId)
      }/${area}`;
      await this.#ensureRevokedArea();
      await tree.ensureDir(parentOf(targetRel));
      if (await tree.expectDir(targetRel, { missingOk: true }) === "dir") {
        // An earlier attempt of the same release moved this area already: keep both.
        await tree.rename(hiddenRel, `${targetRel}-${randomUUID()}`, "dir");
      } else {
        await tree.rename(hiddenRel, targetRel, "dir");
      }
    } else {
      await tree.remove(hiddenRel);
    }
    return removed;
  }

  /** Creates the owner-only `revoked/` area when it is missing. */
  async #ensureRevokedArea(): Promise<void> {
    try {
      await mkdir(this.#tree.path(REVOKED_AREA), { mode: 0o700 });
    } catch (e) {
      if ((e as { code?: string }).code !== "EEXIST") throw e;
    }
  }

  /**
   * Every plain file under a folder, relative to it, sorted.
   *
   * @throws {UnsafeFilesystemEntryError} at the first link, hard link or other unexpected entry.
   */
  async #filesOf(rel: string, prefix = ""): Promise<string[]> {
    const files: string[] = [];
    for (const entry of await this.#tree.list(rel)) {
      const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.kind === "unsafe") {
        throw new UnsafeFilesystemEntryError(`${rel}/${entry.name}`, entry.reason ?? "is unsafe");
      }
      if (entry.kind === "dir") files.push(...await this.#filesOf(`${rel}/${entry.name}`, path));
      else files.push(path);
    }
    return files;
  }

  /** Refuses a run folder holding a link or a hard link anywhere, before anything of it changes. */
  async #checkTree(rel: string): Promise<void> {
    await this.#filesOf(rel);
  }

  /** Checks that a staged file listed in the manifest is a plain file (or missing) inside the run folder. */
  async #expectStagedFile(runRel: string, entry: StagingEntry): Promise<void> {
    await this.#tree.expectFileOrMissing(`${runRel}/${entry.path}`);
  }

  /**
   * Moves the files an interrupted stage of `dataset` wrote (its folder `data/outputs/{dataset}/` in the
   * work folder) into the dataset's left-over folder, replacing left-overs of the same name.
   */
  async #keepForResume(runRel: string, workRel: string, dataset: string): Promise<void> {
    const tree = this.#tree;
    const from = `${workRel}/${PAYLOAD_DIR}/${dataset}`;
    const files = (await tree.list(from)).filter((e) => e.kind === "file");
    if (files.length === 0) return;
    const to = `${runRel}/${RESUMABLE_DIR}/${dataset}/${PAYLOAD_DIR}/${dataset}`;
    await tree.ensureDir(to);
    for (const file of files) {
      await tree.rename(`${from}/${file.name}`, `${to}/${file.name}`, "file");
    }
  }

  /**
   * {@link StagingWork.reuse}: moves a left-over of the dataset into the work folder when it is a plain
   * file with one name whose bytes (read through the handle that is then checked to be the moved file)
   * have exactly `sha512`.
   */
  async #reuse(
    resumableRel: string,
    workRel: string,
    dataset: string,
    path: string,
    sha512: string,
  ): Promise<StagedFile | undefined> {
    if (!isPayloadPath(path) || !path.startsWith(`${PAYLOAD_DIR}/${dataset}/`)) {
      throw new RangeError(`Cannot reuse "${path}": not a path under ${PAYLOAD_DIR}/${dataset}/`);
    }
    const tree = this.#tree;
    const from = `${resumableRel}/${path}`;
    const file = await tree.openRead(from);
    if (file === undefined) return undefined;
    let digest: { sha512: string; bytes: number };
    let identity: { dev: number; ino: number };
    try {
      const stats = await file.stat();
      identity = { dev: stats.dev, ino: stats.ino };
      digest = await sha512OfOpenFile(file);
    } finally {
      await file.close();
    }
    if (digest.sha512 !== sha512) return undefined;
    const to = `${workRel}/${path}`;
    await tree.ensureDir(parentOf(to));
    await tree.rename(from, to, "file");
    const moved = (await tree.inspect(to)).stats;
    if (moved?.dev !== identity.dev || moved.ino !== identity.ino) {
      throw new UnsafeFilesystemEntryError(from, "was replaced while it was being checked");
    }
    return { path, sha512, bytes: digest.bytes };
  }

  /** {@link StagingWork.read}: a plain file of the work folder, 1 MiB at a time. */
  async *#readWork(workRel: string, path: string): AsyncGenerator<Uint8Array, void, undefined> {
    if (!isPayloadPath(path)) throw new RangeError(`Cannot read "${path}": not a payload path`);
    const file = await this.#tree.openRead(`${workRel}/${path}`);
    if (file === undefined) throw new Error(`Cannot read "${path}": the write has no such file`);
    try {
      for await (
        const chunk of file.createReadStream({ start: 0, highWaterMark: 1 << 20, autoClose: false })
      ) yield chunk as Uint8Array;
    } finally {
      await file.close();
    }
  }

  /** {@link StagingWork.copyPrevious}: copies a staged file into the work folder, checked on the way. */
  async #copyPrevious(
    runRel: string,
    workRel: string,
    entry: StagingEntry | undefined,
  ): Promise<boolean> {
    if (entry === undefined) return false;
    const target = `${workRel}/${entry.path}`;
    await this.#tree.ensureDir(parentOf(target));
    const copied = await this.#copyStaged(`${runRel}/${entry.path}`, target);
    if (copied === undefined) throw new StagingIntegrityError(entry.path, "is missing");
    checkCopy(entry, copied);
    return true;
  }

  /**
   * Copies a plain file into a new file (its folders created), hashing it on the way.
   *
   * @returns the copy's digest, or `undefined` when the source is missing.
   */
  async #copyStaged(
    from: string,
    to: string,
  ): Promise<{ sha512: string; bytes: number } | undefined> {
    const source = await this.#tree.openRead(from);
    if (source === undefined) return undefined;
    try {
      await this.#tree.ensureDir(parentOf(to));
      const target = await this.#tree.createFile(to);
      try {
        return await copyWithSha512(source, target);
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
  }

  /** Writes a new file with the given content, flushed to disk, and returns its SHA-512. */
  async #writeNewFile(path: string, content: string): Promise<string> {
    const bytes = encoder.encode(content);
    const file = await this.#tree.createFile(path);
    try {
      let offset = 0;
      while (offset < bytes.length) {
        offset += (await file.write(bytes, offset, bytes.length - offset)).bytesWritten;
      }
      await file.datasync();
    } finally {
      await file.close();
    }
    return await sha512Hex(content);
  }

  /**
   * Writes the bag's tag files (with the crate when there is one) and the tag manifest over them.
   *
   * @returns the tag manifest's text, which a receipt signs.
   */
  async #writeTagFiles(
    bagRel: string,
    run: RunRef,
    manifest: StagingManifest,
    crate: Record<string, unknown> | undefined,
  ): Promise<string> {
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
    const optional: [string, string | undefined][] = [
      [DISCLOSURE_TAG_FILE, disclosureTagText(manifest)],
      [CRATE_TAG_FILE, crate === undefined ? undefined : crateText(crate)],
    ];
    const tagEntries = [];
    for (const name of TAG_FILES) {
      tagEntries.push({
        path: name,
        sha512: await this.#writeNewFile(`${bagRel}/${name}`, tagContents[name]),
      });
    }
    for (const [name, text] of optional) {
      if (text === undefined) continue;
      tagEntries.push({ path: name, sha512: await this.#writeNewFile(`${bagRel}/${name}`, text) });
    }
    const tagManifest = manifestText(tagEntries);
    await this.#writeNewFile(`${bagRel}/tagmanifest-sha512.txt`, tagManifest);
    return tagManifest;
  }

  async #swapIntoPlace(bagRel: string, finalRel: string, startTime: string): Promise<void> {
    const tree = this.#tree;
    const oldRel = `${parentOf(finalRel)}/${OLD_PREFIX}${startTime}-${randomUUID()}`;
    const hadPrevious = await tree.expectDir(finalRel, { missingOk: true }) === "dir";
    if (hadPrevious) await tree.rename(finalRel, oldRel, "dir");
    try {
      await tree.rename(bagRel, finalRel, "dir");
    } catch (e) {
      if (hadPrevious) await tree.rename(oldRel, finalRel, "dir");
      throw e;
    }
    if (hadPrevious) await tree.remove(oldRel);
  }

  /**
   * The run's staging manifest, checked against its signature. One that does not verify is refused
   * (`refuse`, for publish), or reported and treated as absent (`replace`, for a package, which writes a
   * new one: after a key rotation, packaging again is how a run is staged anew).
   *
   * @returns `undefined` when the run has no manifest.
   */
  async #readStagingManifest(
    run: RunRef,
    runRel: string,
    invalid: "refuse" | "replace",
  ): Promise<StagingManifest | undefined> {
    const path = `${runRel}/${STAGING_MANIFEST_NAME}`;
    const file = await this.#tree.openRead(path);
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = await file.readFile({ encoding: "utf8" });
    } finally {
      await file.close();
    }
    const read = await verifyManifestText(text, run, this.#key);
    if (!("problem" in read)) return read;
    if (invalid === "refuse") throw new StagingIntegrityError(STAGING_MANIFEST_NAME, read.problem);
    this.#warn("staging_manifest_replaced", { path, reason: read.problem });
    return undefined;
  }

  /** Writes the signed manifest next to its place, flushed, then renames it over the old one. */
  async #writeStagingManifest(
    run: RunRef,
    runRel: string,
    manifest: StagingManifest,
  ): Promise<void> {
    const path = `${runRel}/${STAGING_MANIFEST_NAME}`;
    const temp = `${path}.${randomUUID()}.tmp`;
    await this.#writeNewFile(temp, await signedManifestText(manifest, run, this.#key));
    await this.#tree.rename(temp, path, "file");
  }

  async #readPublished(finalRel: string): Promise<PublishedFile[] | undefined> {
    const file = await this.#tree.openRead(`${finalRel}/manifest-sha512.txt`);
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = await file.readFile({ encoding: "utf8" });
    } finally {
      await file.close();
    }
    const files: PublishedFile[] = [];
    for (const entry of parseManifest(text)) {
      const path = `${finalRel}/${entry.path}`;
      const found = await this.#tree.inspect(path);
      if (found.kind !== "file") {
        throw new UnsafeFilesystemEntryError(path, "is not a file of the published bag");
      }
      files.push({ path: entry.path, sha512: entry.sha512, bytes: found.stats!.size });
    }
    return files.sort(byPath);
  }
}

/** Checks a copy against its manifest entry. */
function checkCopy(entry: StagingEntry, copied: { sha512: string; bytes: number }): void {
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

/** A release id as a folder name part: letters, digits, `-` and `_` only. */
function safeReleaseId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    throw new RangeError("Cannot quarantine under a release id that is not a safe folder name");
  }
  return id;
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/** The real path of `path`: its longest existing prefix resolved, the rest appended. */
async function resolveExisting(path: string): Promise<string> {
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch {
    const parent = resolve(absolute, "..");
    if (parent === absolute) return absolute;
    return resolve(await resolveExisting(parent), absolute.slice(parent.length + 1));
  }
}

/**
 * True when `path` is inside a filestore base or one of its areas (which may be mounted or linked
 * elsewhere), after resolving links in what exists of each.
 */
export async function isInsideFilestore(path: string, base: string): Promise<boolean> {
  const target = await resolveExisting(path);
  for (const root of [base, resolve(base, "staging"), resolve(base, "production")]) {
    const inside = relative(await resolveExisting(root), target);
    if (inside !== ".." && !inside.startsWith("../") && !isAbsolute(inside)) return true;
  }
  return false;
}
