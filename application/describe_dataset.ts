/**
 * Use case: describe the tables and columns a request names (`POST /metadata/project`).
 *
 * @module
 */
import { metadataPayload } from "../domain/catalog.ts";
import type { DatasetMetadata, DatasetMetadataPayload, Source } from "../domain/contract.ts";
import type { LongWork } from "../ports/destination.ts";
import { describeSelection, type SourceOpener } from "./source.ts";

/** What to describe. */
export interface DescribeRequest {
  readonly source: Source;
  readonly dataset: DatasetMetadata;
}

/**
 * Opens the source, reads the catalogue of the requested tables and returns their description; never row
 * data.
 *
 * @throws {SourceNotAllowedError} and the other errors of opening the source (`SourceOpener`).
 * @throws {SchemaNotFoundError} when the schema is not visible.
 */
export async function describeDataset(
  request: DescribeRequest,
  ports: { readonly openSource: SourceOpener },
  work: LongWork = {},
): Promise<DatasetMetadataPayload> {
  work.signal?.throwIfAborted();
  await using db = await ports.openSource(request.source, request.dataset.schema_name);
  return metadataPayload(await describeSelection(db, request.dataset), request.dataset);
}
