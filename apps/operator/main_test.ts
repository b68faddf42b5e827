import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../_shared/app_errors.ts";
import { buildOperator } from "./main.ts";

Deno.test("buildOperator() refuses settings that do not fit together before opening anything", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const policy = join(dir, "policy.json");
    await Deno.writeTextFile(policy, "{ not json");
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /RUN_STORE=postgresql/],
      [
        { RUN_STORE: "postgresql", UPLOAD_QUARANTINE_PATH: join(dir, "q") },
        /UPLOAD_QUARANTINE_PATH is set but APPROVAL_POLICY_FILE is not/,
      ],
      [
        {
          RUN_STORE: "postgresql",
          UPLOAD_QUARANTINE_PATH: join(dir, "q"),
          APPROVAL_POLICY_FILE: policy,
        },
        /APPROVAL_POLICY_FILE/,
      ],
      [{ RUN_STORE: "postgresql", HTTP_SOURCE_SCHEDULER: "both" }, /HTTP_SOURCE_SCHEDULER/],
    ];
    for (const [env, message] of cases) {
      await assert.rejects(
        buildOperator(env, () => {}),
        (e) => e instanceof ConfigError && message.test(e.message),
        JSON.stringify(env),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
