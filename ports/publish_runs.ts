/**
 * The port for reading the publish service's runs (`GET /runs/{id}`, `docs/runs.md`): the gateway
 * follows a publish it accepted as a run (`Prefer: respond-async`, a resumed run) to record the release's
 * publication when the run ends (`docs/revocation.md`).
 *
 * @module
 */
import type { RunView } from "../domain/run.ts";

/** What the gateway reads of a run: which project run it is, its state, and its reply once it ended. */
export type PublishRunSummary =
  & Pick<
    RunView,
    | "id"
    | "action"
    | "state"
    | "project_name"
    | "project_start_time"
    | "outcome"
    | "created_at"
    | "finished_at"
  >
  & { readonly destination: { readonly type: string; readonly name: string } };

/** Reads the publish service's runs. */
export interface PublishRuns {
  /**
   * The run with this id, or `undefined` when the publish service knows none (never stored, or pruned
   * after `RUN_RETENTION_DAYS`).
   *
   * @throws an `AppError` when the publish service cannot be reached or answers otherwise.
   */
  get(id: string): Promise<PublishRunSummary | undefined>;

  /**
   * The newest publish run of this project run and destination created at or after `since` (an ISO
   * instant), or `undefined` when the publish service shows none: the run of a publish whose reply
   * never came.
   *
   * @throws an `AppError` when the publish service cannot be reached or answers otherwise.
   */
  latestPublish(
    of: Pick<PublishRunSummary, "project_name" | "project_start_time" | "destination">,
    since: string,
  ): Promise<PublishRunSummary | undefined>;
}
