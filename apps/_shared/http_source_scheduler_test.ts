import assert from "node:assert/strict";
import { ConfigError } from "./app_errors.ts";
import { httpSourceSchedulerOf } from "./http_source_scheduler.ts";

Deno.test("httpSourceSchedulerOf() picks exactly one scheduler: the operator with Jobs, else the publish service", () => {
  const cases: [Record<string, string>, string][] = [
    [{}, "publish"],
    [{ RUN_EXECUTOR: "in-process" }, "publish"],
    [{ RUN_EXECUTOR: "kubernetes" }, "operator"],
    [{ RUN_EXECUTOR: "kubernetes", HTTP_SOURCE_SCHEDULER: "publish" }, "publish"],
    [{ HTTP_SOURCE_SCHEDULER: "operator" }, "operator"],
  ];
  for (const [env, expected] of cases) {
    assert.equal(httpSourceSchedulerOf(env), expected, JSON.stringify(env));
  }
});

Deno.test("httpSourceSchedulerOf() stops startup on an unknown value", () => {
  for (const env of [{ HTTP_SOURCE_SCHEDULER: "both" }, { RUN_EXECUTOR: "nomad" }]) {
    assert.throws(
      () => httpSourceSchedulerOf(env),
      (e) => e instanceof ConfigError && /HTTP_SOURCE_SCHEDULER|RUN_EXECUTOR/.test(e.message),
    );
  }
});
