/**
 * HTTP-file sources (issue 18, point 4): files a deployment pulls from HTTPS servers into staging, as a
 * dataset named after the source, and the registry of the files it took, so that a re-run fetches only
 * what is new or changed and a failed file is retried with backoff. The operator of the service
 * configures the sources (`HTTP_FILE_SOURCES_FILE`), never a request body; every URL's host must also
 * be in the allow-list (`http_sources` in `ALLOWED_SOURCES_FILE`, `domain/allowed_sources.ts`).
 * `docs/http-sources.md` describes the behaviour.
 *
 * @module
 */
import { z } from "zod";
import { parseCron } from "./cron.ts";
import { AppError } from "./errors.ts";
import {
  DESTINATION_NAME_PATTERN,
  PROJECT_START_TIME_PATTERN,
  projectNameProblem,
} from "./names.ts";

/** A source's name: it names the staged dataset (`data/outputs/{name}/`) and the routes. */
export const HTTP_SOURCE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** A staged file's name: the last segment of its URL, when it is this safe; other files are ignored. */
export const HTTP_FILE_NAME_PATTERN = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The content types a source accepts when its limits name none. */
export const DEFAULT_HTTP_CONTENT_TYPES = [
  "text/csv",
  "text/tab-separated-values",
  "text/plain",
  "application/json",
  "application/octet-stream",
  "application/vnd.apache.parquet",
] as const;

const Url = z.string().max(2048).refine((text) => {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && url.username === "" &&
      url.password === "";
  } catch {
    return false;
  }
}, { error: "must be an absolute http(s) URL without a user name or password" });

const Limits = z.strictObject({
  /** The largest file taken; a larger one is `ignored` (it is not fetched past this many bytes). */
  max_file_bytes: z.number().int().positive().default(1024 * 1024 * 1024),
  /** The most bytes one run takes; files past it wait for the next run. */
  max_total_bytes: z.number().int().positive().default(10 * 1024 * 1024 * 1024),
  /** How long one file (headers and body) may take. */
  timeout_ms: z.number().int().positive().max(3_600_000).default(300_000),
  /** Media types (no parameters) accepted; another is `ignored`. */
  content_types: z.array(z.string().regex(/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/)).min(1)
    .default([...DEFAULT_HTTP_CONTENT_TYPES]),
  /** How many files one run takes at most (the rest wait for the next run). */
  max_files: z.number().int().positive().max(10_000).default(1000),
});

const Pattern = z.string().max(512).refine((text) => {
  try {
    new RegExp(text);
    return true;
  } catch {
    return false;
  }
}, { error: "must be a regular expression" });

/** One HTTP-file source. */
const HttpFileSource = z.strictObject({
  name: z.string().regex(HTTP_SOURCE_NAME_PATTERN, {
    error: "must be 1-63 lower-case letters, digits, '_' or '-', starting with a letter or digit",
  }),
  /** The files, each by its URL. */
  urls: z.array(Url).min(1).max(10_000).optional(),
  /** Or an index page listing them: a JSON listing or an HTML page of links. */
  index: z.strictObject({
    url: Url,
    format: z.enum(["json", "html"]),
    /** A file is taken when its name (the URL's last segment) matches; every file when absent. */
    pattern: Pattern.optional(),
  }).optional(),
  /** The filestore destination (`TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`). */
  destination: z.string().regex(DESTINATION_NAME_PATTERN),
  /**
   * Also load the fetched CSV files into the PostgreSQL destination (`DESTINATION_POSTGRESQL_HOST`), as
   * the tables of the source's dataset (`domain/csv_tables.ts`), to be published there.
   */
  postgresql: z.boolean().default(false),
  /** The project the files are staged (and then published) under. */
  project_name: z.string().check((ctx) => {
    const problem = projectNameProblem(ctx.value);
    if (problem !== undefined) {
      ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
    }
  }),
  /** A 5-field cron schedule (UTC) the publish service runs the source on; none: on request only. */
  schedule: z.string().max(200).refine((text) => {
    try {
      parseCron(text);
      return true;
    } catch {
      return false;
    }
  }, { error: "must be a 5-field cron expression" }).optional(),
  /** How long a run of this source may take before it is failed (a stuck run). */
  run_timeout_ms: z.number().int().positive().default(6 * 3_600_000),
  limits: Limits.prefault({}),
}).refine((s) => (s.urls === undefined) !== (s.index === undefined), {
  error: 'give either "urls" or "index", not both',
});

