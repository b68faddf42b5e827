/**
 * Releases and the decisions people record on them (`docs/approvals.md`). A release is one project run
 * (project name, project start time, destination), created by the first request that names it. Every rule
 * about who may decide what, and what counts towards a gate, is here, as pure functions of the release, the
 * policy, the person and the time:
 *
 * - the requester never decides on their own release (a release requested with a service key may be
 *   decided by anyone entitled);
 * - a person is entitled to an approval type when one of their roles is listed for it;
 * - with separation of duties, one person fills at most one approval type per gate (they may fill
 *   different types in different gates);
 * - a second approval by the same person for the same type counts once;
 * - a `reject` closes the release for good;
 * - a `request_changes` resets its gate: only approvals recorded after it count;
 * - an approval older than `approval_max_age_days` no longer counts;
 * - a gate guarding `publish` counts only approvals of the staging digest that is current now, so any
 *   change to staging resets it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { DataContractTransferRequest } from "./contract.ts";
import { AppError } from "./errors.ts";
import { type ApprovalPolicy, type Gate, gateNamed, isEntitled } from "./approval_policy.ts";

const isoTime = z.iso.datetime({ precision: 3 });

/** The decisions a person can record. */
export const DECISION_KINDS = ["approve", "reject", "request_changes"] as const;

/** A decision a person can record. */
export type DecisionKind = typeof DECISION_KINDS[number];

/**
 * The states of a release: `open` (decisions are recorded), `rejected` (a person rejected it: no more
 * decisions), `revoking` (its revocation was asked for and is under way at the publish service) and
 * `revoked` (the published data was deleted: final).
 */
export const RELEASE_STATES = ["open", "rejected", "revoking", "revoked"] as const;

/** A state of a release. */
export type ReleaseState = typeof RELEASE_STATES[number];

/**
 * The one place that says which state a release may go to from which (staying is always allowed): a
 * release is revoked from `open` or `rejected` (a rejected release may have been published before), only
 * through `revoking`, and `revoked` is final.
 */
export const RELEASE_TRANSITIONS: Readonly<Record<ReleaseState, readonly ReleaseState[]>> = {
  open: ["open", "rejected", "revoking"],
  rejected: ["rejected", "revoking"],
  revoking: ["revoking", "revoked"],
  revoked: ["revoked"],
};

/** Whether a release may go from state `from` to state `to` ({@link RELEASE_TRANSITIONS}). */
export function canTransition(from: ReleaseState, to: ReleaseState): boolean {
  return RELEASE_TRANSITIONS[from].includes(to);
}

/** Whether the release's revocation was asked for (`revoking`) or is done (`revoked`). */
export function isRevokedOrRevoking(release: Pick<Release, "state">): boolean {
  return release.state === "revoking" || release.state === "revoked";
}

/** Who asked for a release: a service key (its id) or a person (their id at their issuer). */
export const requesterSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("key"), id: z.string().min(1) }).strict(),
  z.object({ kind: z.literal("person"), id: z.string().min(1), issuer: z.string().min(1) })
    .strict(),
]);

/** See {@link requesterSchema}. */
export type Requester = z.infer<typeof requesterSchema>;

/**
 * Who asked for a revocation: a service key, a person, or the gateway itself (`{kind: "system", id:
 * "expiry"}` when a release expired).
 */
export const revocationRequesterSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("key"), id: z.string().min(1) }).strict(),
  z.object({ kind: z.literal("person"), id: z.string().min(1), issuer: z.string().min(1) })
    .strict(),
  z.object({ kind: z.literal("system"), id: z.string().min(1) }).strict(),
]);

/** See {@link revocationRequesterSchema}. */
export type RevocationRequester = z.infer<typeof revocationRequesterSchema>;

/** Who revokes expired releases. */
export const EXPIRY_REQUESTER: RevocationRequester = { kind: "system", id: "expiry" };

/** The reason an expired release is revoked with. */
export const EXPIRY_REASON = "expired";

/** The longest reason a revocation keeps. */
export const MAX_REVOCATION_REASON_LENGTH = 2000;

/** A JSON object kept as it came (a crate, receipt claims, a deletion certificate). */
const jsonObjectSchema = z.record(z.string(), z.unknown());

