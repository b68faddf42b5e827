/**
 * Fetching an HTTP-file source (issue 18, point 4; `docs/http-sources.md`): lists its files (its URLs,
 * or its index page), asks the registry what was taken before, fetches only new or changed files
 * (conditional requests) and failed ones whose backoff has passed, streams each into staging as the
 * source's dataset (hashed as it arrives), and records every file's end in the registry. Every URL,
 * and each redirect, is checked against the allow-list; a redirect to another host is refused.
 *
 * @module
 */
import type { AllowedSources } from "../domain/allowed_sources.ts";
import { SourceNotAllowedError } from "../domain/allowed_sources.ts";
import { AppError } from "../domain/errors.ts";
import {
  fileDecision,
  type FileRecord,
  httpFileName,
  httpFilePayloadPath,
  type HttpFileSource,
  mediaTypeOf,
  nextAttemptAt,
  parseIndex,
} from "../domain/http_file_sources.ts";
import type { ProgressReport } from "../domain/long_work.ts";
import type { StagedFile, StagingWork } from "../domain/staging_layout.ts";
import type { Destination, LongWork, StageOptions } from "../ports/destination.ts";
import type { FileRegistry } from "../ports/file_registry.ts";
import type { Filestore } from "../ports/filestore.ts";
import type { HttpFileClient, HttpFileResponse } from "../ports/http_file_client.ts";
import { loadCsvFiles } from "./load_csv_files.ts";

/** Same-host redirects followed per file at most. */
export const MAX_HTTP_REDIRECTS = 5;

/** The largest index page read. */
export const MAX_INDEX_BYTES = 8 * 1024 * 1024;

/** What fetching a source needs. */
export interface FetchHttpFilesPorts {
  readonly allowedSources: AllowedSources;
  readonly client: HttpFileClient;
  readonly registry: FileRegistry;
  /** The source's filestore destination. */
  readonly filestore: Filestore;
  readonly now: () => Date;
  /**
   * For a source with `postgresql: true`: the PostgreSQL destination its CSV files are also loaded
   * into, as the tables of its dataset, and the load's limits (the service's package limits).
   */
  readonly postgresql?: {
    readonly destination: Destination;
    readonly limits: Omit<StageOptions, keyof LongWork | "checks" | "reuse">;
  } | undefined;
}

/** The run fetching the source. */
export interface FetchHttpFilesRun {
  readonly runId: string;
  /** The project start time the files are staged under. */
  readonly startTime: string;
  readonly signal: AbortSignal;
  /** Progress per file (its name as the `table`), never file content. */
  readonly onProgress: (progress: ProgressReport) => void;
  /**
   * Files an interrupted run of the same request finished: name → SHA-512. A left-over with those
   * bytes is kept instead of fetched again (`StagingWork.reuse`).
   */
  readonly reuse?: ReadonlyMap<string, string> | undefined;
}

/** What a run did with one listed file. */
export interface FetchedFile {
  readonly url: string;
  /**
   * `fetched`: new or changed, staged; `unchanged`: the server answered 304; `waiting`: failed before,
   * its backoff has not passed; `failed`: retried with backoff on a later run; `ignored`: not taken
   * (type, size, name or host refused); `deferred`: past the run's file or byte limit, left for the next
   * run.
   */
  readonly outcome: "fetched" | "unchanged" | "waiting" | "failed" | "ignored" | "deferred";
  readonly path: string | null;
  readonly bytes: number | null;
  readonly sha512: string | null;
  /** The error code of a failed or ignored file. */
  readonly reason: string | null;
}

/** What fetching a source did. */
export interface FetchHttpFilesResult {
  readonly source: string;
  readonly project_name: string;
  readonly project_start_time: string;
  readonly files: readonly FetchedFile[];
  /** The files staged: the source's dataset in the run's staging (empty: nothing new, nothing staged). */
  readonly staged: readonly StagedFile[];
  /** The tables the staged files were loaded as (`schema.table`), for `postgresql: true`; else none. */
  readonly loaded_tables: readonly string[];
}

