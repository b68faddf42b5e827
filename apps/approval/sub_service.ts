/**
 * How the gateway calls the metadata and publish services.
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

/** One sub-service the gateway forwards to. */
export interface SubService {
  /** `metadata` or `publish`, used in error messages. */
  readonly name: string;
  /** e.g. `http://metadata-container:8002/`. */
  readonly baseUrl: string;
  /** The sub-service's own key; never logged or returned. */
  readonly apiKey: string;
}

/** A sub-service's answer: its HTTP status and its JSON body (an object). */
export interface SubServiceReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** What calling a sub-service needs. */
export interface CallOptions {
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  /** The largest reply read; a larger one is refused without being held in memory. */
  readonly maxReplyBytes: number;
  /** Forwarded as `x-request-id`; always a safe id (`apps/_shared/request_ids.ts`). */
  readonly requestId: string;
}

/**
 * POSTs a JSON body to a sub-service endpoint. A non-JSON error reply becomes an error envelope holding its
 * text, so the caller always gets an object.
 *
 * @throws {SubServiceUnavailableError} when the sub-service cannot be reached.
 * @throws {SubServiceTimeoutError} when it does not answer within `timeoutMs`.
 * @throws {SubServiceProtocolError} when a 2xx reply is not a JSON object.
 * @throws {SubServiceReplyTooLargeError} when the reply is larger than `maxReplyBytes`; it is read only up
 *   to that size.
 */
export async function callSubService(
  service: SubService,
  endpoint: string,
  body: string,
  options: CallOptions,
): Promise<SubServiceReply> {
  const url = new URL(endpoint, service.baseUrl);
  let response: Response;
  let text: string;
  try {
    response = await options.fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": service.apiKey,
        "x-request-id": options.requestId,
      },
      body,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    text = await readReply(response, service.name, options.maxReplyBytes);
  } catch (e) {
    if (e instanceof SubServiceReplyTooLargeError) throw e;
    if (e instanceof DOMException && e.name === "TimeoutError") {
      throw new SubServiceTimeoutError(service.name, options.timeoutMs, { cause: e });
    }
    throw new SubServiceUnavailableError(service.name, service.baseUrl, { cause: e });
  }
  const parsed = parseObject(text);
  if (parsed !== undefined) return { status: response.status, body: parsed };
  if (response.ok) throw new SubServiceProtocolError(service.name);
  return {
    status: response.status,
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
