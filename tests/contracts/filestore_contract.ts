/**
 * The contract every Filestore adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Filestore, FilestoreNotReadyError } from "../../ports/filestore.ts";

/** A filestore under test, plus a way to break it the way the adapter can break. */
export interface FilestoreUnderTest {
  readonly filestore: Filestore;
  /** Makes the given area unusable. */
  breakArea(area: "staging" | "production"): Promise<void>;
  cleanup(): Promise<void>;
}

/** Runs the Filestore contract. */
export async function filestoreContract(
  t: Deno.TestContext,
  make: () => Promise<FilestoreUnderTest>,
): Promise<void> {
  await t.step("checkReady() resolves when staging and production are usable", async () => {
    const it = await make();
    try {
      await it.filestore.checkReady();
    } finally {
      await it.cleanup();
    }
  });

  for (const area of ["staging", "production"] as const) {
    await t.step(`checkReady() names the ${area} area when it is unusable`, async () => {
      const it = await make();
      try {
        await it.breakArea(area);
        const error = await it.filestore.checkReady().catch((e: Error) => e);
        assert.ok(error instanceof FilestoreNotReadyError);
        assert.match(error.message, new RegExp(`\\b${area}\\b`));
      } finally {
        await it.cleanup();
      }
    });
  }
}
