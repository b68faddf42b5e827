/**
 * Readiness checks shared by the services.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import type { ReadinessCheck } from "./create_app.ts";

/** Checks that the secrets directory can be listed; the check's detail never names the path. */
export async function secretsDirectoryCheck(directory: string): Promise<ReadinessCheck> {
  try {
    await readdir(directory);
    return { name: "secrets", ok: true };
  } catch {
    return { name: "secrets", ok: false, detail: "the secrets directory cannot be read" };
  }
}
