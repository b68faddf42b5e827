/**
 * The staging manifest: which files a run has staged, their SHA-512 and size as computed while writing,
 * and which datasets (schemas) own them. Publishing verifies every copied file against it.
 *
 * The manifest is signed: an HMAC-SHA-256 over its canonical JSON and the run it belongs to, with a key
 * only the publish service holds ({@link stagingManifestKey}). A manifest edited by hand, written by an
 * older version, moved from another run or signed with a rotated key does not verify, so it can never
 * make publish copy files the service did not stage for that run.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "./audit.ts";
import type { TableExtract } from "./catalog.ts";
import {
  type DatasetDisclosure,
  datasetDisclosureSchema,
  type DisclosureThresholds,
  type TableDisclosure,
} from "./disclosure.ts";
import { isSafeIdentifier } from "./names.ts";
import { isPayloadPath, type RunRef } from "./staging_layout.ts";

const Entry = z.strictObject({
  path: z.string().refine(isPayloadPath, { error: "must be a path under data/outputs/" }),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
  bytes: z.number().int().nonnegative(),
  datasets: z.array(z.string().refine(isSafeIdentifier, { error: "must be a schema name" })).min(1),
  /** Set when the CSV file was written with the opt-in formula escape: the prefix it used. */
  csvFormulaPrefix: z.string().min(1).optional(),
});

/** A released column as the source described it (for the release's RO-Crate). */
const StagedColumn = z.strictObject({
  name: z.string().min(1),
  /** The source's own type, e.g. `numeric(10,2)`. */
  datatype: z.string(),
  description: z.string().nullable(),
});

/** A released table: only the selected columns, in the source's order. */
const StagedTable = z.strictObject({
  name: z.string().min(1),
  description: z.string().nullable(),
  columns: z.array(StagedColumn),
});

/** See {@link StagedTable}. */
export type StagedTable = z.infer<typeof StagedTable>;

/**
 * Released tables read back from a store that keeps them outside the signed manifest (the PostgreSQL
 * destination's registry).
 *
 * @returns the tables, or `undefined` when `value` is not a list of released tables.
 */
