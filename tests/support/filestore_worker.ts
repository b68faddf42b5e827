/**
 * A child process for crash tests: stages or publishes one run with LocalFilestore, printing `started` just
 * before the operation, so the test can kill it with SIGKILL at a chosen moment. A publish signs its release
 * ({@link crashRelease}).
 *
 * Usage: deno run -A filestore_worker.ts <base> <stage|publish> [content-tag] [megabytes]
 */
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { writeFiles } from "../contracts/filestore_contract.ts";
import { TEST_MANIFEST_KEY } from "./manifest_key.ts";
import { Ed25519ReleaseSigner } from "../../adapters/crypto/ed25519_release_signer.ts";
import type { ReleaseSigning } from "../../domain/release_signing.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import { testReleaseSigning } from "./release_signing.ts";

const [base = "", mode = "", tag = "v", megabytes = "8"] = Deno.args;
const run = { project: "Crash", startTime: "20250611_093000" };
const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });

/**
 * The release every crash publish signs: its key generated once in `${base}/release-signing-key.jwk`
 * (outside staging and production), so the test and every worker sign with the same key.
 */
export function crashRelease(base: string, run: RunRef): {
  signer: Ed25519ReleaseSigner;
  release: ReleaseSigning;
} {
  const signer = new Ed25519ReleaseSigner({ generatedKeyFile: `${base}/release-signing-key.jwk` });
  return { signer, release: testReleaseSigning(run, signer) };
}

/** Three files of the given size, their content depending on the tag. */
export function crashPayload(tag: string, megabytes: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of ["a", "b", "c"]) {
    files[`data/outputs/crash/${name}.csv`] = `${tag}-${name}\n`.repeat(
      Math.ceil((megabytes << 20) / 8),
    );
  }
  return files;
}

if (import.meta.main) {
  const encoder = new TextEncoder();
  Deno.stdout.writeSync(encoder.encode("started\n"));
  if (mode === "stage") {
    await store.stage(run, "crash", writeFiles(crashPayload(tag, Number(megabytes))));
  } else await store.publish(run, crashRelease(base, run).release);
  Deno.stdout.writeSync(encoder.encode("done\n"));
}
