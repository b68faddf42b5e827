/**
 * Loads the approval policy (`APPROVAL_POLICY_FILE`, `docs/approvals.md`) at startup. A bad file stops the
 * service with a message naming the field; no file means no gates, and the log says so.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { type ApprovalPolicy, parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { ConfigError } from "./app_errors.ts";
import type { Logger } from "./log.ts";

/**
 * Reads, parses and checks the approval policy at `path` (the value of `APPROVAL_POLICY_FILE`). Without
 * a path (unset or empty) there is no policy: it returns `null` and logs `no_approval_policy` ("no
 * approval policy: no gates"), and package and publish go through as without approvals.
 *
 * @throws {ConfigError} when the file cannot be read, is not JSON, or is not a valid policy; the message
 *   names the file and each field at fault (`gates[1].require.X: not a declared approval type`).
 */
export function readApprovalPolicy(path: string | undefined, log: Logger): ApprovalPolicy | null {
  if (path === undefined || path === "") {
    log.info("no_approval_policy", {
      detail: "no approval policy: no gates",
      hint: "set APPROVAL_POLICY_FILE to require approvals before package and publish",
    });
    return null;
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(
      `Cannot read APPROVAL_POLICY_FILE ${path}: ${(e as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `Cannot read APPROVAL_POLICY_FILE ${path}: not JSON: ${(e as Error).message}`,
    );
  }
  let policy: ApprovalPolicy;
  try {
    policy = parseApprovalPolicy(json);
  } catch (e) {
    throw new ConfigError(`Cannot read APPROVAL_POLICY_FILE ${path}: ${(e as Error).message}`);
  }
  log.info("approval_policy", {
    file: path,
    gates: policy.gates.map((gate) => `${gate.name} before ${gate.before}`),
    destinations: policy.destinations,
    separation_of_duties: policy.separation_of_duties,
    approval_max_age_days: policy.approval_max_age_days,
    release_expiry_days: policy.release_expiry_days ?? null,
    revocation_roles: policy.revocation_roles,
  });
  return policy;
}