/** The source's index could not be read (to be a 502: the run fails, nothing recorded). */
export class HttpIndexUnavailableError extends AppError {
  readonly code = "http_index_unavailable";
}

/** A file answered with a status that is neither 200 nor 304 (a 5xx, a 404, a redirect elsewhere). */
export class HttpFileRefusedError extends AppError {
  readonly code = "http_file_refused";
}

/** A file's content type is not one the source accepts. */
export class HttpContentTypeRefusedError extends AppError {
  readonly code = "http_content_type_refused";
}

/**
 * Fetches what is new of a source into staging and records it.
 *
 * @throws {HttpIndexUnavailableError} when the index cannot be read; nothing is staged or recorded.
 * @throws the staging's errors (`Filestore.stage`); failed and ignored files are recorded all the same.
 */
export async function fetchHttpFiles(
  source: HttpFileSource,
  ports: FetchHttpFilesPorts,
  run: FetchHttpFilesRun,
): Promise<FetchHttpFilesResult> {
  const urls = await listedUrls(source, ports, run.signal);
  const known = new Map((await ports.registry.records(source.name)).map((r) => [r.url, r]));
  const files: FetchedFile[] = [];
  const records: FileRecord[] = [];
  const names = new Set<string>();
  const record = (url: string, fields: Partial<FileRecord> & Pick<FileRecord, "state">) => {
    const before = known.get(url);
    const failed = fields.state === "failed";
    const attempts = failed ? (before?.state === "failed" ? before.attempts : 0) + 1 : 0;
    const at = ports.now();
    records.push({
      source: source.name,
      url,
      etag: null,
      last_modified: null,
      bytes: null,
      sha512: null,
      reason: null,
      ...fields,
      attempts,
      next_attempt_at: failed ? nextAttemptAt(attempts, at) : null,
      run_id: run.runId,
      updated_at: at.toISOString(),
    });
  };
  const outcome = (url: string, o: Omit<FetchedFile, "url">) => files.push({ url, ...o });
  const none = { path: null, bytes: null, sha512: null, reason: null } as const;

  const runRef = { project: source.project_name, startTime: run.startTime };
  let loadedTables: readonly string[] = [];
  let totalBytes = 0;
  let taken = 0;
  const stageFiles = async (work: StagingWork): Promise<StagedFile[]> => {
    const staged: StagedFile[] = [];
    for (const url of urls) {
      run.signal.throwIfAborted();
      const name = httpFileName(url);
      if (name === undefined || names.has(name)) {
        const reason = name === undefined ? "http_file_name_unsafe" : "http_file_name_duplicate";
        outcome(url, { ...none, outcome: "ignored", reason });
        record(url, { state: "ignored", reason });
        continue;
      }
      names.add(name);
      const decision = fileDecision(known.get(url), ports.now());
      if (decision.kind === "wait") {
        outcome(url, { ...none, outcome: "waiting" });
        continue;
      }
      if (taken >= source.limits.max_files || totalBytes >= source.limits.max_total_bytes) {
        outcome(url, { ...none, outcome: "deferred" });
        continue;
      }
      const path = httpFilePayloadPath(source.name, name);
      const recorded = run.reuse?.get(name);
      const kept = recorded === undefined ? undefined : await work.reuse(path, recorded);
      if (kept !== undefined) {
        // Its validators were not recorded: the next run asks for it again, and finds the same bytes.
        taken++;
        totalBytes += kept.bytes;
        run.onProgress({
          table: name,
          rows: null,
          bytes: kept.bytes,
          done: { sha512: kept.sha512, reused: true },
        });
        staged.push(kept);
        outcome(url, {
          path,
          bytes: kept.bytes,
          sha512: kept.sha512,
          reason: null,
          outcome: "fetched",
        });
        record(url, { state: "processed", bytes: kept.bytes, sha512: kept.sha512 });
        continue;
      }
      const timeout = AbortSignal.timeout(source.limits.timeout_ms);
      const signal = AbortSignal.any([run.signal, timeout]);
      let response: HttpFileResponse | undefined;
      try {
        const headers: Record<string, string> = {};
        if (decision.etag !== null) headers["if-none-match"] = decision.etag;
        if (decision.lastModified !== null) headers["if-modified-since"] = decision.lastModified;
        response = await guardedGet(url, headers, ports, signal);
        if (response.status === 304) {
          response.discard();
          outcome(url, { ...none, outcome: "unchanged" });
          continue;
        }
        if (response.status !== 200) {
          response.discard();
          throw new HttpFileRefusedError(`Cannot fetch ${url}: it answered ${response.status}`);
        }
        const type = mediaTypeOf(response.header("content-type"));
        if (type === undefined || !source.limits.content_types.includes(type)) {
          response.discard();
          throw new HttpContentTypeRefusedError(
            `Cannot take ${url}: its content type ${type ?? "(none)"} is not accepted`,
          );
        }
        const room = Math.min(
          source.limits.max_file_bytes,
          source.limits.max_total_bytes - totalBytes,
        );
        const saved = await response.save(
          `${work.dir}/${path}`,
          room,
          (bytes) => run.onProgress({ table: name, rows: null, bytes }),
        );
        const validators = {
          etag: response.header("etag"),
          last_modified: response.header("last-modified"),
        };
        const before = known.get(url);
        if (before?.state === "processed" && before.sha512 === saved.sha512) {
          // Changed validators, same bytes (or a server without validators): nothing new to stage; the
          // file left in the private work folder is never staged.
          outcome(url, { ...none, outcome: "unchanged" });
          record(url, {
            state: "processed",
            ...validators,
            bytes: saved.bytes,
            sha512: saved.sha512,
          });
          continue;
        }
        totalBytes += saved.bytes;
        taken++;
        run.onProgress({
          table: name,
          rows: null,
          bytes: saved.bytes,
          done: { sha512: saved.sha512, reused: false },
        });
        staged.push({ path, sha512: saved.sha512, bytes: saved.bytes });
        outcome(url, {
          path,
          bytes: saved.bytes,
          sha512: saved.sha512,
          reason: null,
          outcome: "fetched",
        });
        record(url, {
          state: "processed",
          ...validators,
          bytes: saved.bytes,
          sha512: saved.sha512,
        });
      } catch (e) {
        if (run.signal.aborted) throw run.signal.reason;
        const code = e instanceof AppError ? e.code : "http_file_failed";
        // A file too large for the limit or of a refused type is the file's nature, not a failure:
        // ignored until it changes (the next run asks again with its validators).
        const ignored = code === "http_file_too_large" &&
            source.limits.max_file_bytes <= source.limits.max_total_bytes - totalBytes ||
          code === "http_content_type_refused" || e instanceof SourceNotAllowedError;
        if (code === "http_file_too_large" && !ignored) {
          outcome(url, { ...none, outcome: "deferred" });
          continue;
        }
        outcome(url, { ...none, outcome: ignored ? "ignored" : "failed", reason: code });
        // An ignored file keeps its validators, so the next run asks again only if it changed.
        const validators = ignored && response !== undefined
          ? { etag: response.header("etag"), last_modified: response.header("last-modified") }
          : {};
        record(url, { state: ignored ? "ignored" : "failed", reason: code, ...validators });
      }
    }
    if (ports.postgresql !== undefined && staged.length > 0) {
      // Loaded before the files' stage completes: a file the load refuses stages nothing either.
      const loaded = await loadCsvFiles(work, staged, {
        destination: ports.postgresql.destination,
        run: runRef,
        dataset: source.name,
      }, { ...ports.postgresql.limits, signal: run.signal });
      loadedTables = loaded.dataRetrieved.flatMap((d) => "table_name" in d ? [d.table_name] : []);
    }
    return staged;
  };

  let staged: StagedFile[] = [];
  try {
    // A run with nothing new stages nothing: the staging of an earlier run is left as it is.
    staged = await stageOrNothing(ports.filestore, runRef, source.name, stageFiles);
  } finally {
    const fetched = new Set(files.filter((f) => f.outcome === "fetched").map((f) => f.url));
    // Files are recorded processed only once staged; failures and ignores always.
    const keep = staged.length > 0 || fetched.size === 0
      ? records
      : records.filter((r) => !fetched.has(r.url));
    if (keep.length > 0) await ports.registry.put(keep);
  }
  return {
    source: source.name,
    project_name: source.project_name,
    project_start_time: run.startTime,
    files,
    staged,
    loaded_tables: loadedTables,
  };
}

