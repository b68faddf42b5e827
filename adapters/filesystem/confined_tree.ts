/**
 * Filesystem access that never follows a link and never leaves its base: the one way the filestore reads,
 * writes, renames and deletes.
 *
 * Every path is relative to the base and built from checked segments (no empty segment, `.`, `..`, `/` or
 * NUL). Its first segment is an area (`staging`, `production`), which the operator provides and may be a
 * mount point or a link; every component below it is checked with `lstat` before it is used, and must be
 * a real folder, or a plain file with one name (a hard link could make a write or a delete reach a file
 * outside). Anything else is refused with {@link UnsafeFilesystemEntryError}, naming the relative path and
 * changing nothing.
 *
 * Files are opened with `O_NOFOLLOW`, then checked again through the open handle (same device and inode as
 * the `lstat`, one name), so a link swapped in between the check and the open is caught. New files are
 * created with `O_CREAT | O_EXCL`, which never follows a link either, and never written through an existing
 * file. Modes are set through the handle (`fchmod`) after creating, so the process umask neither loosens
 * nor tightens them.
 *
 * What this cannot do: Node and Deno have no `openat`, so the folders *above* a file are checked, not held
 * open. Someone who can rename folders in an area while a request runs could still swap one between the
 * check and the use; folders the service creates are owner-only, and an area shared with other users
 * should have the sticky bit (`docs/security.md`).
 *
 * @module
 */
import { constants } from "node:fs";
import type { Stats } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { UnsafeFilesystemEntryError } from "../../ports/filestore.ts";

/** The modes of what the filestore creates. */
export interface FileModes {
  /** Files, default `0o600`. */
  readonly file: number;
  /** Folders, default `0o700`. */
  readonly dir: number;
}

/** Owner-only: `0o600` files, `0o700` folders. */
export const OWNER_ONLY: FileModes = { file: 0o600, dir: 0o700 };

/** What a checked path is. */
export type EntryKind = "missing" | "dir" | "file";

