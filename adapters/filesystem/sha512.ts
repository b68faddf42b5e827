/**
 * Streaming SHA-512 over files: one read, 1 MiB at a time (node:crypto is about twice as fast here as
 * WebCrypto, which has no incremental digest).
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import { openPlainFile } from "./confined_tree.ts";

/** A file's SHA-512 (lower-case hex) and size. */
export interface FileDigest {
  readonly sha512: string;
  readonly bytes: number;
}

const CHUNK = 1 << 20;

/** Reads an open file from its start to its end, 1 MiB at a time, hashing the bytes on the way. */
async function readHashing(
  file: FileHandle,
  hash: Hash,
  onChunk: (data: Uint8Array) => Promise<void>,
): Promise<number> {
  let bytes = 0;
  // A stream over the handle reads ahead while a chunk is hashed or written (a read loop on the
  // handle was about 1.5 times slower); the handle stays open for the caller to close.
  for await (
    const chunk of file.createReadStream({ start: 0, highWaterMark: CHUNK, autoClose: false })
  ) {
    const data = chunk as Uint8Array;
    hash.update(data);
    await onChunk(data);
    bytes += data.length;
  }
  return bytes;
}

/**
 * Hashes a plain file in one streaming read, refusing a link or a hard link.
 *
 * @param path the absolute path.
 * @param relative the path a refusal names.
 * @throws {UnsafeFilesystemEntryError} when it is not a plain file with one name.
 */
export async function sha512File(path: string, relative: string): Promise<FileDigest> {
  const file = await openPlainFile(path, relative);
  if (file === undefined) {
    throw new Deno.errors.NotFound(`Cannot hash "${relative}": it is missing`);
  }
  try {
    return await sha512OfOpenFile(file);
  } finally {
    await file.close();
  }
}

/** Hashes an open file from its start to its end, in one streaming read; the file is not closed. */
export async function sha512OfOpenFile(file: FileHandle): Promise<FileDigest> {
  const hash = createHash("sha512");
  const bytes = await readHashing(file, hash, () => Promise.resolve());
  return { sha512: hash.digest("hex"), bytes };
}

/**
 * Copies an open file into another and hashes the bytes as they are copied, in one read of the source;
 * the copy is flushed to disk before this resolves. Neither file is closed.
 */
export async function copyWithSha512(source: FileHandle, target: FileHandle): Promise<FileDigest> {
  const hash = createHash("sha512");
  const bytes = await readHashing(source, hash, (data) => writeAll(target, data));
  await target.datasync();
  return { sha512: hash.digest("hex"), bytes };
}

/** Writes every byte, looping over short writes. */
async function writeAll(file: FileHandle, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/** A file being written whose SHA-512 and size are computed from the same bytes. */
export class HashingFileWriter {
  readonly #hash = createHash("sha512");
  readonly #file: FileHandle;
  readonly #path: string;
  #bytes = 0;
  #pending: Promise<void> = Promise.resolve();

  private constructor(file: FileHandle, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /** Creates the file; it must not exist yet. */
  static async create(path: string): Promise<HashingFileWriter> {
    return new HashingFileWriter(await open(path, "wx"), path);
  }

  /**
   * Appends bytes. The write runs while the bytes are hashed, and is awaited by the next call (or
   * {@link finish}): one write is in flight while the caller makes the next chunk, so neither the hash
   * nor the disk waits for the other. `data` must not be changed until the next call resolves.
   */
  async write(data: Uint8Array): Promise<void> {
    await this.#pending;
    this.#bytes += data.length;
    this.#pending = writeAll(this.#file, data);
    // A failure is reported by the next call that awaits it; until then it must not be unhandled.
    this.#pending.catch(() => {});
    this.#hash.update(data);
  }

  /** Flushes and closes the file and returns its digest. */
  async finish(): Promise<FileDigest> {
    try {
      await this.#pending;
      await this.#file.datasync();
    } finally {
      await this.#file.close();
    }
    return { sha512: this.#hash.digest("hex"), bytes: this.#bytes };
  }

  /** Closes the file without a digest and deletes it (after a failure or an abort). */
  async abandon(): Promise<void> {
    await this.#pending.catch(() => {});
    await this.#file.close().catch(() => {});
    await rm(this.#path, { force: true }).catch(() => {});
  }
}
