/**
 * Streaming SHA-512 over files: one read, 1 MiB at a time (node:crypto is about twice as fast here as
 * WebCrypto, which has no incremental digest).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

/** A file's SHA-512 (lower-case hex) and size. */
export interface FileDigest {
  readonly sha512: string;
  readonly bytes: number;
}

const CHUNK = 1 << 20;

/** Hashes a file in one streaming read. */
export async function sha512File(path: string): Promise<FileDigest> {
  const hash = createHash("sha512");
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    hash.update(chunk as Uint8Array);
    bytes += (chunk as Uint8Array).length;
  }
  return { sha512: hash.digest("hex"), bytes };
}

/**
 * Copies a file and hashes the bytes as they are copied, in one read of the source; the copy is flushed to
 * disk before this resolves. The target must not exist.
 */
export async function copyWithSha512(source: string, target: string): Promise<FileDigest> {
  const hash = createHash("sha512");
  let bytes = 0;
  const out = await open(target, "wx");
  try {
    for await (const chunk of createReadStream(source, { highWaterMark: CHUNK })) {
      const data = chunk as Uint8Array;
      hash.update(data);
      bytes += data.length;
      await writeAll(out, data);
    }
    await out.datasync();
  } finally {
    await out.close();
  }
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
  #bytes = 0;

  private constructor(file: FileHandle) {
    this.#file = file;
  }

  /** Creates the file; it must not exist yet. */
  static async create(path: string): Promise<HashingFileWriter> {
    return new HashingFileWriter(await open(path, "wx"));
  }

  /** Appends bytes. */
  async write(data: Uint8Array): Promise<void> {
    this.#hash.update(data);
    this.#bytes += data.length;
    await writeAll(this.#file, data);
  }

  /** Flushes and closes the file and returns its digest. */
  async finish(): Promise<FileDigest> {
    try {
      await this.#file.datasync();
    } finally {
      await this.#file.close();
    }
    return { sha512: this.#hash.digest("hex"), bytes: this.#bytes };
  }

  /** Closes the file without a digest (after a failure). */
  async abandon(): Promise<void> {
    await this.#file.close().catch(() => {});
  }
}