/** A checked path: what it is and, when it exists, its `lstat`. */
export interface Entry {
  readonly kind: EntryKind;
  readonly stats?: Stats;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL |
  constants.O_NOFOLLOW;

function codeOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/** Splits a relative path into segments, refusing any that could leave its folder. */
function segmentsOf(relative: string): string[] {
  const segments = relative.split("/");
  for (const segment of segments) {
    if (segment === "" || segment === "." || segment === ".." || segment.includes("\0")) {
      throw new UnsafeFilesystemEntryError(relative, "is not a plain relative path");
    }
  }
  return segments;
}

/** What an existing entry is, or the refusal for what it must not be. */
function kindOf(relative: string, stats: Stats): "dir" | "file" {
  if (stats.isSymbolicLink()) throw new UnsafeFilesystemEntryError(relative, "is a symbolic link");
  if (stats.isDirectory()) return "dir";
  if (!stats.isFile()) {
    throw new UnsafeFilesystemEntryError(relative, "is neither a plain file nor a folder");
  }
  if (stats.nlink !== 1) {
    throw new UnsafeFilesystemEntryError(
      relative,
      `is a file with ${stats.nlink} names (a hard link)`,
    );
  }
  return "file";
}

/**
 * Opens an existing plain file for reading without following a link, and checks through the handle that
 * it is the file `lstat` saw, with one name.
 *
 * @param path the absolute path.
 * @param relative the path named in a refusal.
 * @returns the open handle, or `undefined` when there is no such file.
 * @throws {UnsafeFilesystemEntryError} when it is a link, a hard link, a folder or anything but a file.
 */
export async function openPlainFile(
  path: string,
  relative: string,
): Promise<FileHandle | undefined> {
  let before: Stats;
  try {
    before = await lstat(path);
  } catch (e) {
    if (codeOf(e) === "ENOENT") return undefined;
    throw e;
  }
  if (kindOf(relative, before) !== "file") {
    throw new UnsafeFilesystemEntryError(relative, "is a folder, not a file");
  }
  let handle: FileHandle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (e) {
    if (codeOf(e) === "ELOOP") {
      throw new UnsafeFilesystemEntryError(relative, "is a symbolic link", { cause: e });
    }
    if (codeOf(e) === "ENOENT") return undefined;
    throw e;
  }
  try {
    const opened = await handle.stat();
    if (opened.dev !== before.dev || opened.ino !== before.ino) {
      throw new UnsafeFilesystemEntryError(relative, "was replaced while it was being opened");
    }
    kindOf(relative, opened);
    return handle;
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Paths under one base, checked component by component below the area before every use. */
export class ConfinedTree {
  readonly #base: string;
  readonly #modes: FileModes;

  /**
   * @param base the filestore base; it and the area folders directly inside it are trusted.
   * @param modes the modes of created files and folders.
   */
  constructor(base: string, modes: FileModes = OWNER_ONLY) {
    this.#base = base;
    this.#modes = modes;
  }

  /** The absolute path of a relative path, after checking its segments (not the filesystem). */
  path(relative: string): string {
    return join(this.#base, ...segmentsOf(relative));
  }

  /**
   * Checks every component below the area and says what the path is.
   *
   * @throws {UnsafeFilesystemEntryError} when a component is a link, a hard link, or not a folder.
   */
  async inspect(relative: string): Promise<Entry> {
    const segments = segmentsOf(relative);
    let path = join(this.#base, segments[0]!);
    let entry: Entry = { kind: "dir" };
    for (let i = 1; i < segments.length; i++) {
      if (entry.kind !== "dir") {
        throw new UnsafeFilesystemEntryError(segments.slice(0, i).join("/"), "is not a folder");
      }
      path = join(path, segments[i]!);
      let stats: Stats;
      try {
        stats = await lstat(path);
      } catch (e) {
        if (codeOf(e) === "ENOENT") return { kind: "missing" };
        throw e;
      }
      entry = { kind: kindOf(segments.slice(0, i + 1).join("/"), stats), stats };
    }
    return entry;
  }

  /**
   * Checks a path that must be a folder, or missing when `missingOk`.
   *
   * @throws {UnsafeFilesystemEntryError} when it is anything else.
   */
  async expectDir(relative: string, options: { missingOk: boolean }): Promise<EntryKind> {
    const { kind } = await this.inspect(relative);
    if (kind === "file") throw new UnsafeFilesystemEntryError(relative, "is not a folder");
    if (kind === "missing" && !options.missingOk) {
      throw new UnsafeFilesystemEntryError(relative, "is missing");
    }
    return kind;
  }

  /**
   * Checks a path that must be a plain file with one name, or missing.
   *
   * @throws {UnsafeFilesystemEntryError} when it is anything else.
   */
  async expectFileOrMissing(relative: string): Promise<Entry> {
    const entry = await this.inspect(relative);
    if (entry.kind === "dir") throw new UnsafeFilesystemEntryError(relative, "is not a file");
    return entry;
  }

  /**
   * Makes sure a folder exists: every existing component is checked first, then the missing ones are
   * created with the folder mode. Refused before anything is created.
   */
  async ensureDir(relative: string): Promise<void> {
    const { kind } = await this.inspect(relative);
    if (kind === "dir") return;
    if (kind === "file") throw new UnsafeFilesystemEntryError(relative, "is not a folder");
    const segments = segmentsOf(relative);
    for (let i = 2; i <= segments.length; i++) {
      await this.#makeDir(segments.slice(0, i).join("/"), { existingOk: true });
    }
  }

  /**
   * Creates a new folder inside an existing one; it must not exist yet.
   *
   * @throws {UnsafeFilesystemEntryError} when the parent is not a checked folder.
   */
  async makeDir(relative: string): Promise<void> {
    await this.expectDir(parentOf(relative), { missingOk: false });
    await this.#makeDir(relative, { existingOk: false });
  }

  async #makeDir(relative: string, options: { existingOk: boolean }): Promise<void> {
    const path = this.path(relative);
    try {
      await mkdir(path, { mode: this.#modes.dir });
    } catch (e) {
      if (codeOf(e) !== "EEXIST" || !options.existingOk) throw e;
      await this.expectDir(relative, { missingOk: false });
      return;
    }
    const handle = await open(path, READ_FLAGS | constants.O_DIRECTORY);
    try {
      await handle.chmod(this.#modes.dir);
    } finally {
      await handle.close();
    }
  }

  /**
   * Opens an existing plain file for reading (see {@link openPlainFile}).
   *
   * @returns the handle, or `undefined` when the path is missing.
   */
  async openRead(relative: string): Promise<FileHandle | undefined> {
    const entry = await this.inspect(relative);
    if (entry.kind === "missing") return undefined;
    return await openPlainFile(this.path(relative), relative);
  }

  /**
   * Creates a new file with the file mode, inside a checked folder; it never opens an existing file.
   *
   * @throws {UnsafeFilesystemEntryError} when the parent is not a checked folder or the name is taken by a
   *   link.
   */
  async createFile(relative: string): Promise<FileHandle> {
    await this.expectDir(parentOf(relative), { missingOk: false });
    let handle: FileHandle;
    try {
      handle = await open(this.path(relative), CREATE_FLAGS, this.#modes.file);
    } catch (e) {
      if (codeOf(e) === "EEXIST") await this.inspect(relative); // names a link, if it is one
      throw e;
    }
    try {
      await handle.chmod(this.#modes.file);
      return handle;
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** Gives an existing plain file the file mode, through a handle opened without following links. */
  async setFileMode(relative: string): Promise<void> {
    const handle = await this.openRead(relative);
    if (handle === undefined) throw new UnsafeFilesystemEntryError(relative, "is missing");
    try {
      await handle.chmod(this.#modes.file);
    } finally {
      await handle.close();
    }
  }

  /**
   * Renames a file or folder over a path that is missing or of the same kind, after checking both.
   *
   * @throws {UnsafeFilesystemEntryError} when either path is not what it must be.
   */
  async rename(from: string, to: string, kind: "dir" | "file"): Promise<void> {
    const source = await this.inspect(from);
    if (source.kind !== kind) {
      throw new UnsafeFilesystemEntryError(
        from,
        kind === "dir" ? "is not a folder" : "is not a file",
      );
    }
    const target = await this.inspect(to);
    if (target.kind !== "missing" && target.kind !== kind) {
      throw new UnsafeFilesystemEntryError(
        to,
        kind === "dir" ? "is not a folder" : "is not a file",
      );
    }
    await rename(this.path(from), this.path(to));
  }

  /**
   * Removes a plain file, or a folder with everything in it; links inside a folder are removed, never
   * followed. A missing path is fine.
   *
   * @throws {UnsafeFilesystemEntryError} when the path or a folder above it is a link or a hard link.
   */
  async remove(relative: string): Promise<void> {
    const { kind } = await this.inspect(relative);
    if (kind === "missing") return;
    await rm(this.path(relative), { recursive: kind === "dir", force: true });
  }

  /** Removes a folder only if it is a checked, empty folder; anything else leaves it as it is. */
  async removeIfEmpty(relative: string): Promise<void> {
    try {
      if ((await this.inspect(relative)).kind !== "dir") return;
      await rmdir(this.path(relative));
    } catch {
      // not empty, gone, busy, or unsafe: left alone
    }
  }

  /**
   * The entries of a checked folder, sorted by name, with what each is; links and other entries that are
   * neither a plain file with one name nor a folder come back as `unsafe`, with the reason.
   *
   * @returns `[]` when the folder is missing.
   */
  async list(relative: string): Promise<ListedEntry[]> {
    if (await this.expectDir(relative, { missingOk: true }) === "missing") return [];
    const names = (await readdir(this.path(relative))).sort();
    const entries: ListedEntry[] = [];
    for (const name of names) {
      try {
        const entry = await this.inspect(`${relative}/${name}`);
        if (entry.kind !== "missing") entries.push({ name, kind: entry.kind });
      } catch (e) {
        if (!(e instanceof UnsafeFilesystemEntryError)) throw e;
        entries.push({ name, kind: "unsafe", reason: e.reason });
      }
    }
    return entries;
  }
}

/** An entry of a listed folder. */
export interface ListedEntry {
  readonly name: string;
  readonly kind: "dir" | "file" | "unsafe";
  /** Why an `unsafe` entry is unsafe, e.g. `is a symbolic link`. */
  readonly reason?: string;
}

/** The folder a relative path is in. */
export function parentOf(relative: string): string {
  const slash = relative.lastIndexOf("/");
  if (slash <= 0) throw new UnsafeFilesystemEntryError(relative, "is not inside an area");
  return relative.slice(0, slash);
}