/**
 * The latest publish of a release, as the publish service answered it: the signed receipt (compact JWS
 * and its claims), the RO-Crate describing what was published, and the files (or tables) published.
 */
export const publicationSchema = z.object({
  published_at: isoTime,
  receipt: z.object({ jws: z.string().min(1), claims: jsonObjectSchema }).strict(),
  crate: jsonObjectSchema,
  /** The publish reply's `data_published` entries. */
  files: z.array(jsonObjectSchema).optional(),
}).strict();

/** See {@link publicationSchema}. */
export type Publication = z.infer<typeof publicationSchema>;

/**
 * A publish the publish service accepted as a run (`Prefer: respond-async`, or a resumed run) whose
 * end the gateway has not seen yet: the run's id and when the gateway learnt of it.
 */
export const pendingPublishSchema = z.object({
  run_id: z.string().min(1),
  requested_at: isoTime,
}).strict();

/** See {@link pendingPublishSchema}. */
export type PendingPublish = z.infer<typeof pendingPublishSchema>;

/** How a publish run the gateway waits for ended. */
export type PublishRunEnd =
  /** Succeeded: its publication (`null`: its reply carried no valid receipt and crate). */
  | { readonly succeeded: true; readonly publication: Publication | null }
  /** Failed, cancelled, or no longer known to the publish service: nothing was published. */
  | { readonly succeeded: false };

/**
 * A release's revocation: who asked, why and when, and, once the publish service deleted the published
 * data, when that was done and its deletion certificate (kept as the publish service gave it).
 */
export const revocationSchema = z.object({
  reason: z.string().min(1).max(MAX_REVOCATION_REASON_LENGTH),
  requested_by: revocationRequesterSchema,
  requested_at: isoTime,
  completed_at: isoTime.nullable(),
  certificate: jsonObjectSchema.nullable(),
}).strict();

/** See {@link revocationSchema}. */
export type Revocation = z.infer<typeof revocationSchema>;

/** One decision, as recorded (also the audit record's content). */
export const decisionSchema = z.object({
  id: z.string().min(1),
  gate: z.string().min(1),
  approval_type: z.string().min(1),
  decision: z.enum(DECISION_KINDS),
  person: z.object({
    id: z.string().min(1),
    issuer: z.string().min(1),
    name: z.string(),
  }).strict(),
  at: isoTime,
  /** SHA-256 (hex) of the comment; the comment itself is not kept. `null` without a comment. */
  comment_sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  /** The staging digest the person saw (gates before `publish`); `null` when nothing was staged. */
  manifest_digest: z.string().min(1).nullable(),
}).strict();

/** See {@link decisionSchema}. */
export type Decision = z.infer<typeof decisionSchema>;

/** A requested column as the request named it (no type: the metadata service describes it). */
const requestedColumnSchema = z.object({
  name: z.string().min(1),
  description: z.string().nullable(),
}).strict();

/** One dataset a request named: its schema and the tables (and columns) asked for from it. */
export const requestedDatasetSchema = z.object({
  name: z.string().nullable(),
  schema_name: z.string().min(1),
  description: z.string().nullable(),
  /** `null`: every table of the schema. */
  tables: z.array(
    z.object({
      name: z.string().min(1),
      description: z.string().nullable(),
      /** `null`: every column of the table. */
      columns: z.array(requestedColumnSchema).nullable(),
    }).strict(),
  ).nullable(),
}).strict();

/** See {@link requestedDatasetSchema}. */
export type RequestedDataset = z.infer<typeof requestedDatasetSchema>;

/**
 * The names of the secrets the request's source credentials are kept under (never their values). Kept
 * only so that the gateway can ask the metadata service to describe the request again for an approver;
 * no view of a release ever shows them.
 */
export const requestCredentialsSchema = z.record(z.string(), z.string().nullable());

/**
 * What the requests that named a release asked for, as approvers see it: the source (where, never how
 * to sign in) and every dataset requested, one per schema, first request first.
 */
export const releaseRequestSchema = z.object({
  source: z.object({
    type: z.string().min(1),
    /** A host name, or a Databricks workspace URL. */
    host: z.string().min(1),
    port: z.number().int(),
    /** The database, or a Databricks catalog. */
    database: z.string().min(1),
    /** Databricks only: the SQL warehouse's HTTP path. */
    http_path: z.string().optional(),
  }).strict(),
  datasets: z.array(requestedDatasetSchema).min(1),
  /** See {@link requestCredentialsSchema}; never shown. */
  credentials: requestCredentialsSchema,
}).strict();