export function parseStagedTables(value: unknown): StagedTable[] | undefined {
  const parsed = z.array(StagedTable).safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/**
 * The tables a dataset's extracts release: selected columns with the source's types and descriptions,
 * in the extracts' order. What every destination records at stage or load for the release's RO-Crate.
 */
export function releasedTables(extracts: readonly TableExtract[]): StagedTable[] {
  return extracts.map(({ table }) => ({
    name: table.name,
    description: table.description,
    columns: table.columns.map((c) => ({
      name: c.name,
      datatype: c.dataType,
      description: c.description,
    })),
  }));
}

/**
 * One stage of a dataset: its disclosure pre-checks and the tables it released (names, columns, source
 * types). Nothing else, and nothing that depends on when or how often it ran, so that staging the same
 * bytes again writes the same manifest (a resumed package equals an uninterrupted one, and an approval
 * of the staging digest still holds for identical content).
 */
const DatasetStage = z.strictObject({
  /** `null` when the checks were off, or a table was kept from an interrupted run unread. */
  disclosure: datasetDisclosureSchema.nullable(),
  /** Absent in manifests written before releases had an RO-Crate. */
  tables: z.array(StagedTable).optional(),
});

/** See {@link DatasetStage}. */
export type DatasetStage = z.infer<typeof DatasetStage>;

/**
 * The manifest's content (version 2: version 1 had no signature). `datasets` (by schema name) is absent
 * in manifests written before the disclosure pre-checks.
 */
export const StagingManifest = z.strictObject({
  version: z.literal(2),
  files: z.array(Entry).refine((files) => new Set(files.map((f) => f.path)).size === files.length, {
    error: "must list each path once",
  }),
  datasets: z.record(z.string().refine(isSafeIdentifier), DatasetStage).optional(),
});

export type StagingManifest = z.infer<typeof StagingManifest>;
export type StagingEntry = z.infer<typeof Entry>;

/** A signature: HMAC-SHA-256, 64 lower-case hex digits. */
const MAC_PATTERN = /^[0-9a-f]{64}$/;

/** A file a dataset has just staged. */
export interface NewFile {
  readonly path: string;
  readonly sha512: string;
  readonly bytes: number;
  readonly csvFormulaPrefix?: string;
}

/** An empty manifest. */
export function emptyManifest(): StagingManifest {
  return { version: 2, files: [] };
}

/**
 * Records that `dataset` now has exactly `files`, from the stage `stage` (its id and checks). Files the
 * dataset alone owned before and no longer has are returned in `removed`; files shared with other datasets
 * (the DuckDB database) stay owned by the others.
 */
export function replaceDataset(
  manifest: StagingManifest,
  dataset: string,
  files: readonly NewFile[],
  stage?: DatasetStage,
): { manifest: StagingManifest; removed: string[] } {
  const incoming = new Map(files.map((f) => [f.path, f]));
  const removed: string[] = [];
  const kept: StagingEntry[] = [];
  for (const entry of manifest.files) {
    const replacement = incoming.get(entry.path);
    if (replacement !== undefined) {
      const datasets = [...new Set([...entry.datasets, dataset])].sort();
      kept.push({ ...replacement, datasets });
      incoming.delete(entry.path);
      continue;
    }
    const others = entry.datasets.filter((d) => d !== dataset);
    if (others.length === 0) removed.push(entry.path);
    else kept.push({ ...entry, datasets: others });
  }
  for (const file of incoming.values()) kept.push({ ...file, datasets: [dataset] });
  kept.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const datasets = { ...manifest.datasets };
  if (stage !== undefined) datasets[dataset] = stage;
  else delete datasets[dataset];
  return {
    manifest: {
      version: 2,
      files: kept,
      ...(Object.keys(datasets).length > 0 ? { datasets } : {}),
    },
    removed,
  };
}

/**
 * The staging digest: SHA-256 (lower-case hex) of the manifest's canonical JSON, i.e. of every staged
 * path, SHA-512 and size, every dataset's stage id and its disclosure checks. It changes whenever a
 * dataset is packaged again (a new stage id, even for the same bytes) and at no other time.
 *
 * @returns `null` when nothing is staged.
 */
export function stagingDigest(manifest: StagingManifest): string | null {
  if (manifest.files.length === 0) return null;
  return createHash("sha256").update(canonicalJson(manifest)).digest("hex");
}

/** The HKDF label of the manifest key; a new label would make a new key. */
export const STAGING_MANIFEST_KEY_LABEL = "cr8tor staging manifest v1";

/** The shortest secret a manifest key may be derived from. */
export const MIN_MANIFEST_KEY_MATERIAL = 32;

const encoder = new TextEncoder();

/**
 * The key that signs staging manifests: HMAC-SHA-256, derived with HKDF-SHA-256 (no salt, info
 * {@link STAGING_MANIFEST_KEY_LABEL}) from a secret the publish service alone holds.
 *
 * @param material the secret, at least {@link MIN_MANIFEST_KEY_MATERIAL} characters, or the service's API
 *   key (at least 16) when the deployment has no manifest key of its own.
 * @throws {RangeError} when the material is shorter than 16 characters.
 */
export async function stagingManifestKey(material: string): Promise<CryptoKey> {
  if (material.length < 16) {
    throw new RangeError("Cannot derive the staging manifest key: the secret is too short");
  }
  const base = await crypto.subtle.importKey("raw", encoder.encode(material), "HKDF", false, [
    "deriveKey",
  ]);
  return await crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      info: encoder.encode(STAGING_MANIFEST_KEY_LABEL),
    },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign", "verify"],
  );
}

/** The bytes the signature covers: the manifest's content and the run, in canonical JSON. */
function signedBytes(content: unknown, run: RunRef): Uint8Array<ArrayBuffer> {
  return encoder.encode(canonicalJson({
    manifest: content,
    run: { project: run.project, start_time: run.startTime },
  }));
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** The manifest file's text: the manifest and its signature (`mac`) for `run`. */
export async function signedManifestText(
  manifest: StagingManifest,
  run: RunRef,
  key: CryptoKey,
): Promise<string> {
  const mac = hex(await crypto.subtle.sign("HMAC", key, signedBytes(manifest, run)));
  return JSON.stringify({ ...manifest, mac }, null, 2) + "\n";
}

/** Why a manifest file was refused; the text completes "the staging manifest ...". */
export type ManifestProblem =
  | "is not valid JSON"
  | "is not signed by this service for this run"
  | "is not a valid staging manifest";

/**
 * Reads a manifest file: its signature for `run` is checked (in constant time) before anything in it is
 * looked at. A manifest without a signature (version 1), edited, moved from another run or signed with
 * another key is refused.
 *
 * @returns the manifest, or the reason it was refused.
 */
export async function verifyManifestText(
  text: string,
  run: RunRef,
  key: CryptoKey,
): Promise<StagingManifest | { problem: ManifestProblem }> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: "is not valid JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { problem: "is not a valid staging manifest" };
  }
  const { mac, ...content } = json as Record<string, unknown>;
  if (typeof mac !== "string" || !MAC_PATTERN.test(mac)) {
    return { problem: "is not signed by this service for this run" };
  }
  if (!await crypto.subtle.verify("HMAC", key, fromHex(mac), signedBytes(content, run))) {
    return { problem: "is not signed by this service for this run" };
  }
  const parsed = StagingManifest.safeParse(content);
  return parsed.success ? parsed.data : { problem: "is not a valid staging manifest" };
}

