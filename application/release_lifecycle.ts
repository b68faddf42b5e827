/**
 * What happens to a release after its gates (`docs/revocation.md`, gateway side): its publication is
 * recorded (receipt, crate, expiry), it is revoked on request, and the expiry sweep revokes releases past
 * their `expires_at` and retries revocations left `revoking`. A publish accepted as a run
 * (`Prefer: respond-async`, or a resumed run) is pending on its release until the run ends; then its
 * publication is recorded exactly as a synchronous publish's (`settlePublishRun`, also run by the sweep).
 * The rules are in `domain/release.ts`; this module adds the store, the clock, the publish service's
 * revocation (`ports/release_revoker.ts`) and its runs (`ports/publish_runs.ts`).
 *
 * @module
 */
import {
  completeRevocation,
  EXPIRY_REASON,
  EXPIRY_REQUESTER,
  expiryOf,
  isExpired,
  isPublishPending,
  type Publication,
  publicationSchema,
  type PublishRunEnd,
  type Release,
  ReleaseNotPublishedError,
  ReleaseRevokedError,
  type ReleaseState,
  type RevocationRequest,
  settlePendingPublish,
  startRevocation,
  withPendingPublish,
  withPublication,
} from "../domain/release.ts";
import { FINAL_RUN_STATES, type RunState } from "../domain/run.ts";
import type { PublishRuns, PublishRunSummary } from "../ports/publish_runs.ts";
import { AppError } from "../domain/errors.ts";
import {
  MAX_RELEASE_PAGE_SIZE,
  ReleaseNotFoundError,
  type ReleaseStore,
} from "../ports/release_store.ts";
import type { DeletionCertificateObject, ReleaseRevoker } from "../ports/release_revoker.ts";

/**
 * How far the publish service's clock may be behind the gateway's when the gateway looks for the run of
 * a publish it sent ({@link ReleaseLifecycle.recordPublishUnanswered}).
 */
export const CLOCK_SKEW_MS = 60_000;

/** What the lifecycle needs. */
export interface ReleaseLifecycleDeps {
  readonly store: ReleaseStore;
  readonly revoker: ReleaseRevoker;
  /** The time now; the system clock in production, a fixed one in tests. */
  readonly now: () => Date;
  /** The policy's `release_expiry_days`: how long a published release lasts by default. */
  readonly expiryDays?: number | undefined;
  /**
   * How long a `revoking` release is left to the request that started it before the sweep retries it
   * (so that the sweep does not race a revocation under way). 60 s when absent.
   */
  readonly retryRevokingAfterMs?: number | undefined;
  /**
   * The publish service's runs, which the sweep reads to settle pending publish runs; without it the
   * sweep settles none (they are still settled when a run is read through the gateway).
   */
  readonly runs?: PublishRuns | undefined;
  /**
   * Puts a revocation the sweep made on the record (the gateway's audit trail), once the publish service
   * has certified the deletion and before the release is stored `revoked`: a crash between the two
   * leaves the release `revoking`, which the next sweep retries, so the record is written at least once
   * and never missing. When it throws, the release stays `revoking` and the sweep reports it failed.
   */
  readonly recordSweepRevocation?:
    | ((release: Release, certificate: DeletionCertificateObject) => Promise<void>)
    | undefined;
}

/** A pending publish run a sweep settled: how it ended (`gone`: the publish service knows it no more). */
export interface SettledPublish {
  readonly id: string;
  readonly run_id: string;
  readonly run_state: RunState | "gone";
}

/**
 * What one sweep did: the pending publish runs it settled, the releases it revoked (as now stored), and
 * those whose settling or revocation failed (to retry; `run_id` names the run when settling failed).
 */
export interface SweepReport {
  readonly settled: readonly SettledPublish[];
  readonly revoked: readonly Release[];
  readonly failed: readonly {
    readonly id: string;
    readonly code: string;
    readonly run_id?: string;
  }[];
}

/** The `payload` fields of a publish reply the release keeps. */
interface PublishReplyPayload {
  readonly receipt?: unknown;
  readonly crate?: unknown;
  readonly data_published?: unknown;
}

/** A release's publication, recording, revocation and expiry over one store. */
export class ReleaseLifecycle {
  readonly #deps: ReleaseLifecycleDeps;

  constructor(deps: ReleaseLifecycleDeps) {
    this.#deps = deps;
  }