/** See {@link releaseRequestSchema}. */
export type ReleaseRequest = z.infer<typeof releaseRequestSchema>;

/** A release request summary as views show it: without its credentials' secret names. */
export type ReleaseRequestView = Omit<ReleaseRequest, "credentials">;

/** A release: one project run, and the decisions recorded on it, oldest first. */
export const releaseSchema = z.object({
  id: z.string().min(1),
  project_name: z.string().min(1),
  project_start_time: z.string().min(1),
  destination: z.object({ type: z.string().min(1), name: z.string() }).strict(),
  requested_by: requesterSchema,
  created_at: isoTime,
  state: z.enum(RELEASE_STATES),
  decisions: z.array(decisionSchema),
  /**
   * What the requests naming this release asked for; `null` when none said (a release stored before
   * requests were recorded, or named by a `publish` request only).
   */
  request: releaseRequestSchema.nullable().optional(),
  /** The latest publish; `null` before the first (and for releases stored before it was recorded). */
  publication: publicationSchema.nullable().default(null),
  /** When the release expires and is revoked by the gateway; `null`: never. */
  expires_at: isoTime.nullable().default(null),
  /** The revocation, once asked for; `null` before. */
  revocation: revocationSchema.nullable().default(null),
  /**
   * Publish runs accepted for this release whose end is not recorded yet, oldest first (`[]` for
   * releases stored before it was kept). Cleared by their end, and by a revocation.
   */
  pending_publishes: z.array(pendingPublishSchema).default([]),
}).strict();

/** See {@link releaseSchema}. */
export type Release = z.infer<typeof releaseSchema>;

/** What names a release: the first request naming it creates it. */
export type NewReleaseInput =
  & Pick<Release, "project_name" | "project_start_time" | "destination" | "requested_by">
  & { readonly request?: ReleaseRequest | null };

/** A new open release at `at` with a random id and no decisions. */
export function newRelease(input: NewReleaseInput, at: string): Release {
  return releaseSchema.parse({
    id: crypto.randomUUID(),
    ...input,
    request: input.request ?? null,
    created_at: at,
    state: "open",
    decisions: [],
  });
}

/**
 * `release` with what `request` asked for recorded: its datasets added when their schema is new (the
 * first request's source is kept). `undefined` when nothing changes.
 */
export function withRequest(
  release: Release,
  request: ReleaseRequest | null | undefined,
): Release | undefined {
  if (request === null || request === undefined) return undefined;
  if (release.request === null || release.request === undefined) {
    return releaseSchema.parse({ ...release, request });
  }
  const known = new Set(release.request.datasets.map((d) => d.schema_name));
  const added = request.datasets.filter((d) => !known.has(d.schema_name));
  if (added.length === 0) return undefined;
  return releaseSchema.parse({
    ...release,
    request: { ...release.request, datasets: [...release.request.datasets, ...added] },
  });
}

/** What a validated transfer request (`domain/contract.ts`) asked for, as a release records it. */
export function releaseRequestOf(request: DataContractTransferRequest): ReleaseRequest {
  const source = request.source;
  const dataset = request.dataset;
  return releaseRequestSchema.parse({
    source: source.type === "databrickssql"
      ? {
        type: source.type,
        host: source.host_url,
        port: source.port,
        database: source.catalog,
        http_path: source.http_path,
      }
      : { type: source.type, host: source.host_url, port: source.port, database: source.database },
    datasets: [{
      name: dataset.name ?? null,
      schema_name: dataset.schema_name,
      description: dataset.description ?? null,
      tables: dataset.tables?.map((table) => ({
        name: table.name,
        description: table.description ?? null,
        columns: table.columns?.map((column) => ({
          name: column.name,
          description: column.description ?? null,
        })) ?? null,
      })) ?? null,
    }],
    credentials: Object.fromEntries(
      Object.entries(source.credentials).filter(([, value]) => value !== undefined),
    ),
  });
}

