/**
 * How the gateway calls the metadata and publish services.
 *
 * @module
 */
import {
  SubServiceProtocolError,
  SubServiceTimeoutError,
  SubServiceUnavailableError,
} from "../_shared/app_errors.ts";

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
  readonly requestId: string;
}

/**
 * POSTs a JSON body to a sub-service endpoint. A non-JSON error reply becomes an error envelope holding its
 * text, so the caller always gets an object.
 *
 * @throws {SubServiceUnavailableError} when the sub-service cannot be reached.
 * @throws {SubServiceTimeoutError} when it does not answer within `timeoutMs`.
 * @throws {SubServiceProtocolError} when a 2xx reply is not a JSON object.
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
    text = await response.text();
  } catch (e) {
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
