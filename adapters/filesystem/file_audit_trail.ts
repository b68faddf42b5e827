/**
 * The audit trail as one JSON-lines file (`AUDIT_LOG_PATH`), which the three services may share on one
 * volume. Each append, in any process:
 *
 * 1. opens the file for appending (creating it) and takes an exclusive advisory lock on it (`flock`), so
 *    appends from every process and every request are serialised;
 * 2. reads the file backwards to its last complete line and checks that record (its `sha256` and canonical
 *    form) to continue the chain from it;
 * 3. writes the new record and its `\n` in one write, flushes it to disk (`fdatasync`), unlocks.
 *
 * **A partly written last line.** A record is complete once its `\n` is on disk. A writer killed in the middle
 * of step 3 leaves an unterminated tail, whose operation was never answered as a success. The next append,
 * holding the lock, cuts that tail off (the file is truncated to the end of its last complete line) before
 * writing, and reports the number of bytes dropped through `onPartialLineDropped`; until then
 * `audit:verify` reports the tail as a truncated record. A damaged last *complete* line is never repaired:
 * appends are refused ({@link AuditTrailUnavailableError}) until an operator looks at the file.
 *
 * The lock is advisory: every writer must use this adapter, and the filesystem must support `flock` (local
 * filesystems and NFSv4 do).
 *
 * **Never through a link.** The file is created with `O_CREAT | O_EXCL` (owner-only), which never follows a
 * link; an existing file must be a plain file (`lstat`), and the opened handle must be that same file, so a
 * symbolic link at the path, or one swapped in while opening, is refused ({@link openAuditFile}).
 *
 * @module
 */
import { type AuditLink, chainAuditRecord, readAuditLine } from "../../domain/audit.ts";
import type { AnyAuditEntry, ChainedRecordOf } from "../../domain/audit.ts";
import { type AuditTrail, AuditTrailUnavailableError } from "../../ports/audit_trail.ts";

/** Options for {@link FileAuditTrail}. */
export interface FileAuditTrailOptions {
  /** Told how many bytes of a partly written last line an append cut off before writing. */
  readonly onPartialLineDropped?: (bytes: number) => void;
}

const NEWLINE = 0x0a;
const CHUNK = 64 * 1024;
const encoder = new TextEncoder();
// ignoreBOM keeps a byte-order mark in the text, so that the record check reports it as damage.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The end of the file as an append sees it. */
interface Tail {
  readonly size: number;
  /** Offset just after the last `\n` (0 when there is none): where the next record goes. */
  readonly completeEnd: number;
  /** The last complete line, without its `\n`; `undefined` when the file has no complete line. */
  readonly lastLine: string | undefined;
}

/** An append-only, hash-chained audit trail in one file, safe to share between processes. */
export class FileAuditTrail implements AuditTrail {
  readonly #path: string;
  readonly #onPartialLineDropped: (bytes: number) => void;

  /** @param path the trail's file; it is created by the first append or check. */
  constructor(path: string, options: FileAuditTrailOptions = {}) {
    this.#path = path;
    this.#onPartialLineDropped = options.onPartialLineDropped ?? (() => {});
  }

  async checkWritable(): Promise<void> {
    using file = await this.#open();
    await lock(file, false);
    await lastLink(await readTail(file));
  }

