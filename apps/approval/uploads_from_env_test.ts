import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { DEMO_APPROVAL_POLICY } from "../../tools/demo_identity_provider.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { createLogger } from "../_shared/log.ts";
import { uploadsFromEnv } from "./uploads_from_env.ts";

const policy = parseApprovalPolicy({
  ...DEMO_APPROVAL_POLICY,
  destinations: ["LSC", "postgresql"],
});
const log = createLogger("approval", () => {});

Deno.test("uploads are off without UPLOAD_QUARANTINE_PATH", async () => {
  assert.equal(await uploadsFromEnv({}, policy, log), undefined);
});

Deno.test("the upload variables set the limits, types and an owner-only quarantine", async () => {
  const root = await Deno.makeTempDir();
  try {
    const uploads = await uploadsFromEnv(
      {
        UPLOAD_QUARANTINE_PATH: join(root, "quarantine"),
        UPLOAD_MAX_FILE_BYTES: "100",
        UPLOAD_MAX_TOTAL_BYTES: "1000",
        UPLOAD_MAX_FILES: "4",
        UPLOAD_ALLOWED_TYPES: "CSV, tsv",
      },
      policy,
      log,
    );
    assert.deepEqual(uploads?.limits, {
      maxFileBytes: 100,
      maxTotalBytes: 1000,
      maxFiles: 4,
      types: ["csv", "tsv"],
    });
    assert.deepEqual(uploads?.destinations, ["LSC"], "filestore destinations only");
    assert.equal((await stat(join(root, "quarantine"))).mode & 0o777, 0o700);
    await assert.rejects(
      uploadsFromEnv(
        { UPLOAD_QUARANTINE_PATH: root, UPLOAD_ALLOWED_TYPES: "csv,exe" },
        policy,
        log,
      ),
      (e: unknown) => e instanceof ConfigError && /UPLOAD_ALLOWED_TYPES/.test(e.message),
    );
    await assert.rejects(
      uploadsFromEnv({ UPLOAD_QUARANTINE_PATH: root, UPLOAD_MAX_FILES: "0" }, policy, log),
      ConfigError,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