/**
 * The bodies of the metadata service's `POST /metadata/project` that describe what `release` was
 * requested for, one per dataset (with the source's secret names, for the metadata service only).
 * Empty without a recorded request.
 */
export function metadataRequestsOf(release: Release): Record<string, unknown>[] {
  const request = release.request;
  if (request === null || request === undefined) return [];
  const { source, credentials } = request;
  const sourceBody = source.type === "databrickssql"
    ? {
      type: source.type,
      host_url: source.host,
      http_path: source.http_path,
      port: source.port,
      catalog: source.database,
      credentials,
    }
    : {
      type: source.type,
      host_url: source.host,
      port: source.port,
      database: source.database,
      credentials,
    };
  return request.datasets.map((dataset) => ({
    project_name: release.project_name,
    project_start_time: release.project_start_time,
    // The metadata service describes the source only; a valid format stands in for the one not kept.
    destination: {
      ...release.destination,
      format: release.destination.type === "filestore" ? "csv" : "sql",
    },
    source: sourceBody,
    dataset: {
      name: dataset.name,
      schema_name: dataset.schema_name,
      description: dataset.description,
      tables: dataset.tables,
    },
  }));
}

/** The person deciding, as the identity port gives them (`ports/identity.ts` `Person`). */
export interface DecidingPerson {
  readonly id: string;
  readonly issuer: string;
  readonly name: string;
  readonly roles: readonly string[];
}

/** What a person asks to record. */
export interface DecisionInput {
  readonly gate: string;
  readonly approval_type: string;
  readonly decision: DecisionKind;
  /** Free text, kept only as its SHA-256. */
  readonly comment?: string | undefined;
  /** The staging digest now (what the person saw); `null` when nothing is staged. */
  readonly manifest_digest: string | null;
}

/**
 * The release is revoked or being revoked: no more decisions, and its project run is not packaged or
 * published again (409).
 */
export class ReleaseRevokedError extends AppError {
  readonly code = "release_revoked";
  constructor(readonly releaseId: string, what = "change") {
    super(
      `Cannot ${what} release ${releaseId}: it is revoked; start a new project run (another project_start_time)`,
    );
  }
}

/** Revoking needs one of the policy's `revocation_roles` (403). */
export class NotEntitledToRevokeError extends AppError {
  readonly code = "not_entitled_to_revoke";
  constructor() {
    super("Cannot revoke the release: none of your roles is a revocation role of the policy");
  }
}

/** A release has no crate before it is published (404). */
export class ReleaseNotPublishedError extends AppError {
  readonly code = "release_not_published";
  constructor(readonly releaseId: string) {
    super(`Cannot serve the crate of release ${releaseId}: it was not published yet`);
  }
}

/** A change would move a release to a state it may not reach from its own (409). */
export class InvalidReleaseTransitionError extends AppError {
  readonly code = "invalid_release_transition";
  constructor(readonly releaseId: string, readonly from: ReleaseState, readonly to: ReleaseState) {
    super(`Cannot move release ${releaseId} from ${from} to ${to}`);
  }
}

/**
 * Checks that `next` is a valid change of `release`: the same release (id, project run, creation) in a
 * state {@link RELEASE_TRANSITIONS} allows. Returns `next` parsed.
 *
 * @throws {InvalidReleaseTransitionError} when the state change is not allowed.
 * @throws {Error} when `next` is not a valid release or is another release.
 */
export function checkReleaseChange(release: Release, next: Release): Release {
  const valid = releaseSchema.parse(next);
  for (const field of ["id", "project_name", "project_start_time", "created_at"] as const) {
    if (valid[field] !== release[field]) throw new Error(`a release change cannot change ${field}`);
  }
  if (JSON.stringify(valid.destination) !== JSON.stringify(release.destination)) {
    throw new Error("a release change cannot change destination");
  }
  if (!canTransition(release.state, valid.state)) {
    throw new InvalidReleaseTransitionError(release.id, release.state, valid.state);
  }
  return valid;
}

/**
 * `release` with its latest publish recorded (`null`: the publish service sent no receipt and crate; the
 * previous publication is kept), and when it expires (`null`: never).
 *
 * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
 */
