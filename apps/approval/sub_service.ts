/**
 * How the gateway calls the metadata and publish services: a JSON call whose reply is read up to a cap
 * ({@link callSubService}), and an event stream relayed as it arrives ({@link streamSubService}).
 *
 * @module
 */
import {
  SubServiceProtocolError,
  SubServiceReplyTooLargeError,
  SubServiceTimeoutError,
  SubServiceUnavailableError,
} from "../_shared/app_errors.ts";

/** The default of `SUBSERVICE_MAX_REPLY_BYTES`: 16 MiB, far above any reply the services give. */
export const DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024;

/**
 * How long a relayed event stream may stay silent before the gateway ends it: four of the publish
 * service's 15 s keep-alive comments.
 */
export const DEFAULT_STREAM_IDLE_MS = 60_000;

/** The reply headers the gateway passes on to its caller, when the sub-service sets them. */
export const RELAYED_REPLY_HEADERS = ["location", "preference-applied", "retry-after"] as const;

/** One sub-service the gateway forwards to. */
export interface SubService {
  /** `metadata` or `publish`, used in error messages. */
  readonly name: string;
  /** e.g. `http://metadata-container:8002/`. */
  readonly baseUrl: string;
  /** The sub-service's own key; never logged or returned. */
  readonly apiKey: string;
}

/** One call to a sub-service. */
export interface SubServiceRequest {
  readonly method: "GET" | "POST";
  /** Path and query string relative to the base URL, e.g. `runs?project=p` (no leading `/`). */
  readonly endpoint: string;
  /** A JSON body; sent with `content-type: application/json`. */
  readonly body?: string | undefined;
  /** Headers of the caller's request passed on as they are (`prefer`, `last-event-id`). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

/** A sub-service's answer: its HTTP status, its JSON body (an object) and the headers worth relaying. */
export interface SubServiceReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** Those of {@link RELAYED_REPLY_HEADERS} the sub-service set, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
}

/** A sub-service's 2xx event stream, relayed chunk by chunk. */
export interface SubServiceStream {
  readonly status: number;
  readonly contentType: string;
  /** Ends when the sub-service ends it; errors when it breaks or is silent too long. */
  readonly body: ReadableStream<Uint8Array>;
}

/** What calling a sub-service needs. */
export interface CallOptions {
  readonly fetch: typeof fetch;
  /** For a JSON call, the whole call; for a stream, until its headers arrive. */
  readonly timeoutMs: number;
  /** The largest JSON reply read; a larger one is refused without being held in memory. */
  readonly maxReplyBytes: number;
  /** Forwarded as `x-request-id`; always a safe id (`apps/_shared/request_ids.ts`). */
  readonly requestId: string;
}

/** What relaying a stream needs beyond a call. */
export interface StreamOptions extends CallOptions {
  /** The stream is ended (with an error) after this long without a byte from the sub-service. */
  readonly idleMs: number;
  /** The caller's request signal: when the caller goes away, the call to the sub-service is aborted. */
  readonly signal: AbortSignal;
}

/**
 * Calls a sub-service endpoint with its own key. A non-JSON error reply becomes an error envelope holding
 * its text, so the caller always gets an object.
 *
 * @throws {SubServiceUnavailableError} when the sub-service cannot be reached.
 * @throws {SubServiceTimeoutError} when it does not answer within `timeoutMs`.
 * @throws {SubServiceProtocolError} when a 2xx reply is not a JSON object.
 * @throws {SubServiceReplyTooLargeError} when the reply is larger than `maxReplyBytes`; it is read only up
 *   to that size.
 */
export async function callSubService(
  service: SubService,
  request: SubServiceRequest,
  options: CallOptions,
): Promise<SubServiceReply> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  return await readJsonReply(service, await send(service, request, options, signal), options);
}

/** A sub-service's 2xx reply of a known length, its body not read: relayed as it comes. */
export interface SubServiceBody {
  readonly status: number;
  /** Exactly `Content-Length` bytes, at most `maxReplyBytes`. */
  readonly body: ReadableStream<Uint8Array>;
  readonly length: number;
  /** Every header of the reply. */
  readonly headers: Headers;
}

/**
 * Calls a sub-service endpoint whose 2xx reply has a `Content-Length` of at most `maxReplyBytes`, and
 * returns the reply with its body unread, for the caller to hand on as it arrives (the data API relays
 * rows pages so; handed to `Deno.serve` as it is, the runtime copies it from one connection to the
 * other without passing it through JavaScript). The call's timeout bounds the body too: a body still
 * arriving then errors. A reply that is not 2xx is read as {@link callSubService} reads it and returned
 * as a {@link SubServiceReply}.
 *
 * @throws {SubServiceProtocolError} when a 2xx reply has no `Content-Length`.
 * @throws as {@link callSubService} does otherwise.
 */
