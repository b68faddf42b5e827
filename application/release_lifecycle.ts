/**
 * What happens to a release after its gates (`docs/revocation.md`, gateway side): its publication is
 * recorded (receipt, crate, expiry), it is revoked on request, and the expiry sweep revokes releases past
 * their `expires_at` and retries revocations left `revoking`. The rules are in `domain/release.ts`; this
 * module adds the store, the clock and the publish service's revocation (`ports/release_revoker.ts`).
 *
 * @module
 */
import {
  completeRevocation,
  EXPIRY_REASON,
  EXPIRY_REQUESTER,
  expiryOf,
  isExpired,
  type Publication,
  publicationSchema,
  type Release,
  ReleaseNotPublishedError,
  type ReleaseState,
  type RevocationRequest,
  startRevocation,
  withPublication,
} from "../domain/release.ts";
import { AppError } from "../domain/errors.ts";
import {
  MAX_RELEASE_PAGE_SIZE,
  ReleaseNotFoundError,
  type ReleaseStore,
} from "../ports/release_store.ts";
import type { ReleaseRevoker } from "../ports/release_revoker.ts";

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
}

/** What one sweep did: the releases it revoked (as now stored), and those whose revocation failed (to retry). */
export interface SweepReport {
  readonly revoked: readonly Release[];
  readonly failed: readonly { readonly id: string; readonly code: string }[];
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
    const { store, revoker } = this.#deps;
    const started = await store.update(
      id,
      (release) => startRevocation(release, request, this.#now()),
    );
    if (started.state === "revoked" || started.revocation === null) return started;
    const certificate = await revoker.revoke(started, started.revocation);
    return await store.update(
      id,
      (release) => completeRevocation(release, certificate, this.#now()),
    );
  }

  /**
   * One expiry sweep: revokes every release past its `expires_at` (reason `expired`, by the system) and
   * retries every release left `revoking` for longer than the retry delay. Safe to run on several
   * replicas at once (revocation is idempotent). A failure is reported, not thrown: the next sweep
   * retries it.
   */
  async sweep(): Promise<SweepReport> {
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
    const failed: { id: string; code: string }[] = [];
    for (const release of [...due, ...stuck]) {
      try {
        revoked.push(
          await this.revoke(release.id, { reason: EXPIRY_REASON, requested_by: EXPIRY_REQUESTER }),
        );
      } catch (e) {
        failed.push({ id: release.id, code: e instanceof AppError ? e.code : "internal_error" });
      }
    }
    return { revoked, failed };
  }

  async #all(state: ReleaseState): Promise<Release[]> {
    const releases: Release[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.#deps.store.list({
        state,
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