export function withPublication(
  release: Release,
  publication: Publication | null,
  expiresAt: string | null,
): Release {
  if (isRevokedOrRevoking(release)) throw new ReleaseRevokedError(release.id, "publish");
  return releaseSchema.parse({
    ...release,
    publication: publication === null ? release.publication : publicationSchema.parse(publication),
    expires_at: expiresAt,
  });
}

/**
 * `release` waiting for publish run `runId` (accepted at `at`), and when it expires (`null`: never):
 * expiry starts when the publish is asked, not when its run ends. A run already pending is kept as it
 * is (a repeated request attaches to the same run).
 *
 * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
 */
export function withPendingPublish(
  release: Release,
  runId: string,
  expiresAt: string | null,
  at: string,
): Release {
  const published = withPublication(release, null, expiresAt);
  if (published.pending_publishes.some((pending) => pending.run_id === runId)) return published;
  return releaseSchema.parse({
    ...published,
    pending_publishes: [...published.pending_publishes, { run_id: runId, requested_at: at }],
  });
}

/** Whether `release` waits for publish run `runId`. */
export function isPublishPending(release: Release, runId: string): boolean {
  return release.pending_publishes.some((pending) => pending.run_id === runId);
}

/**
 * `release` once publish run `runId` ended: no longer pending, and, when the run succeeded, its
 * publication recorded as a synchronous publish's is ({@link withPublication}, the expiry set when the
 * publish was asked kept). A run the release does not wait for leaves it unchanged (settling twice is
 * harmless), and a revoked or revoking release never gets a publication: its pending run is only
 * dropped.
 */
export function settlePendingPublish(release: Release, runId: string, end: PublishRunEnd): Release {
  if (!isPublishPending(release, runId)) return release;
  const rest = release.pending_publishes.filter((pending) => pending.run_id !== runId);
  const settled = releaseSchema.parse({ ...release, pending_publishes: rest });
  if (!end.succeeded || isRevokedOrRevoking(settled)) return settled;
  return withPublication(settled, end.publication, settled.expires_at);
}

/** What asking to revoke a release says. */
export interface RevocationRequest {
  readonly reason: string;
  readonly requested_by: RevocationRequester;
}

/**
 * `release` as `revoking`, with who asked, why and when, waiting for no publish run any more. A release already `revoking` or `revoked` is
 * returned unchanged (the first request's who and why are kept): asking again retries.
 */
export function startRevocation(release: Release, request: RevocationRequest, at: string): Release {
  if (isRevokedOrRevoking(release)) return release;
  return releaseSchema.parse({
    ...release,
    state: "revoking",
    // A publish still under way is removed by the revocation, never recorded.
    pending_publishes: [],
    revocation: {
      reason: request.reason,
      requested_by: request.requested_by,
      requested_at: at,
      completed_at: null,
      certificate: null,
    },
  });
}

/**
 * `release` as `revoked` at `at`, with the deletion certificate the publish service gave. A release
 * already `revoked` is returned unchanged.
 *
 * @throws {InvalidReleaseTransitionError} when the release is not `revoking`.
 */
export function completeRevocation(
  release: Release,
  certificate: Record<string, unknown>,
  at: string,
): Release {
  if (release.state === "revoked") return release;
  if (release.state !== "revoking" || release.revocation === null) {
    throw new InvalidReleaseTransitionError(release.id, release.state, "revoked");
  }
  return releaseSchema.parse({
    ...release,
    state: "revoked",
    revocation: { ...release.revocation, completed_at: at, certificate },
  });
}

/** The furthest a requested expiry may be, in days from now. */
export const MAX_EXPIRY_DAYS = 3650;

const DAY = 86_400_000;

/** A requested expiry that is not in the future or too far (422). */
export class InvalidExpiryError extends AppError {
  readonly code = "invalid_expiry";
  constructor(readonly expiresAt: string) {
    super(
      `Cannot expire the release at ${expiresAt}: give a time in the future, at most ${MAX_EXPIRY_DAYS} days away`,
    );
  }
}

/**
 * When a release published at `now` expires: `requested` (an ISO date-time, checked and normalised to
 * UTC milliseconds) when given, else `defaultDays` from now, else never (`null`).
 *
 * @throws {InvalidExpiryError} when `requested` is not in the future or more than
 *   {@link MAX_EXPIRY_DAYS} days away.
 */
