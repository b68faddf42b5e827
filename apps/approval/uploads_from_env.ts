/**
 * The upload settings of the dashboard (`docs/uploads.md`): off unless `UPLOAD_QUARANTINE_PATH` is set.
 *
 * @module
 */
import { z } from "zod";
import { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";
import { type ApprovalPolicy, POSTGRESQL_DESTINATION } from "../../domain/approval_policy.ts";
import {
  DEFAULT_UPLOAD_LIMITS,
  parseUploadTypes,
  UploadRefusedError,
} from "../../domain/upload_files.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { parseEnv } from "../_shared/config.ts";
import type { Logger } from "../_shared/log.ts";
import type { UploadDeps } from "./ui/uploads.tsx";

const bytes = (fallback: number) => z.coerce.number<unknown>().int().min(0).default(fallback);

/** The upload variables. */
export const UploadEnv = z.object({
  /** The quarantine folder (owner-only); uploads are off when unset. */
  UPLOAD_QUARANTINE_PATH: z.string().min(1).optional(),
  UPLOAD_MAX_FILE_BYTES: bytes(DEFAULT_UPLOAD_LIMITS.maxFileBytes),
  UPLOAD_MAX_TOTAL_BYTES: bytes(DEFAULT_UPLOAD_LIMITS.maxTotalBytes),
  UPLOAD_MAX_FILES: z.coerce.number<unknown>().int().min(1).default(DEFAULT_UPLOAD_LIMITS.maxFiles),
  /** Comma-separated extensions among csv, tsv, txt, parquet. */
  UPLOAD_ALLOWED_TYPES: z.string().default(DEFAULT_UPLOAD_LIMITS.types.join(",")),
});

/**
 * The dashboard's uploads, or `undefined` when `UPLOAD_QUARANTINE_PATH` is unset. A data source may be
 * published into any filestore destination of the approval policy.
 *
 * @throws {ConfigError} when a variable is invalid or the quarantine folder cannot be made.
 */
export async function uploadsFromEnv(
  env: Record<string, string | undefined>,
  policy: ApprovalPolicy,
  log: Logger,
): Promise<Omit<UploadDeps, "mayReview" | "release"> | undefined> {
  const config = parseEnv(UploadEnv, env);
  if (config.UPLOAD_QUARANTINE_PATH === undefined) return undefined;
  let types;
  try {
    types = parseUploadTypes(config.UPLOAD_ALLOWED_TYPES);
  } catch (error) {
    if (error instanceof UploadRefusedError) {
      throw new ConfigError(`Cannot start: UPLOAD_ALLOWED_TYPES: ${error.message}`);
    }
    throw error;
  }
  let quarantine;
  try {
    quarantine = await UploadQuarantine.open(config.UPLOAD_QUARANTINE_PATH);
  } catch (error) {
    throw new ConfigError(
      `Cannot start: UPLOAD_QUARANTINE_PATH cannot be made owner-only: ${(error as Error).message}`,
    );
  }
  log.info("uploads", { detail: "uploads are on" });
  return {
    quarantine,
    limits: {
      maxFileBytes: config.UPLOAD_MAX_FILE_BYTES,
      maxTotalBytes: config.UPLOAD_MAX_TOTAL_BYTES,
      maxFiles: config.UPLOAD_MAX_FILES,
      types,
    },
    destinations: uploadDestinations(policy),
  };
}

/**
 * The destinations an uploaded data source may be published into: the approval policy's filestores
 * (the dashboard's and the operator's rule).
 */
export function uploadDestinations(policy: ApprovalPolicy): string[] {
  return policy.destinations.filter((d) => d !== POSTGRESQL_DESTINATION);
}
