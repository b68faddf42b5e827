/**
 * The CR8TOR envelope: every reply of every service is `{"status": ..., "payload": {...}}`. Errors carry
 * `payload.detail` (the sentence the CLI prints) plus our own `code`, `request_id` and, for validation
 * failures, `issues`; an `approval_required` refusal also names `release_id`, `gate` and `missing`.
 *
 * @module
 */
import { z } from "@hono/zod-openapi";

/** One offending field of a rejected request. */
export const Issue = z.object({
  path: z.string().openapi({ example: "source.port" }),
  message: z.string(),
}).openapi("Issue");

/** The error envelope, shared by every service and status. */
export const ErrorEnvelope = z.object({
  status: z.literal("error"),
  payload: z.object({
    detail: z.string(),
    code: z.string(),
    request_id: z.string(),
    issues: z.array(Issue).optional(),
    release_id: z.string().optional().openapi({
      description:
        "`approval_required`, `release_rejected`, `release_revoked`: the release the request names",
    }),
    gate: z.string().optional().openapi({ description: "`approval_required`: the gate not met" }),
    missing: z.record(z.string(), z.number().int()).optional().openapi({
      description:
        "`approval_required`: approval type → how many more distinct people must approve",
    }),
  }),
}).openapi("ErrorEnvelope");

export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;
export type Issue = z.infer<typeof Issue>;

/** Wraps a payload schema in the success envelope. */
export function successEnvelope<T extends z.ZodType>(payload: T) {
  return z.object({ status: z.literal("success"), payload });
}

/** Builds a success body. */
export function success<T>(payload: T): { status: "success"; payload: T } {
  return { status: "success", payload };
}

/**
 * A domain schema named as an OpenAPI component, with its example when given (`examples.ts`). Works
 * whatever the import order: a zod schema made before `@hono/zod-openapi` was first imported has no
 * `.openapi()`, but a clone made now has.
 */
export function openApiComponent<T extends z.ZodType>(
  schema: T,
  name: string,
  example?: z.input<T>,
): T {
  return schema.clone().openapi(name, example === undefined ? {} : { example }) as T;
}
