/**
 * Use case: check that a destination is usable and a source reachable (`POST /data-publish/validate`).
 *
 * @module
 */
import type { Source } from "../domain/contract.ts";
import type { Destination, LongWork } from "../ports/destination.ts";
import type { SourceOpener } from "./source.ts";

/** What to check. */
export interface CheckAccessRequest {
  readonly source: Source;
}

/**
 * Checks the destination first, then opens the source and pings it.
 *
 * @throws {AppError} the destination's or the source's typed error.
 */
export async function checkAccess(
  request: CheckAccessRequest,
  ports: { readonly destination: Destination; readonly openSource: SourceOpener },
  work: LongWork = {},
): Promise<{ validation_status: "success" }> {
  work.signal?.throwIfAborted();
  await ports.destination.checkReady();
  await using db = await ports.openSource(request.source);
  await db.ping();
  return { validation_status: "success" };
}