export function expiryOf(
  requested: string | undefined,
  defaultDays: number | undefined,
  now: string,
): string | null {
  const nowMs = Date.parse(now);
  if (requested !== undefined) {
    const at = Date.parse(requested);
    if (!Number.isFinite(at) || at <= nowMs || at > nowMs + MAX_EXPIRY_DAYS * DAY) {
      throw new InvalidExpiryError(requested);
    }
    return new Date(at).toISOString();
  }
  return defaultDays === undefined ? null : new Date(nowMs + defaultDays * DAY).toISOString();
}

/** Whether `release` is past its expiry at `now` and not yet revoked or being revoked. */
export function isExpired(release: Release, now: string): boolean {
  return release.expires_at !== null && !isRevokedOrRevoking(release) &&
    Date.parse(release.expires_at) <= Date.parse(now);
}

/** The release was rejected: no more decisions (409). */
export class ReleaseClosedError extends AppError {
  readonly code = "release_closed";
  constructor(readonly releaseId: string) {
    super(`Cannot decide on release ${releaseId}: it was rejected`);
  }
}

/** The policy has no such gate for the release's destination (400). */
export class UnknownGateError extends AppError {
  readonly code = "unknown_gate";
  constructor(readonly gate: string) {
    super(
      `Cannot decide on gate ${JSON.stringify(gate)}: the policy has no such gate for this release`,
    );
  }
}

/** The gate does not require this approval type (400). */
export class UnknownApprovalTypeError extends AppError {
  readonly code = "unknown_approval_type";
  constructor(readonly gate: string, readonly approvalType: string) {
    super(
      `Cannot decide as ${JSON.stringify(approvalType)}: gate ${
        JSON.stringify(gate)
      } does not require it`,
    );
  }
}

/** None of the person's roles gives this approval type (403). */
export class NotEntitledError extends AppError {
  readonly code = "not_entitled";
  constructor(readonly approvalType: string) {
    super(`Cannot decide as ${JSON.stringify(approvalType)}: none of your roles gives it`);
  }
}

/** The person asked for this release and so may not decide on it (403). */
export class SelfApprovalError extends AppError {
  readonly code = "self_approval";
  constructor(readonly releaseId: string) {
    super(`Cannot decide on release ${releaseId}: you requested it`);
  }
}

/** Separation of duties: the person already fills another approval type of this gate (409). */
export class ApprovalTypeTakenError extends AppError {
  readonly code = "approval_type_taken";
  constructor(readonly gate: string, readonly takenType: string) {
    super(
      `Cannot approve gate ${JSON.stringify(gate)} again: you already approved it as ${
        JSON.stringify(takenType)
      }, and one person fills one approval type per gate`,
    );
  }
}

/** An approval of a gate before `publish` needs staged data to bind to (409). */
export class NothingStagedToApproveError extends AppError {
  readonly code = "nothing_staged_to_approve";
  constructor(readonly gate: string) {
    super(`Cannot approve gate ${JSON.stringify(gate)}: nothing is staged yet; package first`);
  }
}

const DAY_MS = 86_400_000;

function samePerson(a: { id: string; issuer: string }, b: { id: string; issuer: string }): boolean {
  return a.id === b.id && a.issuer === b.issuer;
}

function personKey(p: { id: string; issuer: string }): string {
  return JSON.stringify([p.issuer, p.id]);
}

/**
 * The approvals that count towards `gate` now, oldest first: approvals of the gate recorded after its
 * latest `request_changes`, younger than the policy's maximum age, and, for a gate before `publish`, of
 * `currentDigest`. With separation of duties, a person counts only for the type of their first counting
 * approval in the gate.
 */
function countingApprovals(
  release: Release,
  policy: ApprovalPolicy,
  gate: Gate,
  now: string,
  currentDigest: string | null,
): Decision[] {
  const decisions = release.decisions.filter((d) => d.gate === gate.name);
  const resetAt = decisions.findLastIndex((d) => d.decision === "request_changes");
  const oldest = Date.parse(now) - policy.approval_max_age_days * DAY_MS;
  const counting = decisions.slice(resetAt + 1).filter((d) =>
    d.decision === "approve" && Date.parse(d.at) >= oldest &&
    (gate.before !== "publish" || (currentDigest !== null && d.manifest_digest === currentDigest))
  );
  if (!policy.separation_of_duties) return counting;
  const typeOf = new Map<string, string>();
  return counting.filter((d) => {
    const key = personKey(d.person);
    const type = typeOf.get(key) ?? d.approval_type;
    typeOf.set(key, type);
    return type === d.approval_type;
  });
}