/** The `HTTP_FILE_SOURCES_FILE` content. */
export const HttpFileSourcesFile = z.strictObject({
  sources: z.array(HttpFileSource),
}).refine((file) => new Set(file.sources.map((s) => s.name)).size === file.sources.length, {
  error: "source names must be unique",
});

/** One configured HTTP-file source. */
export type HttpFileSource = z.infer<typeof HttpFileSource>;

/**
 * Parses the sources file's text.
 *
 * @throws {SyntaxError} when it is not JSON.
 * @throws {z.ZodError} when it does not have the documented shape.
 */
export function parseHttpFileSources(text: string): readonly HttpFileSource[] {
  return HttpFileSourcesFile.parse(JSON.parse(text)).sources;
}

/** The states of a file in the registry. */
export const FILE_STATES = ["processed", "failed", "ignored"] as const;

/** What the registry keeps of one file of one source. */
export const fileRecordSchema = z.strictObject({
  source: z.string(),
  url: z.string(),
  state: z.enum(FILE_STATES),
  etag: z.string().nullable(),
  last_modified: z.string().nullable(),
  bytes: z.number().int().nonnegative().nullable(),
  sha512: z.string().regex(/^[0-9a-f]{128}$/).nullable(),
  /** Failed attempts since the file was last processed (0 once it is). */
  attempts: z.number().int().nonnegative(),
  /** When a failed file may be tried again (ISO instant); `null` unless failed. */
  next_attempt_at: z.string().nullable(),
  /** The run that last took (or tried) the file. */
  run_id: z.string(),
  /** Why it failed or was ignored: an error code. */
  reason: z.string().nullable(),
  updated_at: z.string(),
});

/** See {@link fileRecordSchema}. */
export type FileRecord = z.infer<typeof fileRecordSchema>;

/** The first retry of a failed file waits this long; each further failure doubles it. */
export const RETRY_BASE_MS = 60_000;

/** The longest wait between retries. */
export const RETRY_MAX_MS = 24 * 3_600_000;

/** When a file that failed `attempts` times (1 or more) at `at` may be tried again: exponential backoff. */
export function nextAttemptAt(attempts: number, at: Date): string {
  const wait = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1));
  return new Date(at.getTime() + wait).toISOString();
}

/** What a run does with one listed file. */
export type FileDecision =
  | {
    readonly kind: "fetch";
    /** Validators of the copy taken before: sent as `If-None-Match` / `If-Modified-Since`. */
    readonly etag: string | null;
    readonly lastModified: string | null;
  }
  | { readonly kind: "wait"; readonly until: string };

/**
 * What to do with a file, given what the registry holds of it: a new file is fetched; a processed or
 * ignored one is asked for again with its validators (a `304` means nothing to do); a failed one is
 * fetched once its backoff has passed.
 */
export function fileDecision(record: FileRecord | undefined, now: Date): FileDecision {
  if (record === undefined) return { kind: "fetch", etag: null, lastModified: null };
  if (record.state === "failed") {
    if (record.next_attempt_at !== null && Date.parse(record.next_attempt_at) > now.getTime()) {
      return { kind: "wait", until: record.next_attempt_at };
    }
    return { kind: "fetch", etag: null, lastModified: null };
  }
  return { kind: "fetch", etag: record.etag, lastModified: record.last_modified };
}

