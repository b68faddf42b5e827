/**
 * The approval gates' use cases (`docs/approvals.md`), free of HTTP: admitting a gated `package` or
 * `publish` (the release is found or created, its gates checked), recording a person's decision, and the
 * views of releases every reply carries (gates, staging, `allowed_actions`). The rules themselves are in
 * `domain/release.ts`; this module adds the store, the clock and what the publish service says is staged.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  type ApprovalPolicy,
  type GatedStep,
  gateNamed,
  gatesBefore,
} from "../domain/approval_policy.ts";
import { AppError } from "../domain/errors.ts";
import {
  type AllowedAction,
  allowedActions,
  awaitsPerson,
  type DecidingPerson,
  type Decision,
  type DecisionKind,
  gatesOpenedBy,
  gateStatus,
  metadataRequestsOf,
  newDecision,
  newRelease,
  type Publication,
  type Release,
  type ReleaseRequest,
  type ReleaseRequestView,
  ReleaseRevokedError,
  type ReleaseState,
  type Requester,
} from "../domain/release.ts";
import {
  compareReleasesNewestFirst,
  MAX_RELEASE_PAGE_SIZE,
  ReleaseNotFoundError,
  type ReleaseStore,
} from "../ports/release_store.ts";
import type { ReleaseRun, StagingInspector, StagingReport } from "../ports/staging_inspector.ts";

/** What the release use cases need. */
export interface ReleaseDeps {
  readonly store: ReleaseStore;
  /** The approval policy; `null` without one (no gates, no people: releases are only recorded). */
  readonly policy: ApprovalPolicy | null;
  /** What the publish service has staged for a run. */
  readonly staging: StagingInspector;
  /** The time now; the system clock in production, a fixed one in tests. */
  readonly now: () => Date;
}

/** Who looks at a release: a service key (which can decide nothing) or a signed-in person. */
export type Viewer = { readonly kind: "key" } | {
  readonly kind: "person";
  readonly person: DecidingPerson;
};

/** A gate of a release, as a reply shows it. */
export interface GateView {
  readonly gate: string;
  readonly before: GatedStep;
  readonly met: boolean;
  /** Approval type → approvals still missing (0 when enough). */
  readonly missing: Readonly<Record<string, number>>;
}

/** A publication as views show it: without the crate (served on its own, `GET /releases/{id}/crate`). */
export type PublicationView = Omit<Publication, "crate">;

/**
 * A release as every reply shows it: the stored release (decisions carry only their comment's SHA-256),
 * its gates now, what is staged (for a release with a gate before `publish`; `null` otherwise) and what
 * the viewer may decide.
 */
export interface ReleaseView extends Omit<Release, "request" | "publication"> {
  /** The latest publish, without its crate; `null` before the first. */
  readonly publication: PublicationView | null;
  /** What the requests naming the release asked for, without secret names; `null` when unknown. */
  readonly request: ReleaseRequestView | null;
  readonly gates: readonly GateView[];
  /** `staging_digest` and the publish service's disclosure pre-checks; `null` without a publish gate. */
  readonly staging: (StagingReport["details"] & { readonly staging_digest: string | null }) | null;
  readonly allowed_actions: readonly AllowedAction[];
}

/** What a person asks to record (`POST /releases/{id}/decisions`). */
export interface DecisionRequest {
  readonly gate: string;
  readonly approval_type: string;
  readonly decision: DecisionKind;
  /** Kept only as its SHA-256. */
  readonly comment?: string | undefined;
}

/** A decision as attempted, before the rules are checked: what the audit trail records either way. */
export interface DecisionAttempt {
  readonly release_id: string;
  readonly gate: string;
  readonly approval_type: string;
  readonly decision: DecisionKind;
  /** The staging digest the person saw (gates before `publish`), else `null`. */
  readonly manifest_digest: string | null;
  /** SHA-256 (hex) of the comment; `null` without one. */
  readonly comment_sha256: string | null;
}

/** What recording a decision did. */
export interface DecisionOutcome {
  readonly release: ReleaseView;
  readonly decision: Decision;
  /** The gates this decision opened (of concurrent decisions, exactly one opens a gate). */
  readonly gates_opened: readonly string[];
}

/** What admitting a gated step found. */
export interface Admission {
  /** The release the request names (found or created). */
  readonly release: Release;
  /**
   * For `publish` with gates: the staging digest the approvals are bound to, to be sent on as
   * `expected_staging_digest` so that a change in between refuses the publish. `null` otherwise.
   */
  readonly staging_digest: string | null;
}

/** A gate before the step is not met yet (409): the payload names the release, the gate and what is missing. */
export class ApprovalRequiredError extends AppError {
  readonly code = "approval_required";

