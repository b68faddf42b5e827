/**
 * The upload quarantine area (`UPLOAD_QUARANTINE_PATH`, `docs/uploads.md`): uploaded data sources and
 * their files, apart from staging and production, owner-only (folders 0700, files 0600, so nothing is
 * ever executable). Layout:
 *
 * - `sources/<id>.json`: an {@link UploadedDataSource};
 * - `files/<upload id>` and `files/<upload id>.json`: a tus upload's bytes and its record (`@tus/file-store`);
 * - `results/<upload id>.json`: a finished upload's SHA-512, size and checks.
 *
 * {@link HashingFileStore} hashes each upload's bytes (SHA-512) as they arrive. node:crypto cannot save a
 * hash's state, so the state lives in memory between the PATCH requests of an upload; when it is missing
 * or does not match the offset a PATCH resumes from (a dropped connection, a restart), the partial file
 * is re-hashed from disk first.
 *
 * @module
 */
import { FileStore } from "@tus/file-store";
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, link, mkdir, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import {
  DATA_SOURCE_ID_PATTERN,
  SNIFF_BYTES,
  type UploadedDataSource,
} from "../../domain/upload_files.ts";
import type { QuarantinedFiles } from "../../ports/quarantine.ts";
import type { UploadDataSources } from "../../ports/upload_data_sources.ts";
import { openPlainFile, OWNER_ONLY } from "./confined_tree.ts";
import { copyWithSha512 } from "./sha512.ts";

/** A tus upload as the file store keeps it. */
export type TusUpload = Awaited<ReturnType<FileStore["getUpload"]>>;

/** What is recorded once an upload's last byte arrived and it was checked. */
export interface UploadResult {
  readonly sha512: string;
  readonly bytes: number;
  /** Why the file was refused (its bytes are then deleted), or `null`. */
  readonly refusal: string | null;
  /** The checks' report (`domain/tabular_checks.ts`) for a tabular file, else `null`. */
  readonly checks: unknown;
}

/** An upload of a data source, finished or not. */
export interface QuarantinedFile {
  readonly id: string;
  readonly name: string;
  readonly size: number;
  readonly offset: number;
  readonly result: UploadResult | null;
}

/** The tus id of an upload: 32 lower-case hex digits (`@tus/server`'s default naming). */
const UPLOAD_ID_PATTERN = /^[0-9a-f]{32}$/;

/** A tus file store that hashes (SHA-512) each upload's bytes as they arrive and keeps files 0600. */
export class HashingFileStore extends FileStore {
  readonly #hashes = new Map<string, { hash: Hash; offset: number }>();

  override async create(file: TusUpload): Promise<TusUpload> {
    const created = await super.create(file);
    await chmod(join(this.directory, file.id), OWNER_ONLY.file);
    await chmod(join(this.directory, `${file.id}.json`), OWNER_ONLY.file).catch(() => {});
    return created;
  }

  override async write(
    readable: Parameters<FileStore["write"]>[0],
    id: string,
    offset: number,
  ): Promise<number> {
    const known = this.#hashes.get(id);
    this.#hashes.delete(id);
    const hash = known !== undefined && known.offset === offset
      ? known.hash
      : await this.#hashOfFirst(id, offset);
    const source = readable as AsyncIterable<Uint8Array>;
    const hashed = Readable.from((async function* () {
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
    })());
    // On a failure the bytes hashed may differ from those written, so the state is dropped (above)
    // and the next PATCH re-hashes the file from disk.
    const end = await super.write(hashed, id, offset);
    this.#hashes.set(id, { hash, offset: end });
    return end;
  }

  override async remove(id: string): Promise<void> {
    this.#hashes.delete(id);
    await super.remove(id);
  }

  /** The SHA-512 (hex) of an upload's first `bytes` bytes, from the hash kept while they arrived. */
  async sha512(id: string, bytes: number): Promise<string> {
    const known = this.#hashes.get(id);
    this.#hashes.delete(id);
    const hash = known !== undefined && known.offset === bytes
      ? known.hash
      : await this.#hashOfFirst(id, bytes);
    return hash.digest("hex");
  }

  /** A SHA-512 over the first `bytes` bytes of an upload's file on disk. */
  async #hashOfFirst(id: string, bytes: number): Promise<Hash> {
    const hash = createHash("sha512");
    if (bytes === 0) return hash;
    const stream = createReadStream(join(this.directory, id), { start: 0, end: bytes - 1 });
    for await (const chunk of stream) hash.update(chunk as Uint8Array);
    return hash;
  }
}

/** The quarantine area; see the module documentation. */
export class UploadQuarantine implements QuarantinedFiles, UploadDataSources {
  readonly store: HashingFileStore;
  readonly #sources: string;
  readonly #results: string;

  private constructor(readonly root: string) {
    this.#sources = join(root, "sources");
    this.#results = join(root, "results");
    this.store = new HashingFileStore({ directory: join(root, "files") });
  }

  /** Opens (creating when missing) the area at `root`, making its folders owner-only. */
  static async open(root: string): Promise<UploadQuarantine> {
    for (const dir of [root, join(root, "sources"), join(root, "files"), join(root, "results")]) {
      await mkdir(dir, { recursive: true, mode: OWNER_ONLY.dir });
      await chmod(dir, OWNER_ONLY.dir);
    }
    return new UploadQuarantine(root);
  }

