/**
 * The approval policy (`APPROVAL_POLICY_FILE`, `docs/approvals.md`): the named approval types and the roles
 * that may give each, the gates that guard `package` and `publish` and how many approvals of each type they
 * need, separation of duties, how long an approval stays valid, and which destinations the policy covers.
 * Parsed strictly: an unknown key, an undeclared type or a repeated gate name is refused with the path of
 * the field at fault.
 *
 * @module
 */
import { z } from "zod";
import { AppError } from "./errors.ts";

/** The steps a gate can guard. */
export const GATED_STEPS = ["package", "publish"] as const;

/** A step a gate can guard. */
export type GatedStep = typeof GATED_STEPS[number];

/** The destination entry that covers PostgreSQL destinations (filestore destinations are named). */
export const POSTGRESQL_DESTINATION = "postgresql";

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const nameError = "must be 1-64 letters, digits, '_' or '-', starting with a letter";

const approvalTypeSchema = z.object({
  /** The roles (from the person's token) any one of which entitles a person to give this approval. */
  roles: z.array(z.string().min(1)).min(1),
}).strict();

const gateSchema = z.object({
  name: z.string().regex(NAME, { error: nameError }),
  before: z.enum(GATED_STEPS),
  /** Approval type → how many distinct people must give it (at least 1). */
  require: z.record(z.string(), z.number().int().min(1)).refine((r) => Object.keys(r).length > 0, {
    error: "must require at least one approval type",
  }),
}).strict();

/** The policy file's schema; see {@link parseApprovalPolicy} for the rules across fields. */
export const approvalPolicySchema = z.object({
  approval_types: z.record(z.string().regex(NAME, { error: nameError }), approvalTypeSchema),
  gates: z.array(gateSchema),
  separation_of_duties: z.boolean().default(true),
  approval_max_age_days: z.number().positive().default(30),
  /** How long a published release lasts before the gateway revokes it; absent: no default expiry. */
  release_expiry_days: z.number().positive().optional(),
  /** The roles whose people may revoke a release (`POST /releases/{id}/revoke`); none by default. */
  revocation_roles: z.array(z.string().min(1)).default([]),
  /** Filestore destination names and/or `"postgresql"`: the destinations the gates apply to. */
  destinations: z.array(z.string().min(1)).min(1),
}).strict().superRefine((policy, ctx) => {
  const seen = new Set<string>();
  policy.gates.forEach((gate, i) => {
    if (seen.has(gate.name)) {
      ctx.addIssue({
        code: "custom",
        path: ["gates", i, "name"],
        message: `gate ${JSON.stringify(gate.name)} is named twice`,
      });
    }
    seen.add(gate.name);
    for (const type of Object.keys(gate.require)) {
      if (!Object.hasOwn(policy.approval_types, type)) {
        ctx.addIssue({
          code: "custom",
          path: ["gates", i, "require", type],
          message: "not a declared approval type",
        });
      }
    }
  });
  const destinations = new Set<string>();
  policy.destinations.forEach((name, i) => {
    if (destinations.has(name)) {
      ctx.addIssue({ code: "custom", path: ["destinations", i], message: "named twice" });
    }
    destinations.add(name);
  });
});

/** A valid approval policy. */
export type ApprovalPolicy = z.infer<typeof approvalPolicySchema>;

/** One gate of a policy. */
export type Gate = ApprovalPolicy["gates"][number];

/** A policy that is not valid; the message names each field at fault (`gates[1].require.X: ...`). */
export class InvalidApprovalPolicyError extends AppError {
  readonly code = "invalid_approval_policy";

  constructor(readonly problems: readonly string[]) {
    super(`Invalid approval policy: ${problems.join("; ")}`);
  }
}

/** `gates[1].require.OUTPUT_CHECKER` for a zod issue path. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(policy)" : out;
}

/**
 * Checks a parsed JSON value against the policy schema and the rules across fields: every type a gate
 * requires is declared, gate names are unique, destinations are unique. Several gates may guard the same
 * step: all of them must be met.
 *
 * @throws {InvalidApprovalPolicyError} naming the path of each field at fault.
 */
export function parseApprovalPolicy(json: unknown): ApprovalPolicy {
  const parsed = approvalPolicySchema.safeParse(json);
  if (parsed.success) return parsed.data;
  throw new InvalidApprovalPolicyError(
    parsed.error.issues.map((issue) => {
      const path = issue.code === "unrecognized_keys"
        ? issue.keys.map((key) => fieldPath([...issue.path, key])).join(", ")
        : fieldPath(issue.path);
      const message = issue.code === "unrecognized_keys" ? "unknown field" : issue.message;
      return `${path}: ${message}`;
    }),
  );
}

/** The part of a destination a policy looks at. */
export interface PolicyDestination {
  readonly type: string;
  readonly name: string;
}

/**
 * Whether `policy` covers `destination`: a PostgreSQL destination when the policy lists `"postgresql"`, a
 * filestore destination when it lists the filestore's name.
 */
export function policyCovers(policy: ApprovalPolicy, destination: PolicyDestination): boolean {
  const key = destination.type === POSTGRESQL_DESTINATION
    ? POSTGRESQL_DESTINATION
    : destination.name;
  return policy.destinations.includes(key);
}

/**
 * The gates that guard `step` for `destination`, in policy order: none without a policy (`null`) or when
 * the policy does not cover the destination.
 */
export function gatesBefore(
  policy: ApprovalPolicy | null,
  step: GatedStep,
  destination: PolicyDestination,
): readonly Gate[] {
  if (policy === null || !policyCovers(policy, destination)) return [];
  return policy.gates.filter((gate) => gate.before === step);
}

/**
 * The gate named `name` if it applies to `destination`, else `undefined`.
 */
export function gateNamed(
  policy: ApprovalPolicy,
  name: string,
  destination: PolicyDestination,
): Gate | undefined {
  if (!policyCovers(policy, destination)) return undefined;
  return policy.gates.find((gate) => gate.name === name);
}

/** Whether a person holding `roles` may revoke releases: one of them is in `revocation_roles`. */
export function mayRevoke(policy: ApprovalPolicy, roles: readonly string[]): boolean {
  return roles.some((role) => policy.revocation_roles.includes(role));
}

/** Whether a person holding `roles` may give approvals of `approvalType`. */
export function isEntitled(
  policy: ApprovalPolicy,
  approvalType: string,
  roles: readonly string[],
): boolean {
  const type = Object.hasOwn(policy.approval_types, approvalType)
    ? policy.approval_types[approvalType]
    : undefined;
  return type !== undefined && type.roles.some((role) => roles.includes(role));
}

/**
 * Whether a person holding `roles` may give any approval type of the policy: such a person may see
 * what awaits a decision, uploads included (`docs/uploads.md`).
 */
export function mayDecideAny(policy: ApprovalPolicy, roles: readonly string[]): boolean {
  return Object.values(policy.approval_types).some((type) =>
    type.roles.some((role) => roles.includes(role))
  );
}