/** Where a gate stands: met or not, and how many more distinct people each type still needs. */
export interface GateStatus {
  readonly gate: string;
  readonly met: boolean;
  /** Approval type → approvals still missing (0 when enough). */
  readonly missing: Readonly<Record<string, number>>;
}

/**
 * Where gate `gateName` of `release` stands at `now`. A rejected release meets no gate. `currentDigest` is
 * the staging digest now (gates before `publish` count only approvals of it; `null` or absent: nothing
 * staged, none count).
 *
 * @throws {UnknownGateError} when the policy has no such gate for the release's destination.
 */
export function gateStatus(
  release: Release,
  policy: ApprovalPolicy,
  gateName: string,
  now: string,
  currentDigest: string | null = null,
): GateStatus {
  const gate = gateNamed(policy, gateName, release.destination);
  if (gate === undefined) throw new UnknownGateError(gateName);
  const counting = countingApprovals(release, policy, gate, now, currentDigest);
  const missing: Record<string, number> = {};
  for (const [type, needed] of Object.entries(gate.require)) {
    const people = new Set(
      counting.filter((d) => d.approval_type === type).map((d) => personKey(d.person)),
    );
    missing[type] = Math.max(0, needed - people.size);
  }
  return {
    gate: gate.name,
    met: release.state === "open" && Object.values(missing).every((n) => n === 0),
    missing,
  };
}

/**
 * Checks that `person` may record `input` on `release` at `now`.
 *
 * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
 * @throws {ReleaseClosedError} when the release was rejected.
 * @throws {UnknownGateError} when the policy has no such gate for the release's destination.
 * @throws {UnknownApprovalTypeError} when the gate does not require the approval type.
 * @throws {NotEntitledError} when none of the person's roles gives the approval type.
 * @throws {SelfApprovalError} when the person requested the release.
 * @throws {NothingStagedToApproveError} when approving a gate before `publish` with nothing staged.
 * @throws {ApprovalTypeTakenError} with separation of duties, when approving as a type while the person's
 *   approval as another type of the same gate still counts.
 */
export function checkDecision(
  release: Release,
  policy: ApprovalPolicy,
  person: DecidingPerson,
  input: DecisionInput,
  now: string,
): void {
  if (isRevokedOrRevoking(release)) throw new ReleaseRevokedError(release.id, "decide on");
  if (release.state === "rejected") throw new ReleaseClosedError(release.id);
  const gate = gateNamed(policy, input.gate, release.destination);
  if (gate === undefined) throw new UnknownGateError(input.gate);
  if (!Object.hasOwn(gate.require, input.approval_type)) {
    throw new UnknownApprovalTypeError(gate.name, input.approval_type);
  }
  if (!isEntitled(policy, input.approval_type, person.roles)) {
    throw new NotEntitledError(input.approval_type);
  }
  const requester = release.requested_by;
  if (requester.kind === "person" && samePerson(requester, person)) {
    throw new SelfApprovalError(release.id);
  }
  if (input.decision !== "approve") return;
  if (gate.before === "publish" && input.manifest_digest === null) {
    throw new NothingStagedToApproveError(gate.name);
  }
  if (policy.separation_of_duties) {
    const taken = countingApprovals(release, policy, gate, now, input.manifest_digest)
      .find((d) => samePerson(d.person, person) && d.approval_type !== input.approval_type);
    if (taken !== undefined) throw new ApprovalTypeTakenError(gate.name, taken.approval_type);
  }
}

/**
 * The decision `person` records with `input` at `now`, after {@link checkDecision}: the callback to give
 * `ReleaseStore.decide`. The comment is kept only as its SHA-256; the digest is kept only for gates before
 * `publish`.
 */
