/**
 * The staging manifest: which files a run has staged, their SHA-512 and size as computed while writing,
 * and which datasets (schemas) own them. Publishing verifies every copied file against it.
 *
 * @module
 */
import { z } from "zod";
import { isPayloadPath } from "./staging_layout.ts";

const Entry = z.object({
  path: z.string().refine(isPayloadPath, { error: "must be a path under data/outputs/" }),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
  bytes: z.number().int().nonnegative(),
  datasets: z.array(z.string()).min(1),
  /** Set when the CSV file was written with the opt-in formula escape: the prefix it used. */
  csvFormulaPrefix: z.string().min(1).optional(),
});

/** The manifest file's schema (version 1). */
export const StagingManifest = z.object({
  version: z.literal(1),
  files: z.array(Entry),
});

export type StagingManifest = z.infer<typeof StagingManifest>;
export type StagingEntry = z.infer<typeof Entry>;

/** A file a dataset has just staged. */
export interface NewFile {
  readonly path: string;
  readonly sha512: string;
  readonly bytes: number;
  readonly csvFormulaPrefix?: string;
}

/** An empty manifest. */
export function emptyManifest(): StagingManifest {
  return { version: 1, files: [] };
}

/**
 * Records that `dataset` now has exactly `files`. Files the dataset alone owned before and no longer has are
 * returned in `removed`; files shared with other datasets (the DuckDB database) stay owned by the others.
 */
export function replaceDataset(
  manifest: StagingManifest,
  dataset: string,
  files: readonly NewFile[],
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
  return { manifest: { version: 1, files: kept }, removed };
}
