/**
 * Streaming SHA-512 over files: one read, 1 MiB at a time (node:crypto is about twice as fast here as
 * WebCrypto, which has no incremental digest).
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import { openPlainFile } from "./confined_tree.ts";
import type { HashReply, HashRequest } from "./sha512_worker.ts";

/** A file's SHA-512 (lower-case hex) and size. */
export interface FileDigest {
  readonly sha512: string;
  readonly bytes: number;
}

const CHUNK = 1 << 20;

/**
 * Reads an open file from its start to its end, 1 MiB at a time, hashing the bytes on the way. Two
 * buffers take turns: the next read runs while a chunk is hashed and handed on, and no chunk is a new
 * allocation. (A stream over the handle allocated a buffer per chunk, which stayed until V8 collected
 * it: up to 60 MB of a 66 MB DuckDB file at the service's peak, docs/benchmarks.md, issue 20; a read
 * loop without the read ahead was about 1.5 times slower.) `onChunk` must be done with its chunk when
 * its promise settles: the buffer is read into again.
 */
async function readHashing(
  file: FileHandle,
  hash: Hash,
  onChunk: (data: Uint8Array) => Promise<void>,
): Promise<number> {
  let current = new Uint8Array(CHUNK);
  let next = new Uint8Array(CHUNK);
  let bytes = 0;
  let reading = file.read(current, 0, CHUNK, 0);
  for (;;) {
    const { bytesRead } = await reading;
    if (bytesRead === 0) return bytes;
    const data = current.subarray(0, bytesRead);
    bytes += bytesRead;
    [current, next] = [next, current];
    reading = file.read(current, 0, CHUNK, bytes);
    try {
      hash.update(data);
      await onChunk(data);
    } catch (e) {
      await reading.catch(() => {});
      throw e;
    }
  }
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

/** How many bytes the hashing worker is sent at a time. */
export const HASH_BUFFER_BYTES = 1 << 20;

/**
 * How many {@link HASH_BUFFER_BYTES} buffers a {@link HashingFileWriter} fills at most: when the worker
 * hashes slower than bytes arrive, the writer waits for a buffer to come back, so memory stays bounded
 * (per file being written, whatever the number of files sharing the worker).
 */
export const HASH_BUFFERS = 4;

/** The module of the hashing worker; `deno compile` must `--include` it (tools/compile.ts). */
export const SHA512_WORKER = new URL("./sha512_worker.ts", import.meta.url);

/**
 * How long the hashing worker outlives its last stream (ms): a package writing its tables one after
 * another keeps one worker, and a process with nothing to hash ends without waiting for more.
 */
export const HASH_WORKER_IDLE_MS = 200;

/** What a {@link HashingFileWriter} hears from the shared worker about its stream. */
interface StreamListener {
  buffer(buffer: ArrayBuffer): void;
  digest(sha512: string): void;
  fail(error: Error): void;
}

let workersStarted = 0;

/** How many hashing workers this process has started (tests check that concurrent files share one). */
export function hashingWorkersStarted(): number {
  return workersStarted;
}

/**
 * One hashing worker, shared by the files being written, each a stream with its own id: the worker
 * keeps a hash per stream, and messages of one stream stay in order. It ends after
 * {@link HASH_WORKER_IDLE_MS} without a stream, or when it fails (failing every stream it had).
 */
class SharedHashingWorker {
  readonly #worker: Worker;
  readonly #streams = new Map<number, StreamListener>();
  readonly #onEnd: () => void;
  #next = 1;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #ended = false;

  constructor(module: URL, onEnd: () => void) {
    this.#onEnd = onEnd;
    this.#worker = new Worker(module.href, { type: "module" });
    workersStarted++;
    this.#worker.onmessage = ({ data }: MessageEvent<HashReply>) => {
      // A stream that was closed meanwhile (abandoned) ignores its replies.
      const listener = this.#streams.get(data.stream);
      if (listener === undefined) return;
      if ("buffer" in data) listener.buffer(data.buffer);
      else if ("sha512" in data) listener.digest(data.sha512);
      else {
        // The worker has forgotten the stream; it is closed before its writer hears why.
        this.close(data.stream, true);
        listener.fail(new Error(`Cannot hash the file: ${data.error}`));
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(new Error(`Cannot hash the file: the hashing worker failed: ${event.message}`));
    };
    this.#worker.onmessageerror = () => {
      this.#fail(new Error("Cannot hash the file: a message of the hashing worker was lost"));
    };
  }

  get ended(): boolean {
    return this.#ended;
  }

  get idle(): boolean {
    return this.#streams.size === 0;
  }

  /** Opens a stream; its id names its messages. */
  open(listener: StreamListener): number {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    const stream = this.#next++;
    this.#streams.set(stream, listener);
    return stream;
  }

  send(stream: number, buffer: ArrayBuffer, length: number): void {
    this.#worker.postMessage({ stream, buffer, length } satisfies HashRequest, [buffer]);
  }

  digest(stream: number): void {
    this.#worker.postMessage({ stream, end: "digest" } satisfies HashRequest);
  }

  /** Closes a stream (the worker forgets its hash unless it sent the digest); the last one starts the idle wait. */
  close(stream: number, digested: boolean): void {
    if (!this.#streams.delete(stream) || this.#ended) return;
    if (!digested) this.#worker.postMessage({ stream, end: "drop" } satisfies HashRequest);
    if (this.#streams.size > 0) return;
    const idle = setTimeout(() => this.end(), HASH_WORKER_IDLE_MS);
    // The worker holds the process while it runs; the timer need not.
    Deno.unrefTimer(idle);
    this.#idle = idle;
  }

  /** Terminates the worker; streams still open learn it from their next call. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#worker.terminate();
    this.#onEnd();
  }

  #fail(error: Error): void {
    const listeners = [...this.#streams.values()];
    this.#streams.clear();
    this.end();
    for (const listener of listeners) listener.fail(error);
  }
}

/** The running worker of each worker module (one in production: {@link SHA512_WORKER}). */
const sharedWorkers = new Map<string, SharedHashingWorker>();

/** The shared worker of a module, started when none runs. */
function sharedWorker(module: URL): SharedHashingWorker {
  const running = sharedWorkers.get(module.href);
  if (running !== undefined && !running.ended) return running;
  const worker: SharedHashingWorker = new SharedHashingWorker(module, () => {
    if (sharedWorkers.get(module.href) === worker) sharedWorkers.delete(module.href);
  });
  sharedWorkers.set(module.href, worker);
  return worker;
}

/**
 * Ends now every hashing worker without a stream instead of after {@link HASH_WORKER_IDLE_MS} (for tests
 * that check for leaked timers, and for a clean shutdown). Returns how many are still busy.
 */
export function stopIdleHashingWorkers(): number {
  let busy = 0;
  for (const worker of [...sharedWorkers.values()]) {
    if (worker.idle) worker.end();
    else busy++;
  }
  return busy;
}

/**
 * A file being written whose SHA-512 and size are computed from the same bytes.
 *
 * SHA-512 costs about 2 ns a byte (0.4 s for a 188 MB file) on the JavaScript thread, which also reads
 * and encodes the rows, so the hash runs on a worker: each chunk is copied into one of at most
 * {@link HASH_BUFFERS} buffers of {@link HASH_BUFFER_BYTES}, which are transferred to the worker in
 * order and come back emptied (the copy costs about 30 µs a MiB, the hash about 2 ms). One worker serves
 * every file being written in the process (each a stream of its own, so a worker costs its 10-26 MB of
 * memory once); a file opens its stream with its first full buffer (a smaller file is hashed here), and
 * {@link finish} and {@link abandon} close it whatever happened. The worker starts with the first
 * stream and ends {@link HASH_WORKER_IDLE_MS} after the last one closes.
 */
export class HashingFileWriter {
  readonly #file: FileHandle;
  readonly #path: string;
  #bytes = 0;
  #pending: Promise<void> = Promise.resolve();
  /** Emptied buffers, ready to fill. */
  readonly #free: ArrayBuffer[] = [];
  #allocated = 0;
  /** The buffer being filled, and how much of it is. */
  #current: Uint8Array | undefined;
  #filled = 0;
  /** The shared worker and this file's stream on it, from the first full buffer until closed. */
  #worker: SharedHashingWorker | undefined;
  #stream = 0;
  #hashed = false;
  /** Callers waiting for a buffer to come back, or for the digest. */
  #waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #sha512: string | undefined;
  #failure: { error: unknown } | undefined;

  readonly #workerModule: URL;

  private constructor(file: FileHandle, path: string, workerModule: URL) {
    this.#file = file;
    this.#path = path;
    this.#workerModule = workerModule;
  }

  /**
   * Creates the file; it must not exist yet.
   *
   * @param options.workerModule the hashing worker ({@link SHA512_WORKER}; tests give a slower one).
   */
  static async create(
    path: string,
    options: { readonly workerModule?: URL } = {},
  ): Promise<HashingFileWriter> {
    return new HashingFileWriter(
      await open(path, "wx"),
      path,
      options.workerModule ?? SHA512_WORKER,
    );
  }

  /**
   * Appends bytes. The write runs while the bytes are copied for the hash, and is awaited by the next
   * call (or {@link finish}): one write is in flight while the caller makes the next chunk. Waits when
   * every hashing buffer is with the worker. `data` must not be changed until the next call resolves.
   */
  async write(data: Uint8Array): Promise<void> {
    await this.#pending;
    this.#bytes += data.length;
    this.#pending = writeAll(this.#file, data);
    // A failure is reported by the next call that awaits it; until then it must not be unhandled.
    this.#pending.catch(() => {});
    await this.#hash(data);
  }

  /** Flushes and closes the file and returns its digest; its stream on the worker is closed when this settles. */
  async finish(): Promise<FileDigest> {
    try {
      try {
        await this.#pending;
        await this.#file.datasync();
      } finally {
        await this.#file.close();
      }
      return { sha512: await this.#digest(), bytes: this.#bytes };
    } finally {
      this.#stop(new Error("The hashing file writer has finished"));
    }
  }

  /** Closes its stream on the worker and the file, without a digest, and deletes it (after a failure or an abort). */
  async abandon(): Promise<void> {
    this.#stop(new Error("The hashing file writer was abandoned"));
    await this.#pending.catch(() => {});
    await this.#file.close().catch(() => {});
    await rm(this.#path, { force: true }).catch(() => {});
  }

  /** Copies bytes into the hashing buffers, sending each full one to the worker. */
  async #hash(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      this.#current ??= new Uint8Array(await this.#emptyBuffer());
      const n = Math.min(data.length - offset, this.#current.length - this.#filled);
      this.#current.set(data.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#current.length) this.#send();
    }
  }

  /** A buffer to fill: an emptied one, a new one while fewer than {@link HASH_BUFFERS} exist, or the next one back. */
  async #emptyBuffer(): Promise<ArrayBuffer> {
    while (true) {
      if (this.#failure !== undefined) throw this.#failure.error;
      const free = this.#free.pop();
      if (free !== undefined) return free;
      if (this.#allocated < HASH_BUFFERS) {
        this.#allocated++;
        return new ArrayBuffer(HASH_BUFFER_BYTES);
      }
      await this.#next();
    }
  }

  /** Resolves at the worker's next reply to this stream (rejects when the writer fails or stops). */
  #next(): Promise<void> {
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Transfers the buffer being filled to the worker, opening this file's stream if need be. */
  #send(): void {
    const buffer = this.#current!.buffer as ArrayBuffer;
    const length = this.#filled;
    this.#current = undefined;
    this.#filled = 0;
    this.#throwIfFailed();
    if (!this.#hashed) {
      this.#hashed = true;
      this.#worker = sharedWorker(this.#workerModule);
      this.#stream = this.#worker.open({
        buffer: (emptied) => {
          this.#free.push(emptied);
          this.#wake();
        },
        digest: (sha512) => {
          this.#sha512 = sha512;
          this.#wake();
        },
        fail: (error) => {
          // The shared worker has closed this stream already.
          this.#worker = undefined;
          this.#stop(error);
        },
      });
    }
    if (this.#worker === undefined) throw new Error("Cannot hash the file: its stream is closed");
    this.#worker.send(this.#stream, buffer, length);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.resolve();
  }

  /** The digest of every byte written: from the worker if this file used it, else computed here. */
  async #digest(): Promise<string> {
    if (!this.#hashed) {
      const hash = createHash("sha512");
      if (this.#current !== undefined) hash.update(this.#current.subarray(0, this.#filled));
      return hash.digest("hex");
    }
    if (this.#filled > 0) this.#send();
    this.#throwIfFailed();
    this.#worker!.digest(this.#stream);
    while (this.#sha512 === undefined) {
      if (this.#failure !== undefined) throw this.#failure.error;
      await this.#next();
    }
    return this.#sha512;
  }

  /** Closes this file's stream (if open) and fails whoever waits for it. */
  #stop(error: unknown): void {
    this.#worker?.close(this.#stream, this.#sha512 !== undefined);
    this.#worker = undefined;
    this.#failure ??= { error };
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.reject(this.#failure.error);
  }
}