  /**
   * When a release published now expires: `requested` if given, else the policy's default, else never.
   *
   * @throws {InvalidExpiryError} when `requested` is not in the future or too far away.
   */
  expiryFor(requested: string | undefined): string | null {
    return expiryOf(requested, this.#deps.expiryDays, this.#now());
  }

  /**
   * Records a publish of release `id` from the publish service's reply payload: its receipt and crate
   * (when the reply carries valid ones) and when it expires.
   *
   * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
   */
  async recordPublication(
    id: string,
    payload: PublishReplyPayload,
    expiresAt: string | null,
  ): Promise<Release> {
    const publication = publicationOf(payload, this.#now());
    return await this.#deps.store.update(
      id,
      (release) => withPublication(release, publication, expiresAt),
    );
  }

  /**
   * Records the run of release `id`'s publish whose reply never came (the call timed out, or broke after
   * it was sent at `sentAt`): the newest publish run of the release's project run since then (less
   * {@link CLOCK_SKEW_MS}, the two services' clocks may differ) becomes pending on the release, as an
   * accepted run does, so that its end is recorded. `undefined` when there is no such run (the request
   * never got there), or no runs to read.
   *
   * @throws {ReleaseNotFoundError}, {ReleaseRevokedError}, or the runs' errors.
   */
  async recordPublishUnanswered(
    id: string,
    sentAt: Date,
    expiresAt: string | null,
  ): Promise<Release | undefined> {
    const release = await this.#deps.store.get(id);
    if (release === undefined) throw new ReleaseNotFoundError(id);
    const since = new Date(sentAt.getTime() - CLOCK_SKEW_MS).toISOString();
    const run = await this.#deps.runs?.latestPublish(release, since);
    if (run === undefined) return undefined;
    return await this.recordPublishAccepted(id, run.id, expiresAt);
  }

  /**
   * Records that the publish service accepted release `id`'s publish as run `runId`: the release waits
   * for it (its publication is recorded when the run ends), and its expiry starts now.
   *
   * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
   */
  async recordPublishAccepted(
    id: string,
    runId: string,
    expiresAt: string | null,
  ): Promise<Release> {
    const now = this.#now();
    return await this.#deps.store.update(
      id,
      (release) => withPendingPublish(release, runId, expiresAt, now),
    );
  }

