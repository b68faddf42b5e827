/**
 * The port HTTP-file sources fetch through (`application/fetch_http_files.ts`): one GET at a time, no
 * redirect followed (the use case checks each hop against the allow-list), connected only to an address
 * the adapter checked itself, so a name resolving to an internal address is refused unless allowed.
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";

/** What one GET is given. */
export interface HttpFileRequest {
  /** Absolute http(s) URL, already allowed by the allow-list. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Aborts the request and its body (the per-file timeout, the run's cancel). */
  readonly signal: AbortSignal;
  /** Whether the host may resolve to a loopback, private or link-local address. */
  readonly allowPrivate: boolean;
}

/** A SHA-512 (lower-case hex) and size of a saved body. */
export interface SavedBody {
  readonly sha512: string;
  readonly bytes: number;
}

/** A response whose body has not been read yet: read it once (text, save) or discard it. */
export interface HttpFileResponse {
  readonly status: number;
  /** A header's value, or `null`. */
  header(name: string): string | null;
  /**
   * The body as UTF-8 text (an index page).
   *
   * @throws {HttpFileTooLargeError} past `maxBytes`.
   */
  text(maxBytes: number): Promise<string>;
  /**
   * Writes the body into a new file at `path` (its folder created), hashing it as it arrives.
   *
   * @param onBytes called with the bytes written so far, as they arrive.
   * @throws {HttpFileTooLargeError} past `maxBytes` (stops reading there).
   * @throws {HttpFileTruncatedError} when the body ends before its `Content-Length`.
   */
  save(path: string, maxBytes: number, onBytes: (bytes: number) => void): Promise<SavedBody>;
  /** Drops the body unread. */
  discard(): void;
}

/** Fetches HTTP files. */
export interface HttpFileClient {
  /**
   * Sends one GET (no redirect followed).
   *
   * @throws {HttpAddressNotAllowedError} when the host resolves to a non-public address and
   *   `allowPrivate` is false; nothing was sent.
   * @throws {HttpFileUnreachableError} when the server cannot be reached or stops answering.
   */
  get(request: HttpFileRequest): Promise<HttpFileResponse>;
}

/** The host resolves to a loopback, private or link-local address its allow-list entry does not allow. */
export class HttpAddressNotAllowedError extends AppError {
  readonly code = "http_address_not_allowed";

  constructor(readonly host: string) {
    super(
      `Cannot fetch from ${host}: it resolves to a non-public address, which its allowed HTTP ` +
        'source does not allow ("private": true)',
    );
  }
}

/** A body larger than the limit. */
export class HttpFileTooLargeError extends AppError {
  readonly code = "http_file_too_large";

  constructor(readonly maxBytes: number) {
    super(`Cannot take the file: it is larger than ${maxBytes} bytes`);
  }
}

/** A body that ended before its announced length. */
export class HttpFileTruncatedError extends AppError {
  readonly code = "http_file_truncated";

  constructor(readonly expected: number, readonly received: number) {
    super(`Cannot take the file: it ended after ${received} of its ${expected} bytes`);
  }
}

/** The server could not be reached, or stopped answering (a timeout). */
export class HttpFileUnreachableError extends AppError {
  readonly code = "http_file_unreachable";
}
