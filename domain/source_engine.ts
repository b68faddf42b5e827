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

/** The engine of a source type: `sqlserver` is another name for `mssql`. */
export type EngineOf<T extends Source["type"]> = T extends "sqlserver" ? "mssql" : T;

/** Returns the engine a source uses; `sqlserver` is another name for `mssql`. */
export function sourceEngine<T extends Source["type"]>(source: { readonly type: T }): EngineOf<T> {
  return (source.type === "sqlserver" ? "mssql" : source.type) as EngineOf<T>;
}