  /**
   * Records that publish run `run` was resumed (`POST /runs/{id}/resume`): the release of its project run
   * waits for it. A release with no expiry yet gets the policy's default from now. `undefined` when the
   * run is not a publish, or its project run has no release that may still be published.
   */
  async recordPublishResumed(run: PublishRunSummary): Promise<Release | undefined> {
    if (run.action !== "publish") return undefined;
    const release = (await this.#releasesOfProject(run.project_name)).find((candidate) =>
      candidate.project_start_time === run.project_start_time &&
      candidate.destination.type === run.destination.type &&
      candidate.destination.name === run.destination.name
    );
    if (release === undefined) return undefined;
    const expiresAt = release.expires_at ?? this.expiryFor(undefined);
    const now = this.#now();
    try {
      return await this.#deps.store.update(
        release.id,
        (fresh) => withPendingPublish(fresh, run.id, fresh.expires_at ?? expiresAt, now),
      );
    } catch (e) {
      if (e instanceof ReleaseRevokedError) return undefined;
      throw e;
    }
  }

  /**
   * Settles every release waiting for publish run `run` once the run ended (`succeeded`: its publication
   * recorded; `failed` or `cancelled`: no longer pending); returns them as now stored. Nothing while the
   * run goes on or is `interrupted` (it may be resumed), nor for a run no release waits for. Idempotent.
   */
  async settlePublishRun(run: PublishRunSummary): Promise<Release[]> {
    if (run.action !== "publish" || !FINAL_RUN_STATES.includes(run.state)) return [];
    const waiting = (await this.#releasesOfProject(run.project_name))
      .filter((release) => isPublishPending(release, run.id));
    const settled: Release[] = [];
    for (const release of waiting) settled.push(await this.#settle(release.id, run.id, run));
    return settled;
  }

  /** Settles release `id`'s pending run `runId` as `run` (`undefined`: the run is gone) says it ended. */
  async #settle(id: string, runId: string, run: PublishRunSummary | undefined): Promise<Release> {
    const end = this.#endOf(run);
    return await this.#deps.store.update(
      id,
      (release) => settlePendingPublish(release, runId, end),
    );
  }

  /** How a finished publish run ended, its publication read from its reply as a synchronous one's. */
  #endOf(run: PublishRunSummary | undefined): PublishRunEnd {
    if (run === undefined || run.state !== "succeeded" || run.outcome?.status !== 200) {
      return { succeeded: false };
    }
    const body = run.outcome.body;
    const payload = typeof body === "object" && body !== null && !Array.isArray(body) &&
        typeof body.payload === "object" && body.payload !== null && !Array.isArray(body.payload)
      ? body.payload as PublishReplyPayload
      : {};
    return { succeeded: true, publication: publicationOf(payload, run.finished_at ?? this.#now()) };
  }

  /**
   * The crate of release `id`'s latest publish.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   * @throws {ReleaseNotPublishedError} before its first publish.
   */
  async crate(id: string): Promise<Record<string, unknown>> {
    const release = await this.#deps.store.get(id);
    if (release === undefined) throw new ReleaseNotFoundError(id);
    if (release.publication === null) throw new ReleaseNotPublishedError(id);
    return release.publication.crate;
  }

  /**
   * Revokes release `id`: marks it `revoking` (who, why, when), has the publish service delete what it
   * published, and records it `revoked` with the deletion certificate. Idempotent: a `revoking` release
   * is retried (its first who and why kept), a `revoked` one returned as it is.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   * @throws the revoker's error when the publish service refuses or fails (the release stays `revoking`).
   */
  async revoke(id: string, request: RevocationRequest): Promise<Release> {
    return await this.#revoke(id, request, undefined);
  }

  /** {@link revoke}, with `record` called between the certificate and the `revoked` state. */
  async #revoke(
    id: string,
    request: RevocationRequest,
    record: ReleaseLifecycleDeps["recordSweepRevocation"],
  ): Promise<Release> {
    const { store, revoker } = this.#deps;
    const started = await store.update(
      id,
      (release) => startRevocation(release, request, this.#now()),
    );
    if (started.state === "revoked" || started.revocation === null) return started;
    const certificate = await revoker.revoke(started, started.revocation);
    await record?.(started, certificate);
    return await store.update(
      id,
      (release) => completeRevocation(release, certificate, this.#now()),
    );
  }

  /**
   * One sweep: settles every pending publish run that ended (read through `runs`), then revokes every
   * release past its `expires_at` (reason `expired`, by the system) and retries every release left
   * `revoking` for longer than the retry delay. Safe to run on several replicas at once (settling and
   * revocation are idempotent). A failure is reported, not thrown: the next sweep retries it.
   */
  async sweep(): Promise<SweepReport> {
    const failed: { id: string; code: string; run_id?: string }[] = [];
    const settled = await this.#settlePending(failed);
    const now = this.#now();
    const retryBefore = Date.parse(now) - (this.#deps.retryRevokingAfterMs ?? 60_000);
    const due = [
      ...(await this.#all("open")),
      ...(await this.#all("rejected")),
    ].filter((release) => isExpired(release, now));
    const stuck = (await this.#all("revoking")).filter((release) =>
      release.revocation === null || Date.parse(release.revocation.requested_at) <= retryBefore
    );
    const revoked: Release[] = [];
    for (const release of [...due, ...stuck]) {
      try {
        revoked.push(
          await this.#revoke(
            release.id,
            { reason: EXPIRY_REASON, requested_by: EXPIRY_REQUESTER },
            this.#deps.recordSweepRevocation,
          ),
        );
      } catch (e) {
        failed.push({ id: release.id, code: e instanceof AppError ? e.code : "internal_error" });
      }
    }
    return { settled, revoked, failed };
  }

  /** Settles the pending publish runs that ended; failures go to `failed`. */
  async #settlePending(
    failed: { id: string; code: string; run_id?: string }[],
  ): Promise<SettledPublish[]> {
    const runs = this.#deps.runs;
    if (runs === undefined) return [];
    const settled: SettledPublish[] = [];
    const waiting = [...(await this.#all("open")), ...(await this.#all("rejected"))]
      .filter((release) => release.pending_publishes.length > 0);
    for (const release of waiting) {
      for (const { run_id: runId } of release.pending_publishes) {
        try {
          const run = await runs.get(runId);
          if (run !== undefined && !FINAL_RUN_STATES.includes(run.state)) continue;
          if (run !== undefined && run.action !== "publish") {
            // Not a publish run: it publishes nothing, whatever its state.
            await this.#settle(release.id, runId, undefined);
          } else {
            await this.#settle(release.id, runId, run);
          }
          settled.push({ id: release.id, run_id: runId, run_state: run?.state ?? "gone" });
        } catch (e) {
          failed.push({
            id: release.id,
            run_id: runId,
            code: e instanceof AppError ? e.code : "internal_error",
          });
        }
      }
    }
    return settled;
  }

  /** The releases of project `project` that may still be published (`open` or `rejected`). */
  async #releasesOfProject(project: string): Promise<Release[]> {
    return [...await this.#all("open", project), ...await this.#all("rejected", project)];
  }

  async #all(state: ReleaseState, project?: string): Promise<Release[]> {
    const releases: Release[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.#deps.store.list({
        state,
        ...(project === undefined ? {} : { project }),
        limit: MAX_RELEASE_PAGE_SIZE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      releases.push(...page.releases);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    return releases;
  }

  #now(): string {
    return this.#deps.now().toISOString();
  }
}

/** The publication a publish reply's payload describes; `null` without a valid receipt and crate. */
function publicationOf(payload: PublishReplyPayload, now: string): Publication | null {
  const files = Array.isArray(payload.data_published) ? payload.data_published : undefined;
  const parsed = publicationSchema.safeParse({
    published_at: now,
    receipt: payload.receipt,
    crate: payload.crate,
    ...(files === undefined ? {} : { files }),
  });
  return parsed.success ? parsed.data : null;
}