/**
 * Stages the files `write` fetches; when it fetched nothing, the stage is dropped (its empty dataset
 * never replaces anything) and nothing is staged.
 */
async function stageOrNothing(
  filestore: Filestore,
  runRef: { project: string; startTime: string },
  dataset: string,
  write: (work: StagingWork) => Promise<StagedFile[]>,
): Promise<StagedFile[]> {
  let empty = false;
  try {
    return await filestore.stage(runRef, dataset, async (work) => {
      const files = await write(work);
      if (files.length === 0) {
        empty = true;
        throw new NothingFetched();
      }
      return files;
    });
  } catch (e) {
    if (empty && e instanceof NothingFetched) return [];
    throw e;
  }
}

class NothingFetched extends Error {}

/** The source's file URLs: its list, or its index's links. */
async function listedUrls(
  source: HttpFileSource,
  ports: FetchHttpFilesPorts,
  signal: AbortSignal,
): Promise<string[]> {
  if (source.urls !== undefined) return [...new Set(source.urls)];
  const index = source.index!;
  const timeout = AbortSignal.any([signal, AbortSignal.timeout(source.limits.timeout_ms)]);
  let response: HttpFileResponse | undefined;
  try {
    response = await guardedGet(index.url, {}, ports, timeout);
    if (response.status !== 200) {
      throw new HttpFileRefusedError(`it answered ${response.status}`);
    }
    const text = await response.text(MAX_INDEX_BYTES);
    return parseIndex(text, index.format, index.url, index.pattern);
  } catch (e) {
    response?.discard();
    if (signal.aborted) throw signal.reason;
    throw new HttpIndexUnavailableError(
      `Cannot read the index of HTTP-file source "${source.name}": ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * One GET through the allow-list: the URL must be allowed; a redirect is followed only to the same
 * scheme, host and port (itself allowed), at most {@link MAX_HTTP_REDIRECTS} times.
 */
async function guardedGet(
  url: string,
  headers: Readonly<Record<string, string>>,
  ports: FetchHttpFilesPorts,
  signal: AbortSignal,
): Promise<HttpFileResponse> {
  let current = url;
  const origin = new URL(url).origin;
  for (let hop = 0; hop <= MAX_HTTP_REDIRECTS; hop++) {
    const allowed = ports.allowedSources.authorizeHttp(current);
    const response = await ports.client.get({
      url: allowed.url.href,
      headers,
      signal,
      allowPrivate: allowed.allowPrivate,
    });
    if (![301, 302, 303, 307, 308].includes(response.status)) return response;
    response.discard();
    const location = response.header("location");
    let next: URL | undefined;
    try {
      next = location === null ? undefined : new URL(location, current);
    } catch {
      next = undefined;
    }
    if (next === undefined || next.origin !== origin) {
      throw new HttpFileRefusedError(
        `Cannot follow the redirect of ${current}: it leads to another host`,
      );
    }
    current = next.href;
  }
  throw new HttpFileRefusedError(`Cannot fetch ${url}: more than ${MAX_HTTP_REDIRECTS} redirects`);
}
