/**
 * Release provenance and published bags for tests of the RO-Crate and `verify-release`: a provenance of
 * each destination kind, and a bag laid out exactly as the filestore publishes one (payload under
 * `data/outputs/`, `bagit.txt`, `bag-info.txt`, `manifest-sha512.txt`, `ro-crate-metadata.json`,
 * `tagmanifest-sha512.txt` listing the four tag files, and `release-receipt.jws`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { bagInfoText, BAGIT_TXT, manifestText } from "../../domain/bagit.ts";
import type { Decision } from "../../domain/release.ts";
import type { ProvenanceFile, ReleaseProvenance } from "../../domain/provenance.ts";
import { releaseCrateText } from "../../domain/release_crate.ts";
import {
  CRATE_TAG_FILE,
  publicReleaseKey,
  RECEIPT_TAG_FILE,
  signReceipt,
} from "../../domain/release_receipt.ts";

/** Lower-case hex SHA-512 of bytes or UTF-8 text. */
export function sha512Hex(data: Uint8Array | string): string {
  return createHash("sha512").update(data).digest("hex");
}

/** A decision of the given kind by a person, at a time. */
export function decision(
  kind: Decision["decision"],
  overrides: Partial<Decision> = {},
): Decision {
  return {
    id: `d-${kind}`,
    gate: "release",
    approval_type: "data_steward",
    decision: kind,
    person: { id: "u-42", issuer: "https://idp.example.org/", name: "Ada Steward" },
    at: "2026-12-06T09:30:00.000Z",
    comment_sha256: null,
    manifest_digest: "sha512-staging-digest",
    ...overrides,
  };
}

/** The payload of a CSV or DuckDB filestore release (path → bytes). */
export function payloadOf(format: "csv" | "duckdb"): Record<string, Uint8Array> {
  const text = (s: string) => new TextEncoder().encode(s);
  return format === "csv"
    ? {
      "data/outputs/cohort/people.csv": text("id,age\n1,34\n2,51\n"),
      "data/outputs/cohort/visits.csv": text("id,person_id,day\n10,1,2025-01-02\n"),
    }
    : { "data/outputs/database.duckdb": Uint8Array.from({ length: 4096 }, (_, i) => i % 251) };
}

/** The provenance files of a payload. */
export function filesOf(payload: Record<string, Uint8Array>): ProvenanceFile[] {
  return Object.entries(payload).map(([path, bytes]) => ({
    path,
    bytes: bytes.length,
    sha512: sha512Hex(bytes),
  }));
}

/** A complete provenance: a filestore release by default, with overrides on top. */
export function provenance(overrides: Partial<ReleaseProvenance> = {}): ReleaseProvenance {
  return {
    release_id: "3f1c0a5e-0000-4000-8000-000000000001",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    license: { id: "CC-BY-4.0", name: "Creative Commons Attribution 4.0 International" },
    service: { name: "cr8tor-publish", version: "1.4.0" },
    destination: { type: "filestore", name: "LSC", format: "csv" },
    source: { engine: "postgresql", host: "db.internal", port: 5432, database: "warehouse" },
    datasets: [{
      schema_name: "cohort",
      name: "Cohort study",
      description: "People and their visits",
      tables: [
        {
          name: "people",
          description: "One row per person",
          columns: [
            { name: "id", datatype: "integer", description: "Person id" },
            { name: "age", datatype: "smallint", description: null },
          ],
        },
        {
          name: "visits",
          description: null,
          columns: [
            { name: "id", datatype: "integer", description: null },
            { name: "person_id", datatype: "integer", description: null },
            { name: "day", datatype: "date", description: "Day of the visit" },
          ],
        },
      ],
      disclosure: {
        thresholds: {
          small_cell_threshold: 10,
          distinct_exact_cap: 10_000,
          category_cap: 50,
          category_label_max_chars: 200,
        },
        tables: [{
          table: "people",
          rows: 2,
          columns: [{
            name: "age",
            kind: "integer",
            nulls: 0,
            distinct: { value: 2, estimate: false },
            min: "34",
            max: "51",
            categories: null,
            small_categories: 3,
          }],
        }],
      },
    }],
    files: filesOf(payloadOf("csv")),
    destination_tables: [],
    packages: [{
      run_id: "run-package-1",
      agent: { kind: "key", id: "ci-key" },
      started_at: "2026-12-06T09:00:00.000Z",
      ended_at: "2026-12-06T09:05:00.000Z",
      status: "completed",
    }],
    publish: {
      run_id: "run-publish-1",
      agent: { kind: "person", id: "u-7", issuer: "https://idp.example.org/" },
      started_at: "2026-12-06T10:00:00.000Z",
      ended_at: "2026-12-06T10:00:05.000Z",
      status: "completed",
    },
    decisions: [decision("approve")],
    disclosure_thresholds: {
      small_cell_threshold: 10,
      distinct_exact_cap: 10_000,
      category_cap: 50,
      category_label_max_chars: 200,
    },
    ...overrides,
  };
}

/** A new Ed25519 signing key pair (extractable, for its public JWK). */
export async function newReleaseKey(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
}

/**
 * Writes a published bag into `dir` as the filestore does and signs its receipt with `signingKey`.
 *
 * @returns the bag's provenance.
 */
export async function writeReleaseBag(
  dir: string,
  format: "csv" | "duckdb",
  signingKey: CryptoKeyPair,
): Promise<ReleaseProvenance> {
  const payload = payloadOf(format);
  const files = filesOf(payload);
  const p = provenance({ destination: { type: "filestore", name: "LSC", format }, files });
  for (const [path, bytes] of Object.entries(payload)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  const tags: Record<string, string> = {
    "bagit.txt": BAGIT_TXT,
    "bag-info.txt": bagInfoText({
      baggingDate: "2026-12-06",
      payloadBytes: files.reduce((sum, f) => sum + f.bytes, 0),
      payloadFiles: files.length,
      externalIdentifier: `${p.project_name}/${p.project_start_time}`,
      softwareAgent: "cr8tor-publish 1.4.0",
    }),
    "manifest-sha512.txt": manifestText(files),
    [CRATE_TAG_FILE]: releaseCrateText(p),
  };
  for (const [name, text] of Object.entries(tags)) await writeFile(join(dir, name), text);
  const tagManifest = manifestText(
    Object.entries(tags).map(([path, text]) => ({ path, sha512: sha512Hex(text) })),
  );
  await writeFile(join(dir, "tagmanifest-sha512.txt"), tagManifest);
  const jws = await signReceipt({
    receipt_version: 1,
    release_id: p.release_id,
    project_name: p.project_name,
    project_start_time: p.project_start_time,
    destination: { type: "filestore", name: p.destination.name },
    subject: { kind: "bagit-tagmanifest-sha512", sha512: sha512Hex(tagManifest) },
    signed_at: "2026-12-06T10:00:05.000Z",
    kid: (await publicReleaseKey(signingKey.publicKey)).kid,
  }, signingKey.privateKey);
  await writeFile(join(dir, RECEIPT_TAG_FILE), `${jws}\n`);
  return p;
}