  constructor(
    readonly step: GatedStep,
    readonly releaseId: string,
    readonly gate: string,
    /** Approval type → how many more distinct people must approve; only types still missing. */
    readonly missing: Readonly<Record<string, number>>,
  ) {
    const needed = Object.entries(missing).map(([type, n]) => `${n} more ${type}`).join(", ");
    super(
      `Cannot ${step} yet: release ${releaseId} awaits approval at gate ${
        JSON.stringify(gate)
      } (${needed})`,
    );
  }
}

/** The release of this project run was rejected: its gated steps never go through (409). */
export class ReleaseRejectedError extends AppError {
  readonly code = "release_rejected";

  constructor(readonly step: GatedStep, readonly releaseId: string) {
    super(
      `Cannot ${step}: release ${releaseId} was rejected; start a new project run (another project_start_time)`,
    );
  }
}

/** `awaiting=me` needs a person: a key awaits nothing (400). */
export class AwaitingNeedsPersonError extends AppError {
  readonly code = "awaiting_needs_person";

  constructor() {
    super("Cannot list what awaits you with a service key: sign in with a person's token");
  }
}

/** A release list query that is not valid: a bad `limit`, `state` or `awaiting` (400). */
export class InvalidReleaseQueryError extends AppError {
  readonly code = "invalid_release_query";
}

/** The SHA-256 (hex) the audit trail and the release keep of a comment; `null` without one. */
export function commentSha256(comment: string | undefined): string | null {
  return comment === undefined || comment === ""
    ? null
    : createHash("sha256").update(comment, "utf8").digest("hex");
}

/** The approval gates' use cases over one store and one policy. */
export class Releases {
  readonly #deps: ReleaseDeps;

  constructor(deps: ReleaseDeps) {
    this.#deps = deps;
  }

  /** The policy the gates come from; `null` without one. */
  get policy(): ApprovalPolicy | null {
    return this.#deps.policy;
  }

