/**
 * The port through which the approval service asks what a project run has staged: its staging digest
 * (what a disclosure approval binds to) and the disclosure pre-checks approvers look at. The adapter is
 * the publish service's `POST /data-publish/staging`, called by the gateway (`apps/approval/`).
 *
 * @module
 */

/** The project run a release names. */
export interface ReleaseRun {
  readonly project_name: string;
  readonly project_start_time: string;
  readonly destination: { readonly type: string; readonly name: string };
}

/** What a run has staged, as approvers see it. */
export interface StagingReport {
  /** Changes whenever anything of the run is staged again; `null` when nothing is staged. */
  readonly staging_digest: string | null;
  /** The publish service's report beside the digest (per-table disclosure pre-checks), passed on as is. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** Asks what a project run has staged. */
export interface StagingInspector {
  /**
   * The run's staging digest and disclosure pre-checks now.
   *
   * @throws the adapter's own errors when the publish service cannot answer (the gated step is then
   *   refused: nothing unchecked moves).
   */
  inspect(run: ReleaseRun): Promise<StagingReport>;
}