  /** Records a data source (a new one, or a changed one). */
  async saveSource(source: UploadedDataSource): Promise<void> {
    await writeOwnerOnly(join(this.#sources, `${checkedId(source.id)}.json`), source);
  }

  /**
   * Records a new data source unless one with its id exists (then it is left as it is): the whole
   * record appears at once (written aside, then linked), so two makers of one id never both succeed.
   *
   * @returns whether this call created it.
   */
  async createSource(source: UploadedDataSource): Promise<boolean> {
    const path = join(this.#sources, `${checkedId(source.id)}.json`);
    const aside = join(this.#sources, `.${source.id}.${crypto.randomUUID()}.tmp`);
    await writeOwnerOnly(aside, source);
    try {
      await link(aside, path);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === "EEXIST") return false;
      throw error;
    } finally {
      await rm(aside, { force: true });
    }
  }

  /** Removes data source `id` and every upload of it (bytes, records, results). */
  async removeSource(id: string): Promise<void> {
    for (const file of await this.files(id)) {
      await this.discard(file.id);
      await rm(join(this.#results, `${file.id}.json`), { force: true });
    }
    await rm(join(this.#sources, `${checkedId(id)}.json`), { force: true });
  }

  /** The data source `id`, or `undefined`. */
  async source(id: string): Promise<UploadedDataSource | undefined> {
    if (!DATA_SOURCE_ID_PATTERN.test(id)) return undefined;
    return await readJson<UploadedDataSource>(join(this.#sources, `${id}.json`));
  }

  /** Every data source, newest first. */
  async sources(): Promise<UploadedDataSource[]> {
    const all: UploadedDataSource[] = [];
    for (const name of await readdir(this.#sources)) {
      if (name.startsWith(".")) continue;
      const source = await this.source(name.replace(/\.json$/, ""));
      if (source !== undefined) all.push(source);
    }
    return all.sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  /** The upload `id` as the tus store keeps it, or `undefined`. */
  async upload(id: string): Promise<TusUpload | undefined> {
    if (!UPLOAD_ID_PATTERN.test(id)) return undefined;
    try {
      return await this.store.getUpload(id);
    } catch {
      return undefined;
    }
  }

  /** The uploads (finished or not) of data source `sourceId`, oldest first. */
  async files(sourceId: string): Promise<QuarantinedFile[]> {
    const files: (QuarantinedFile & { created: string })[] = [];
    for (const entry of await readdir(this.store.directory)) {
      const id = entry.replace(/\.json$/, "");
      if (!entry.endsWith(".json") || !UPLOAD_ID_PATTERN.test(id)) continue;
      const upload = await this.upload(id);
      if (upload?.metadata?.source !== sourceId) continue;
      files.push({
        id,
        name: upload.metadata.filename ?? id,
        size: upload.size ?? 0,
        offset: upload.offset,
        result: await this.result(id),
        created: upload.creation_date ?? "",
      });
    }
    return files.sort((a, b) => a.created.localeCompare(b.created)).map(({ created: _, ...f }) =>
      f
    );
  }

  /** The first bytes of upload `id` (at most {@link SNIFF_BYTES}). */
  async firstBytes(id: string): Promise<Uint8Array> {
    const file = await open(join(this.store.directory, checkedId(id)), "r");
    try {
      const buffer = new Uint8Array(SNIFF_BYTES);
      const { bytesRead } = await file.read(buffer, 0, SNIFF_BYTES, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  /** Upload `id`'s bytes, from the start, in chunks. */
  read(id: string): AsyncIterable<Uint8Array> {
    return createReadStream(join(this.store.directory, checkedId(id))) as AsyncIterable<Uint8Array>;
  }

  /** The path of upload `id`'s bytes, for the publish service's copy. */
  pathOf(id: string): string {
    return join(this.store.directory, checkedId(id));
  }

  /** Copies upload `id` into a new owner-only file at `target`, hashing it (`QuarantinedFiles`). */
  async copyInto(id: string, target: string): Promise<{ sha512: string; bytes: number }> {
    const source = await openPlainFile(this.pathOf(id), `files/${id}`);
    if (source === undefined) throw new Error(`No upload ${id} in the quarantine area`);
    try {
      await mkdir(dirname(target), { recursive: true, mode: OWNER_ONLY.dir });
      const copy = await open(target, "wx", OWNER_ONLY.file);
      try {
        return await copyWithSha512(source, copy);
      } finally {
        await copy.close();
      }
    } finally {
      await source.close();
    }
  }

  /** Records what was found once upload `id` finished. */
  async saveResult(id: string, result: UploadResult): Promise<void> {
    await writeOwnerOnly(join(this.#results, `${checkedId(id)}.json`), result);
  }

  /** What was found once upload `id` finished, or `null` while it has not. */
  async result(id: string): Promise<UploadResult | null> {
    return (await readJson<UploadResult>(join(this.#results, `${checkedId(id)}.json`))) ?? null;
  }

  /** Deletes upload `id`'s bytes and record (its result stays, to say why). */
  async discard(id: string): Promise<void> {
    await this.store.remove(checkedId(id)).catch(() => {});
    await rm(join(this.store.directory, id), { force: true });
  }
}

function checkedId(id: string): string {
  if (!UPLOAD_ID_PATTERN.test(id)) throw new Error("not an upload or data source id");
  return id;
}

async function writeOwnerOnly(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value), { mode: OWNER_ONLY.file });
  await chmod(path, OWNER_ONLY.file);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
}
