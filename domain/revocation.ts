/**
 * Revocation (issue 16): what a publish service removes when a release is withdrawn, and the deletion
 * certificate that records it for the audit trail. The certificate lists every removed file with the
 * SHA-512 and size it had, every dropped table with its row count, and the OPAL resources and group, with
 * who asked, why and when. It is pure: the removal itself lives in the filestore and destination ports.
 *
 * A revocation is a run (action `revoke`, `domain/run.ts`): each removed item is a progress entry of the
 * run, recorded before it is removed, so a resumed revocation still lists what an earlier attempt removed.
 * {@link revocationEntryName} and {@link parseRevocationEntryName} are the one naming of those entries.
 *
 * @module
 */
import { z } from "zod";
import { DataContractPublishRequest } from "./contract.ts";
import { AppError } from "./errors.ts";
import { type RevocationRequester, revocationRequesterSchema } from "./release.ts";

// Always milliseconds and `Z`, as `Date.prototype.toISOString` writes.
const isoTime = z.iso.datetime({ precision: 3 });

/** What happens to a filestore release: its files deleted, or moved to the revoked area. */
export const REVOCATION_MODES = ["delete", "quarantine"] as const;

/** One of {@link REVOCATION_MODES} (`REVOCATION_MODE`). */
export type RevocationMode = typeof REVOCATION_MODES[number];

/** The areas of a filestore run a revocation removes files from. */
export const REVOKED_AREAS = ["production", "staging"] as const;

/** One of {@link REVOKED_AREAS}. */
export type RevokedArea = typeof REVOKED_AREAS[number];

// Who asked for a revocation: one schema, the release's (`domain/release.ts`).
export { type RevocationRequester, revocationRequesterSchema } from "./release.ts";

/**
 * Body of the publish service's `POST /data-publish/revoke`: the run (project, start time, destination),
 * the release it published, why (1 to 2000 characters) and who asked. The gateway sends it.
 */
export const PublishServiceRevokeRequest = DataContractPublishRequest.extend({
  release_id: z.string().min(1).max(128),
  reason: z.string().trim().min(1).max(2000),
  requested_by: revocationRequesterSchema,
});

/** See {@link PublishServiceRevokeRequest}. */
export type PublishServiceRevokeRequest = z.infer<typeof PublishServiceRevokeRequest>;

/** A removed file: its area, its path relative to the run folder, its SHA-512 and size. */
export const revokedFileSchema = z.object({
  area: z.enum(REVOKED_AREAS),
  path: z.string().min(1),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
  bytes: z.number().int().nonnegative(),
}).strict();

/** See {@link revokedFileSchema}. */
export type RevokedFile = z.infer<typeof revokedFileSchema>;

/** A dropped destination table and the rows it had. */
export const revokedTableSchema = z.object({
  schema: z.string().min(1),
  table: z.string().min(1),
  rows: z.number().int().nonnegative(),
}).strict();

/** See {@link revokedTableSchema}. */
export type RevokedTable = z.infer<typeof revokedTableSchema>;

/** What was removed from OPAL: the project's resources of the release and its group (when removed). */
export const revokedOpalSchema = z.object({
  project: z.string().min(1),
  resources: z.array(z.string()),
  group: z.string().nullable(),
}).strict();

/** See {@link revokedOpalSchema}. */
export type RevokedOpal = z.infer<typeof revokedOpalSchema>;

/**
 * The deletion certificate: what a revocation removed (each file's SHA-512 and size, each table's row
 * count, the OPAL resources and group), from which release and destination, who asked, why, and when.
 * `mode` is `deleted` (gone) or `quarantined` (moved to the filestore's owner-only `revoked/` area).
 */
export const deletionCertificateSchema = z.object({
  release_id: z.string().min(1),
  project_name: z.string().min(1),
  project_start_time: z.string(),
  destination: z.object({ type: z.string(), name: z.string() }).strict(),
  reason: z.string().min(1).max(2000),
  requested_by: revocationRequesterSchema,
  mode: z.enum(["deleted", "quarantined"]),
  started_at: isoTime,
  removed_at: isoTime,
  files: z.array(revokedFileSchema),
  tables: z.array(revokedTableSchema),
  opal: revokedOpalSchema.nullable(),
}).strict();