export async function callSubServiceBody(
  service: SubService,
  request: SubServiceRequest,
  options: CallOptions,
): Promise<SubServiceBody | SubServiceReply> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const response = await send(service, request, options, signal);
  if (!response.ok) return await readJsonReply(service, response, options);
  const declared = response.headers.get("content-length");
  const length = declared === null ? NaN : Number(declared);
  if (!Number.isSafeInteger(length) || length < 0) {
    await response.body?.cancel();
    throw new SubServiceProtocolError(service.name);
  }
  if (length > options.maxReplyBytes) {
    await response.body?.cancel();
    throw new SubServiceReplyTooLargeError(service.name, options.maxReplyBytes);
  }
  const body = response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  return { status: response.status, body, length, headers: response.headers };
}

/**
 * Calls a sub-service endpoint that answers with an event stream, and hands its body on without buffering:
 * each chunk is read from the sub-service only when the caller's side asks for one. Cancelling the returned
 * body (the caller disconnected) or the caller's `signal` closes the call to the sub-service. A reply that
 * is not 2xx is read as {@link callSubService} reads it and returned as a {@link SubServiceReply}.
 *
 * @throws as {@link callSubService} does, until the sub-service's headers arrive.
 */
export async function streamSubService(
  service: SubService,
  request: SubServiceRequest,
  options: StreamOptions,
): Promise<SubServiceStream | SubServiceReply> {
  const call = new AbortController();
  const headersTimeout = setTimeout(
    () => call.abort(new DOMException("No reply headers in time", "TimeoutError")),
    options.timeoutMs,
  );
  const signal = AbortSignal.any([call.signal, options.signal]);
  let response: Response;
  try {
    response = await send(service, request, options, signal);
  } finally {
    clearTimeout(headersTimeout);
  }
  if (!response.ok || response.body === null) {
    return await readJsonReply(service, response, options);
  }
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "text/event-stream",
    body: idleBounded(response.body, service, options.idleMs, () => call.abort()),
  };
}

/** Sends one request with the sub-service's key and the request id, mapping transport failures. */
async function send(
  service: SubService,
  request: SubServiceRequest,
  options: CallOptions,
  signal: AbortSignal,
): Promise<Response> {
  const headers: Record<string, string> = {
    ...request.headers,
    "x-api-key": service.apiKey,
    "x-request-id": options.requestId,
  };
  if (request.body !== undefined) headers["content-type"] = "application/json";
  try {
    return await options.fetch(new URL(request.endpoint, service.baseUrl), {
      method: request.method,
      headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      signal,
    });
  } catch (e) {
    throw transportError(service, options, e);
  }
}

function transportError(service: SubService, options: CallOptions, e: unknown): Error {
  if (e instanceof SubServiceReplyTooLargeError) return e;
  if (e instanceof DOMException && e.name === "TimeoutError") {
    return new SubServiceTimeoutError(service.name, options.timeoutMs, { cause: e });
  }
  return new SubServiceUnavailableError(service.name, service.baseUrl, { cause: e });
}

/** Reads a reply as a JSON object, within the size cap. */
async function readJsonReply(
  service: SubService,
  response: Response,
  options: CallOptions,
): Promise<SubServiceReply> {
  let text: string;
  try {
    text = await readReply(response, service.name, options.maxReplyBytes);
  } catch (e) {
    throw transportError(service, options, e);
  }
  const headers = relayedHeadersOf(response);
  const parsed = parseObject(text);
  if (parsed !== undefined) return { status: response.status, body: parsed, headers };
  if (response.ok) throw new SubServiceProtocolError(service.name);
  return {
    status: response.status,
    headers,
    body: {
      status: "error",
      payload: {
        detail: text.slice(0, 2000),
        code: "sub_service_error",
        request_id: options.requestId,
      },
    },
  };
}

function relayedHeadersOf(response: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of RELAYED_REPLY_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return headers;
}

/**
 * A stream that pulls from `upstream` one chunk at a time, only when read (no read-ahead), and errors with
 * {@link SubServiceTimeoutError} when `upstream` sends nothing for `idleMs`. Cancelling it, or the idle
 * bound, cancels `upstream` and calls `abort`.
 */
function idleBounded(
  upstream: ReadableStream<Uint8Array>,
  service: SubService,
  idleMs: number,
  abort: () => void,
): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  function stop(reason: unknown): void {
    abort();
    reader.cancel(reason).catch(() => {});
  }
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const silent = new Promise<"silent">((resolve) => {
        timer = setTimeout(() => resolve("silent"), idleMs);
      });
      try {
        const read = await Promise.race([reader.read(), silent]);
        if (read === "silent") {
          const error = new SubServiceTimeoutError(service.name, idleMs);
          stop(error);
          controller.error(error);
        } else if (read.done) {
          controller.close();
        } else {
          controller.enqueue(read.value);
        }
      } catch (e) {
        stop(e);
        controller.error(e);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      stop(reason);
    },
  }, { highWaterMark: 0 });
}

/** Reads a reply's body as text, counting bytes as they arrive and stopping past `maxBytes`. */
async function readReply(response: Response, service: string, maxBytes: number): Promise<string> {
  if (Number(response.headers.get("content-length") ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw new SubServiceReplyTooLargeError(service, maxBytes);
  }
  if (response.body === null) return "";
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  for await (const chunk of response.body) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) throw new SubServiceReplyTooLargeError(service, maxBytes);
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}