/** One staged table's disclosure pre-checks, as approvers see them before publish. */
export interface StagedTableChecks {
  /** The dataset's schema name. */
  readonly dataset: string;
  readonly table: string;
  readonly thresholds: DisclosureThresholds;
  readonly disclosure: TableDisclosure;
}

/** What a run has staged, as approvers see it: the digest and each table's pre-checks. */
export interface StagingSummary {
  /** {@link stagingDigest}; `null` when nothing is staged. */
  readonly digest: string | null;
  /** Every checked table: datasets by name, each dataset's tables in the order they were extracted. */
  readonly tables: readonly StagedTableChecks[];
  /** Staged datasets without checks (checks off, or tables kept from an interrupted run), sorted. */
  readonly uncheckedDatasets: readonly string[];
}

/** The summary of a manifest (`undefined`: the run has none). */
export function stagingSummary(manifest: StagingManifest | undefined): StagingSummary {
  if (manifest === undefined) return { digest: null, tables: [], uncheckedDatasets: [] };
  const owners = [...new Set(manifest.files.flatMap((f) => f.datasets))].sort();
  const tables: StagedTableChecks[] = [];
  const uncheckedDatasets: string[] = [];
  for (const dataset of owners) {
    const checks: DatasetDisclosure | null = manifest.datasets?.[dataset]?.disclosure ?? null;
    if (checks === null) {
      uncheckedDatasets.push(dataset);
      continue;
    }
    for (const disclosure of checks.tables) {
      tables.push({ dataset, table: disclosure.table, thresholds: checks.thresholds, disclosure });
    }
  }
  return { digest: stagingDigest(manifest), tables, uncheckedDatasets };
}

/** The bag's tag file that records the disclosure pre-checks and the thresholds applied. */
export const DISCLOSURE_TAG_FILE = "disclosure-checks.json";

/**
 * The text of {@link DISCLOSURE_TAG_FILE}: every staged dataset (by schema name, sorted) with the
 * thresholds applied and each table's statistics, or `"checks": null` where it has none. No time is in
 * it, so publishing the same staging writes the same bytes.
 *
 * @returns `undefined` when no dataset has checks (the bag then has no such file).
 */
export function disclosureTagText(manifest: StagingManifest): string | undefined {
  const owners = [...new Set(manifest.files.flatMap((f) => f.datasets))].sort();
  const datasets = owners.map((dataset) => ({
    dataset,
    checks: manifest.datasets?.[dataset]?.disclosure ?? null,
  }));
  if (datasets.every((d) => d.checks === null)) return undefined;
  return JSON.stringify({ version: 1, datasets }, null, 2) + "\n";
}

/**
 * One staged dataset as the verified staging manifest records it (for the PostgreSQL destination: as its
 * registry records the load), for the release's provenance.
 */
export interface StagedDatasetContent {
  readonly schema_name: string;
  /** The released tables; empty when the stage predates their recording. */
  readonly tables: readonly StagedTable[];
  readonly disclosure: DatasetDisclosure | null;
}

/**
 * What a publish copies into the bag, from the verified staging manifest; for the PostgreSQL destination
 * no files, and the datasets its registry records.
 */
export interface StagedContent {
  /** The payload files, sorted by path. */
  readonly files: readonly {
    readonly path: string;
    readonly bytes: number;
    readonly sha512: string;
  }[];
  /** Every dataset owning a file, sorted by schema name. */
  readonly datasets: readonly StagedDatasetContent[];
}

/** What `manifest` stages, as a release's provenance needs it. */
export function stagedContent(manifest: StagingManifest): StagedContent {
  const owners = [...new Set(manifest.files.flatMap((f) => f.datasets))].sort();
  return {
    files: manifest.files.map(({ path, bytes, sha512 }) => ({ path, bytes, sha512 })),
    datasets: owners.map((schema_name) => ({
      schema_name,
      tables: manifest.datasets?.[schema_name]?.tables ?? [],
      disclosure: manifest.datasets?.[schema_name]?.disclosure ?? null,
    })),
  };
}