  /**
   * Admits `step` of `run`, asked for by `requester`: finds or creates the run's release (recording what
   * `request` asked for: a new release keeps it, an existing one adds a dataset it had not recorded),
   * refuses a revoked one, and, with gates before the step for the run's destination, checks every gate
   * (for `publish`, against the staging digest now).
   *
   * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
   * @throws {ApprovalRequiredError} naming the first gate not met and the approvals it misses.
   * @throws {ReleaseRejectedError} when a gate applies and the release was rejected.
   */
  async admit(
    step: GatedStep,
    run: ReleaseRun,
    requester: Requester,
    request: ReleaseRequest | null = null,
  ): Promise<Admission> {
    const { policy, store } = this.#deps;
    const gates = gatesBefore(policy, step, run.destination);
    const { release } = await store.ensure(newRelease({
      project_name: run.project_name,
      project_start_time: run.project_start_time,
      destination: { type: run.destination.type, name: run.destination.name },
      requested_by: requester,
      request,
    }, this.#now()));
    if (release.state === "revoking" || release.state === "revoked") {
      throw new ReleaseRevokedError(release.id, step);
    }
    if (policy === null || gates.length === 0) return { release, staging_digest: null };
    if (release.state === "rejected") throw new ReleaseRejectedError(step, release.id);
    const digest = step === "publish"
      ? (await this.#deps.staging.inspect(release)).staging_digest
      : null;
    const now = this.#now();
    for (const gate of gates) {
      const status = gateStatus(release, policy, gate.name, now, digest);
      if (!status.met) {
        const missing = Object.fromEntries(
          Object.entries(status.missing).filter(([, n]) => n > 0),
        );
        throw new ApprovalRequiredError(step, release.id, gate.name, missing);
      }
    }
    return { release, staging_digest: digest };
  }

  /**
   * Records `person`'s decision on release `id`. For a gate before `publish` the decision binds to the
   * staging digest now (set here, never by the caller). `onAttempt` is told what is being attempted
   * before the rules are checked, so that a refused decision is recorded (audited) too.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   * @throws the errors of `checkDecision` (`domain/release.ts`) when the rules refuse it.
   */
  async decide(
    id: string,
    person: DecidingPerson,
    request: DecisionRequest,
    onAttempt: (attempt: DecisionAttempt) => void = () => {},
  ): Promise<DecisionOutcome> {
    const { store } = this.#deps;
    const policy = this.#policyForDecisions();
    const release = await store.get(id);
    if (release === undefined) throw new ReleaseNotFoundError(id);
    const gate = gateNamed(policy, request.gate, release.destination);
    const report = this.#needsStaging(release) ? await this.#deps.staging.inspect(release) : null;
    const digest = gate?.before === "publish" ? report?.staging_digest ?? null : null;
    onAttempt({
      release_id: id,
      gate: request.gate,
      approval_type: request.approval_type,
      decision: request.decision,
      manifest_digest: digest,
      comment_sha256: commentSha256(request.comment),
    });
    const now = this.#now();
    const result = await store.decide(id, (fresh) =>
      newDecision(fresh, policy, person, {
        gate: request.gate,
        approval_type: request.approval_type,
        decision: request.decision,
        comment: request.comment,
        manifest_digest: digest,
      }, now));
    return {
      release: this.#viewOf(result.release, { kind: "person", person }, report),
      decision: result.decision,
      gates_opened: gatesOpenedBy(result.release, policy, now, report?.staging_digest ?? null),
    };
  }

  /**
   * Release `id` as `viewer` sees it.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   */
  async view(id: string, viewer: Viewer): Promise<ReleaseView> {
    const release = await this.#deps.store.get(id);
    if (release === undefined) throw new ReleaseNotFoundError(id);
    return await this.#view(release, viewer);
  }

  /**
   * The bodies of `POST /metadata/project` that describe what release `id` was requested for, one per
   * dataset (with the source's secret names: send them to the metadata service only, never show them).
   * Empty when the release recorded no request.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   */
  async metadataRequests(id: string): Promise<Record<string, unknown>[]> {
    const release = await this.#deps.store.get(id);
    if (release === undefined) throw new ReleaseNotFoundError(id);
    return metadataRequestsOf(release);
  }

  /**
   * Releases newest first, filtered by project and state, one page at a time (`nextCursor` as the
   * store gives it).
   *
   * @throws as `ReleaseStore.list`.
   */
  async list(
    query: { project?: string; state?: ReleaseState; limit: number; cursor?: string },
    viewer: Viewer,
  ): Promise<{ releases: ReleaseView[]; nextCursor: string | null }> {
    const page = await this.#deps.store.list(query);
    return {
      releases: await Promise.all(page.releases.map((r) => this.#view(r, viewer))),
      nextCursor: page.nextCursor,
    };
  }

  /**
   * The open releases `person` can still decide on, oldest first: some gate not met still misses an
   * approval type they may give and have not given (`awaitsPerson`).
   */
  async awaiting(person: DecidingPerson): Promise<ReleaseView[]> {
    const { policy, store } = this.#deps;
    if (policy === null) return [];
    const viewer: Viewer = { kind: "person", person };
    const open: Release[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list({
        state: "open",
        limit: MAX_RELEASE_PAGE_SIZE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      open.push(...page.releases);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    const now = this.#now();
    const views = await Promise.all(open.map(async (release) => {
      const report = this.#needsStaging(release) ? await this.#deps.staging.inspect(release) : null;
      return awaitsPerson(release, policy, person, now, report?.staging_digest ?? null)
        ? this.#viewOf(release, viewer, report)
        : undefined;
    }));
    return views.filter((v): v is ReleaseView => v !== undefined)
      .sort((a, b) => compareReleasesNewestFirst(b, a));
  }

  #now(): string {
    return this.#deps.now().toISOString();
  }

  /** The policy decisions are checked against; without one nobody decides (there are no people). */
  #policyForDecisions(): ApprovalPolicy {
    const policy = this.#deps.policy;
    if (policy === null) throw new Error("decisions need an approval policy");
    return policy;
  }

  /** Whether a gate before `publish` covers the release (its view then shows what is staged). */
  #needsStaging(release: Release): boolean {
    return gatesBefore(this.#deps.policy, "publish", release.destination).length > 0;
  }

  async #view(release: Release, viewer: Viewer): Promise<ReleaseView> {
    const report = this.#needsStaging(release) ? await this.#deps.staging.inspect(release) : null;
    return this.#viewOf(release, viewer, report);
  }

  #viewOf(release: Release, viewer: Viewer, report: StagingReport | null): ReleaseView {
    const { policy } = this.#deps;
    const now = this.#now();
    const digest = report?.staging_digest ?? null;
    const gates = policy === null ? [] : policy.gates
      .filter((gate) => gateNamed(policy, gate.name, release.destination) !== undefined)
      .map((gate) => {
        const status = gateStatus(release, policy, gate.name, now, digest);
        return { gate: gate.name, before: gate.before, met: status.met, missing: status.missing };
      });
    const { request, publication, ...rest } = release;
    return {
      ...rest,
      publication: publication === null ? null : withoutCrate(publication),
      request: request === null || request === undefined ? null : withoutCredentials(request),
      gates,
      staging: report === null ? null : { ...report.details, staging_digest: digest },
      allowed_actions: viewer.kind === "person" && policy !== null
        ? allowedActions(release, policy, viewer.person, now, digest)
        : [],
    };
  }
}

/** A request summary as views show it: without its credentials' secret names. */
function withoutCredentials(request: ReleaseRequest): ReleaseRequestView {
  const { credentials: _credentials, ...shown } = request;
  return shown;
}

/** A publication as views show it: without its crate. */
function withoutCrate(publication: Publication): PublicationView {
  const { crate: _crate, ...shown } = publication;
  return shown;
}
