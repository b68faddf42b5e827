/**
 * Which database engine a request's source is. Kept apart from `contract.ts` so that modules loaded
 * before `@hono/zod-openapi` (configuration, the allow-list) can use it without creating the contract's
 * schemas too early: a zod schema made before that import has no `.openapi()`.
 *
 * @module
 */
import type { Source } from "./contract.ts";

/** The source engines, with `sqlserver` folded into `mssql`. */
export type SourceEngine = "postgresql" | "mysql" | "mssql" | "databrickssql";

/** Returns the engine a source uses; `sqlserver` is another name for `mssql`. */
export function sourceEngine(source: Pick<Source, "type">): SourceEngine {
  return source.type === "sqlserver" ? "mssql" : source.type;
}