/** The name a file is staged under: its URL's last path segment, or `undefined` when it is not safe. */
export function httpFileName(url: string): string | undefined {
  let segment: string;
  try {
    segment = decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
  } catch {
    return undefined;
  }
  return HTTP_FILE_NAME_PATTERN.test(segment) ? segment : undefined;
}

/** The payload path of a source's file in staging. */
export function httpFilePayloadPath(source: string, fileName: string): string {
  return `data/outputs/${source}/${fileName}`;
}

/**
 * The file URLs an index lists, absolute (resolved against the index URL), in listing order, without
 * duplicates, keeping only those whose name matches `pattern`. A JSON listing is an array of URLs, or
 * of objects with a `url` or `href`; an HTML page lists `href` attributes of links.
 *
 * @throws {SyntaxError} when a JSON listing is not JSON, or not one of those shapes.
 */
export function parseIndex(
  text: string,
  format: "json" | "html",
  indexUrl: string,
  pattern: string | undefined,
): string[] {
  const links = format === "json" ? jsonLinks(text) : htmlLinks(text);
  const matcher = pattern === undefined ? undefined : new RegExp(pattern);
  const seen = new Set<string>();
  for (const link of links) {
    let url: URL;
    try {
      url = new URL(link, indexUrl);
    } catch {
      continue;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") continue;
    url.hash = "";
    const name = httpFileName(url.href);
    if (name === undefined || (matcher !== undefined && !matcher.test(name))) continue;
    seen.add(url.href);
  }
  return [...seen];
}

function jsonLinks(text: string): string[] {
  const value: unknown = JSON.parse(text);
  const items = Array.isArray(value) ? value : (value !== null && typeof value === "object" &&
      Array.isArray((value as { files?: unknown }).files))
    ? (value as { files: unknown[] }).files
    : undefined;
  if (items === undefined) {
    throw new SyntaxError('a JSON index must be an array, or an object with a "files" array');
  }
  return items.flatMap((item) => {
    if (typeof item === "string") return [item];
    if (item !== null && typeof item === "object") {
      const { url, href } = item as { url?: unknown; href?: unknown };
      if (typeof url === "string") return [url];
      if (typeof href === "string") return [href];
    }
    return [];
  });
}

const HTML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" };

function htmlLinks(text: string): string[] {
  const links: string[] = [];
  for (const match of text.matchAll(/<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/gi)) {
    const raw = match[1] ?? match[2] ?? match[3] ?? "";
    links.push(raw.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => HTML_ENTITIES[e]!));
  }
  return links;
}

/** The media type of a `Content-Type` header, lower case, without parameters. */
export function mediaTypeOf(contentType: string | null): string | undefined {
  if (contentType === null) return undefined;
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return type === "" ? undefined : type;
}

/**
 * The project start time a run of a source stages under: the run's time, `YYYYMMDD_HHMMSS` (UTC), so
 * each run is its own release.
 */
export function startTimeAt(at: Date): string {
  const text = at.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15);
  if (!PROJECT_START_TIME_PATTERN.test(text)) {
    throw new RangeError(`Cannot use ${at} as a start time`);
  }
  return text;
}

/** A request names an HTTP-file source this deployment does not configure (to be a 404). */
export class UnknownHttpSourceError extends AppError {
  readonly code = "unknown_http_source";

  constructor(readonly sourceName: string) {
    super(
      `Cannot find HTTP-file source ${
        JSON.stringify(sourceName)
      }: HTTP_FILE_SOURCES_FILE does not list it`,
    );
  }
}

/** A run of a source took longer than its `run_timeout_ms` (a stuck run), and was failed. */
export class HttpSourceRunTimedOutError extends AppError {
  readonly code = "http_source_run_timed_out";

  constructor(readonly sourceName: string, readonly timeoutMs: number) {
    super(
      `Run of HTTP-file source "${sourceName}" was failed: it took longer than ${timeoutMs} ms`,
    );
  }
}