/** See {@link deletionCertificateSchema}. */
export type DeletionCertificate = z.infer<typeof deletionCertificateSchema>;

/** What a destination removed, before the certificate adds who, why and when. */
export interface Removed {
  readonly mode: DeletionCertificate["mode"];
  readonly files: readonly RevokedFile[];
  readonly tables: readonly RevokedTable[];
  readonly opal: RevokedOpal | null;
}

/** The certificate's fields that the request gives. */
export interface CertificateRequest {
  readonly release_id: string;
  readonly project_name: string;
  readonly project_start_time: string;
  readonly destination: { readonly type: string; readonly name: string };
  readonly reason: string;
  readonly requested_by: RevocationRequester;
}

/**
 * The certificate of a finished revocation: the request's fields, what was removed (files sorted by area
 * then path, tables by schema then table, resources by name) and the times.
 */
export function deletionCertificate(
  request: CertificateRequest,
  removed: Removed,
  times: { readonly started_at: string; readonly removed_at: string },
): DeletionCertificate {
  return deletionCertificateSchema.parse({
    release_id: request.release_id,
    project_name: request.project_name,
    project_start_time: request.project_start_time,
    destination: { type: request.destination.type, name: request.destination.name },
    reason: request.reason,
    requested_by: request.requested_by,
    mode: removed.mode,
    started_at: times.started_at,
    removed_at: times.removed_at,
    files: [...removed.files].sort((a, b) => compare(`${a.area}/${a.path}`, `${b.area}/${b.path}`)),
    tables: [...removed.tables].sort((a, b) =>
      compare(`${a.schema}\0${a.table}`, `${b.schema}\0${b.table}`)
    ),
    opal: removed.opal === null
      ? null
      : { ...removed.opal, resources: [...new Set(removed.opal.resources)].sort(compare) },
  });
}

/** What a revocation recorded of one item before removing it (a run's progress entry). */
export interface RecordedItem {
  readonly rows: number;
  readonly bytes: number;
  readonly sha512: string | null;
}

/** An item a revocation removes, as named in its run's progress. */
export type RevocationItem =
  | { readonly kind: "file"; readonly area: RevokedArea; readonly path: string }
  | { readonly kind: "table"; readonly schema: string; readonly table: string }
  | { readonly kind: "opal_resource"; readonly project: string; readonly resource: string }
  | { readonly kind: "opal_group"; readonly project: string; readonly group: string };

/**
 * The progress entry name of a removed item: `production/{path}` and `staging/{path}` for files,
 * `table:{schema}.{table}` for tables, `opal:{project}/{resource}` and `opal-group:{project}/{group}`.
 */
export function revocationEntryName(item: RevocationItem): string {
  switch (item.kind) {
    case "file":
      return `${item.area}/${item.path}`;
    case "table":
      return `table:${item.schema}.${item.table}`;
    case "opal_resource":
      return `opal:${item.project}/${item.resource}`;
    case "opal_group":
      return `opal-group:${item.project}/${item.group}`;
  }
}

/** The item a progress entry name stands for ({@link revocationEntryName}), or `undefined`. */
export function parseRevocationEntryName(name: string): RevocationItem | undefined {
  for (const area of REVOKED_AREAS) {
    if (name.startsWith(`${area}/`)) {
      return { kind: "file", area, path: name.slice(area.length + 1) };
    }
  }
  const table = /^table:([^.]+)\.(.+)$/.exec(name);
  if (table !== null) return { kind: "table", schema: table[1]!, table: table[2]! };
  const resource = /^opal:([^/]+)\/(.+)$/.exec(name);
  if (resource !== null) {
    return { kind: "opal_resource", project: resource[1]!, resource: resource[2]! };
  }
  const group = /^opal-group:([^/]+)\/(.+)$/.exec(name);
  if (group !== null) return { kind: "opal_group", project: group[1]!, group: group[2]! };
  return undefined;
}

/** A run whose release was revoked cannot be published again (to be a 409). */
export class PublicationRevokedError extends AppError {
  readonly code = "publication_revoked";

  constructor(readonly project: string, readonly startTime: string) {
    super(
      `Cannot publish project "${project}" started ${startTime}: its release was revoked`,
    );
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
