/**
 * Who runs the HTTP-file sources' cron schedules (`docs/http-sources.md`, "Schedules"): exactly one of
 * the publish service (its in-process timer) and the Kubernetes operator (its leader), decided here from
 * configuration, the one rule both read:
 *
 * - `HTTP_SOURCE_SCHEDULER=publish` or `operator` decides;
 * - unset, the operator schedules when runs execute as Kubernetes Jobs (`RUN_EXECUTOR=kubernetes`),
 *   else the publish service does.
 *
 * The publish service and the operator must see the same values (both manifests set them).
 *
 * @module
 */
import { z } from "zod";
import { parseEnv } from "./config.ts";

/** The variables of the rule. */
export const HttpSourceSchedulerEnv = z.object({
  /** Who runs the schedules: `publish` or `operator`; default from `RUN_EXECUTOR`. */
  HTTP_SOURCE_SCHEDULER: z.enum(["publish", "operator"]).optional(),
  RUN_EXECUTOR: z.enum(["in-process", "kubernetes"]).default("in-process"),
});

/** Who schedules. */
export type HttpSourceScheduler = "publish" | "operator";

/**
 * Who runs the schedules under this environment.
 *
 * @throws {ConfigError} when a variable has a value the rule does not know.
 */
export function httpSourceSchedulerOf(
  env: Record<string, string | undefined>,
): HttpSourceScheduler {
  const config = parseEnv(HttpSourceSchedulerEnv, env);
  return config.HTTP_SOURCE_SCHEDULER ??
    (config.RUN_EXECUTOR === "kubernetes" ? "operator" : "publish");
}