export function newDecision(
  release: Release,
  policy: ApprovalPolicy,
  person: DecidingPerson,
  input: DecisionInput,
  now: string,
): Decision {
  checkDecision(release, policy, person, input, now);
  const gate = gateNamed(policy, input.gate, release.destination);
  return decisionSchema.parse({
    id: crypto.randomUUID(),
    gate: input.gate,
    approval_type: input.approval_type,
    decision: input.decision,
    person: { id: person.id, issuer: person.issuer, name: person.name },
    at: now,
    comment_sha256: input.comment === undefined || input.comment === ""
      ? null
      : createHash("sha256").update(input.comment, "utf8").digest("hex"),
    manifest_digest: gate?.before === "publish" ? input.manifest_digest : null,
  });
}

/**
 * `release` with `decision` appended (a `reject` makes it `rejected`): the one way every store records a
 * decision.
 *
 * @throws {ReleaseClosedError} when the release was already rejected.
 * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
 */
export function appendDecision(release: Release, decision: Decision): Release {
  if (isRevokedOrRevoking(release)) throw new ReleaseRevokedError(release.id, "decide on");
  if (release.state === "rejected") throw new ReleaseClosedError(release.id);
  const valid = decisionSchema.parse(decision);
  return releaseSchema.parse({
    ...release,
    state: valid.decision === "reject" ? "rejected" : release.state,
    decisions: [...release.decisions, valid],
  });
}

/** What a person may still do on a release: per gate and approval type, the decisions accepted. */
export interface AllowedAction {
  readonly gate: string;
  readonly approval_type: string;
  readonly decisions: readonly DecisionKind[];
}

/**
 * Every decision {@link checkDecision} would accept from `person` now, by gate (policy order) and
 * approval type (the gate's order), leaving out pairs with none. Empty on a rejected release or one the
 * policy does not cover. `currentDigest` is the staging digest now (`null`: nothing staged).
 */
export function allowedActions(
  release: Release,
  policy: ApprovalPolicy,
  person: DecidingPerson,
  now: string,
  currentDigest: string | null = null,
): AllowedAction[] {
  const actions: AllowedAction[] = [];
  for (const gate of policy.gates) {
    for (const approvalType of Object.keys(gate.require)) {
      const decisions = DECISION_KINDS.filter((decision) => {
        try {
          checkDecision(release, policy, person, {
            gate: gate.name,
            approval_type: approvalType,
            decision,
            manifest_digest: currentDigest,
          }, now);
          return true;
        } catch (e) {
          if (e instanceof AppError) return false;
          throw e;
        }
      });
      if (decisions.length > 0) {
        actions.push({ gate: gate.name, approval_type: approvalType, decisions });
      }
    }
  }
  return actions;
}

/**
 * Whether `release` awaits `person` (`GET /releases?awaiting=me`): some gate that is not met still misses
 * an approval type the person may approve and has no counting approval of.
 */
export function awaitsPerson(
  release: Release,
  policy: ApprovalPolicy,
  person: DecidingPerson,
  now: string,
  currentDigest: string | null = null,
): boolean {
  return allowedActions(release, policy, person, now, currentDigest).some((action) => {
    if (!action.decisions.includes("approve")) return false;
    const status = gateStatus(release, policy, action.gate, now, currentDigest);
    if (status.met || (status.missing[action.approval_type] ?? 0) === 0) return false;
    const gate = gateNamed(policy, action.gate, release.destination);
    return gate !== undefined &&
      !countingApprovals(release, policy, gate, now, currentDigest).some((d) =>
        samePerson(d.person, person) && d.approval_type === action.approval_type
      );
  });
}

/**
 * The gates the latest decision of `release` opened: met now and not met before it (at the same `now`
 * and digest). Decisions are recorded one at a time, each on the release as the previous left it, so of
 * concurrent decisions exactly one opens a gate: the wiring logs or audits the opening from this.
 */
export function gatesOpenedBy(
  release: Release,
  policy: ApprovalPolicy,
  now: string,
  currentDigest: string | null = null,
): string[] {
  if (release.decisions.length === 0) return [];
  const before: Release = { ...release, decisions: release.decisions.slice(0, -1) };
  return policy.gates
    .filter((gate) => gateNamed(policy, gate.name, release.destination) !== undefined)
    .filter((gate) =>
      gateStatus(release, policy, gate.name, now, currentDigest).met &&
      !gateStatus(before, policy, gate.name, now, currentDigest).met
    )
    .map((gate) => gate.name);
}
