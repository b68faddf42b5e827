/**
 * A release signer and provenance for tests: an Ed25519 key held in a memory secret store, and a
 * provenance that takes the staged files and datasets as the destination verified them.
 *
 * @module
 */
import {
  Ed25519ReleaseSigner,
  generateReleaseKey,
} from "../../adapters/crypto/ed25519_release_signer.ts";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import type { ReleaseProvenance } from "../../domain/provenance.ts";
import type { ReleaseSigning } from "../../domain/release_signing.ts";
import type { StagedContent } from "../../domain/staging_manifest.ts";
import type { RunRef } from "../../domain/staging_layout.ts";

/** The secret name the test signer reads its key from. */
export const TEST_RELEASE_KEY_SECRET = "release-signing-key";

/** A signer over a fresh key in a memory secret store. */
export async function testReleaseSigner(): Promise<Ed25519ReleaseSigner> {
  const { privateJwk } = await generateReleaseKey();
  return new Ed25519ReleaseSigner({
    secrets: new MemorySecretStore({ [TEST_RELEASE_KEY_SECRET]: JSON.stringify(privateJwk) }),
    keySecretName: TEST_RELEASE_KEY_SECRET,
  });
}

/** A provenance for `run` on filestore `destination`, completed with what was staged. */
export function testProvenance(
  run: RunRef,
  staged: StagedContent,
  releaseId: string | null = "rel-test",
  destination = "LSC",
): ReleaseProvenance {
  const at = "2025-06-11T09:30:00.000Z";
  return {
    release_id: releaseId,
    project_name: run.project,
    project_start_time: run.startTime,
    license: { id: "CC-BY-4.0", name: "CC-BY-4.0" },
    service: { name: "cr8tor-publisher-ts", version: "test" },
    destination: { type: "filestore", name: destination, format: "csv" },
    source: null,
    datasets: staged.datasets.map((d) => ({ ...d, name: null, description: null })),
    files: staged.files,
    destination_tables: [],
    packages: [],
    publish: {
      run_id: "run-test",
      agent: { kind: "system", id: "test" },
      started_at: at,
      ended_at: at,
      status: "completed",
    },
    decisions: [],
    disclosure_thresholds: null,
  };
}

/** A {@link ReleaseSigning} for `run` with `signer`; `seen` collects what the destination staged. */
export function testReleaseSigning(
  run: RunRef,
  signer: Ed25519ReleaseSigner,
  seen: StagedContent[] = [],
): ReleaseSigning {
  return {
    provenance: (staged) => {
      seen.push(staged);
      return testProvenance(run, staged);
    },
    sign: (claims) => signer.sign(claims),
  };
}
