/**
 * Reading a request body, the one place that does: after the key check, for `POST` only, at most
 * `maxBytes`, within a total and an idle deadline, and by at most `maxConcurrent` requests at once. The body
 * is read into memory once; everything after (the depth limit, the route's validator, the audit trail)
 * reads that copy.
 *
 * - A declared `Content-Length` over the limit is refused with 413 before a byte is read; a body that
 *   grows past it (chunked) is refused with 413 as soon as it does.
 * - A body that is not complete within `timeoutMs`, or that sends nothing for `idleTimeoutMs`, is refused
 *   with 408 `request_timeout`, and the reply says `Connection: close`, so the server drops the connection
 *   (`apps/_shared/serve.ts`) instead of reading the rest.
 * - When `maxConcurrent` bodies are already being read, the request is refused at once with 503
 *   `too_many_uploads` and `Retry-After`, and nothing of it is read. Waiting in a queue would hold the
 *   connection and its buffers, which is what the cap is there to bound; the CLI sends one small body at a
 *   time, so a well-behaved caller never meets it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Context, MiddlewareHandler } from "hono";

/** The limits on reading request bodies (`MAX_BODY_BYTES`, `BODY_TIMEOUT_SECONDS`, ...). */
export interface RequestBodyLimits {
  /** Larger bodies get 413. */
  readonly maxBytes: number;
  /** The whole body must arrive within this time, or the request gets 408. */
  readonly timeoutMs: number;
  /** A body that sends nothing for this long gets 408. */
  readonly idleTimeoutMs: number;
  /** At most this many bodies are read at once; more get 503. */
  readonly maxConcurrent: number;
}

/** The defaults of `BODY_TIMEOUT_SECONDS`, `BODY_IDLE_TIMEOUT_SECONDS` and `MAX_CONCURRENT_BODIES`. */
export const DEFAULT_BODY_READING = {
  timeoutMs: 30_000,
  idleTimeoutMs: 10_000,
  maxConcurrent: 16,
} as const;

/**
 * Why a body was not read: larger than the limit, not complete in time, silent for too long, too many
 * bodies being read already, or the connection broke while it was read.
 */
export type BodyRefusal = "too_large" | "timeout" | "idle" | "busy" | "incomplete";

/** What {@link requestBodyReader} needs. */
export interface RequestBodyReaderOptions {
  readonly limits: RequestBodyLimits;
  /** Builds the refusal reply. */
  readonly onRefused: (c: Context, refusal: BodyRefusal) => Response;
}

const BUFFERED_KEY = "bufferedBody";

/** The body {@link requestBodyReader} read, or `undefined` when it read none (not a POST, or refused). */
export function bufferedBodyOf(c: Context): Uint8Array | undefined {
  return c.get(BUFFERED_KEY as never) as Uint8Array | undefined;
}

/**
 * Reads the body of every `POST` before the route sees it, within the limits, and puts the bytes back as the
 * request's body. Requests of other methods pass through with their body unread.
 */
export function requestBodyReader(options: RequestBodyReaderOptions): MiddlewareHandler {
  const { limits, onRefused } = options;
  let reading = 0;

  return async function requestBodyReader(c, next) {
    const body = c.req.raw.body;
    if (c.req.method !== "POST" || body === null) return await next();
    const declared = Number(c.req.header("content-length") ?? Number.NaN);
    if (declared > limits.maxBytes) return onRefused(c, "too_large");
    if (reading >= limits.maxConcurrent) return onRefused(c, "busy");
    reading++;
    let read: Uint8Array<ArrayBuffer> | BodyRefusal;
    try {
      read = await readWithin(body, limits);
    } finally {
      reading--;
    }
    if (typeof read === "string") return onRefused(c, read);
    c.set(BUFFERED_KEY as never, read as never);
    c.req.raw = new Request(c.req.raw.url, {
      method: c.req.raw.method,
      headers: c.req.raw.headers,
      body: read,
      signal: c.req.raw.signal,
    });
    return await next();
  };
}

/**
 * Reads a stream to its end, at most `maxBytes`, within `timeoutMs` in all and `idleTimeoutMs` between
 * chunks. On any refusal the stream is cancelled, so nothing more is pulled from the connection.
 */
async function readWithin(
  body: ReadableStream<Uint8Array>,
  limits: RequestBodyLimits,
): Promise<Uint8Array<ArrayBuffer> | BodyRefusal> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let complete = false;
  const deadline = Date.now() + limits.timeoutMs;
  try {
    while (true) {
      const left = deadline - Date.now();
      if (left <= 0) return "timeout";
      let next: ReadableStreamReadResult<Uint8Array> | undefined;
      try {
        next = await withTimeout(reader.read(), Math.min(left, limits.idleTimeoutMs));
      } catch {
        return "incomplete";
      }
      if (next === undefined) return Date.now() >= deadline ? "timeout" : "idle";
      if (next.done) break;
      total += next.value.byteLength;
      if (total > limits.maxBytes) return "too_large";
      chunks.push(next.value);
    }
    complete = true;
  } finally {
    if (complete) reader.releaseLock();
    else reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks, total);
}

/** Settles like `promise`, or with `undefined` after `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
