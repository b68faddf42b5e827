/**
 * The two ids every request carries. The **request id** is shared by every service an operation passes
 * through (the gateway forwards it as `x-request-id`): the caller's `x-request-id` when it is safe
 * ({@link SAFE_REQUEST_ID}: 1 to 128 letters, digits, `.`, `_`, `:`, `-`), else a UUID this service
 * generates. A caller can repeat it, so nothing relies on it being unique. The **service request id** is a
 * UUID this service generates for the request alone; every log line and audit record carries both.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { SAFE_REQUEST_ID } from "../../domain/audit.ts";

export { SAFE_REQUEST_ID };

/** The context key of the request id; `hono/request-id` uses the same, so `c.get("requestId")` works. */
const REQUEST_ID_KEY = "requestId";
const SERVICE_REQUEST_ID_KEY = "serviceRequestId";

/** The caller's request id when it is safe to keep, else `undefined`. */
export function safeRequestId(value: string | undefined): string | undefined {
  return value !== undefined && SAFE_REQUEST_ID.test(value) ? value : undefined;
}

/**
 * Sets both ids on the context and the request id on the reply's `x-request-id`. It reads no other part of
 * the request.
 */
export function requestIds(): MiddlewareHandler {
  return async function requestIds(c, next) {
    const serviceRequestId = crypto.randomUUID();
    const requestId = safeRequestId(c.req.header("x-request-id")) ?? serviceRequestId;
    c.set(REQUEST_ID_KEY as never, requestId as never);
    c.set(SERVICE_REQUEST_ID_KEY as never, serviceRequestId as never);
    c.header("x-request-id", requestId);
    await next();
  };
}

/** The request id {@link requestIds} set, or `unknown` outside the stack. */
export function requestIdOf(c: Context): string {
  return (c.get(REQUEST_ID_KEY as never) as string | undefined) ?? "unknown";
}

/** The id this service generated for the request, or `unknown` outside the stack. */
export function serviceRequestIdOf(c: Context): string {
  return (c.get(SERVICE_REQUEST_ID_KEY as never) as string | undefined) ?? "unknown";
}

/** Both ids, as every log line about a request carries them. */
export function requestLogFields(c: Context): { request_id: string; service_request_id: string } {
  return { request_id: requestIdOf(c), service_request_id: serviceRequestIdOf(c) };
}