  async append<E extends AnyAuditEntry>(entry: E): Promise<ChainedRecordOf<E>> {
    using file = await this.#open();
    await lock(file, true);
    const tail = await readTail(file);
    const previous = await lastLink(tail);
    const { record, line } = await chainAuditRecord(entry, previous);
    try {
      if (tail.completeEnd < tail.size) {
        await file.truncate(tail.completeEnd);
        this.#onPartialLineDropped(tail.size - tail.completeEnd);
      }
      await writeAll(file, encoder.encode(line + "\n"));
      await file.syncData();
    } catch (e) {
      // Leave no partial record behind: the next append would drop it anyway, but verify would flag it.
      await file.truncate(tail.completeEnd).catch(() => {});
      throw new AuditTrailUnavailableError(
        `Cannot append to the audit trail: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return record;
  }

  async #open(): Promise<Deno.FsFile> {
    try {
      return await openAuditFile(this.#path);
    } catch (e) {
      if (e instanceof AuditTrailUnavailableError) throw e;
      throw new AuditTrailUnavailableError(
        `Cannot open the audit trail for appending: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

const OPEN_EXISTING: Deno.OpenOptions = { read: true, append: true };
const CREATE_NEW: Deno.OpenOptions = { ...OPEN_EXISTING, createNew: true, mode: 0o600 };

/** Refuses a path that is not a plain file, and a handle that is not the file the path named. */
function checkSameFile(before: Deno.FileInfo, opened: Deno.FileInfo | undefined): void {
  if (before.isSymlink) {
    throw new AuditTrailUnavailableError(
      "Cannot open the audit trail: it is a symbolic link, which is never followed",
    );
  }
  if (!before.isFile) {
    throw new AuditTrailUnavailableError("Cannot open the audit trail: it is not a plain file");
  }
  if (opened !== undefined && (opened.dev !== before.dev || opened.ino !== before.ino)) {
    throw new AuditTrailUnavailableError(
      "Cannot open the audit trail: the file was replaced while it was being opened",
    );
  }
}

/**
 * Opens the trail for reading and appending without following a link: a missing file is created
 * (owner-only) with `O_EXCL`; an existing one must be a plain file, and the handle must be that file.
 *
 * @throws {AuditTrailUnavailableError} when the path is a link or not a plain file.
 */
export async function openAuditFile(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, CREATE_NEW);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  const before = await Deno.lstat(path);
  checkSameFile(before, undefined);
  const file = await Deno.open(path, OPEN_EXISTING);
  try {
    checkSameFile(before, await file.stat());
    return file;
  } catch (e) {
    file.close();
    throw e;
  }
}

/** {@link openAuditFile}, synchronously (for the check at startup). */
export function openAuditFileSync(path: string): Deno.FsFile {
  try {
    return Deno.openSync(path, CREATE_NEW);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  const before = Deno.lstatSync(path);
  checkSameFile(before, undefined);
  const file = Deno.openSync(path, OPEN_EXISTING);
  try {
    checkSameFile(before, file.statSync());
    return file;
  } catch (e) {
    file.close();
    throw e;
  }
}

async function lock(file: Deno.FsFile, exclusive: boolean): Promise<void> {
  try {
    await file.lock(exclusive);
  } catch (e) {
    throw new AuditTrailUnavailableError(
      `Cannot lock the audit trail: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** The link the next record continues from, checking the last complete record. */
async function lastLink(tail: Tail): Promise<AuditLink | undefined> {
  if (tail.lastLine === undefined) return undefined;
  const read = await readAuditLine(tail.lastLine);
  if ("problem" in read) {
    throw new AuditTrailUnavailableError(
      `Cannot continue the audit trail: its last record ${read.problem}; check it with deno task audit:verify`,
    );
  }
  return { seq: read.record.seq, sha256: read.record.sha256 };
}

/** Reads backwards from the end until the last complete line is found (or the start is reached). */
async function readTail(file: Deno.FsFile): Promise<Tail> {
  try {
    return await readTailBytes(file);
  } catch (e) {
    throw new AuditTrailUnavailableError(
      `Cannot read the audit trail: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

async function readTailBytes(file: Deno.FsFile): Promise<Tail> {
  const size = (await file.stat()).size;
  let position = size;
  let bytes = new Uint8Array(0);
  let lastNewline = -1;
  let previousNewline = -1;
  while (position > 0 && previousNewline < 0) {
    const start = Math.max(0, position - CHUNK);
    const chunk = await readAt(file, start, position - start);
    const joined = new Uint8Array(chunk.length + bytes.length);
    joined.set(chunk);
    joined.set(bytes, chunk.length);
    bytes = joined;
    position = start;
    for (let i = chunk.length - 1; i >= 0; i--) {
      if (chunk[i] !== NEWLINE) continue;
      if (lastNewline < 0) {
        lastNewline = start + i;
      } else {
        previousNewline = start + i;
        break;
      }
    }
  }
  if (lastNewline < 0) return { size, completeEnd: 0, lastLine: undefined };
  const line = bytes.subarray(previousNewline + 1 - position, lastNewline - position);
  let lastLine: string;
  try {
    lastLine = decoder.decode(line);
  } catch {
    lastLine = "\uFFFD"; // not UTF-8: reported as a damaged record
  }
  return { size, completeEnd: lastNewline + 1, lastLine };
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const read = await file.read(buffer.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  return buffer.subarray(0, filled);
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}
