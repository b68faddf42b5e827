import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { filestoreContract } from "../../tests/contracts/filestore_contract.ts";
import { FilestoreNotReadyError } from "../../ports/filestore.ts";
import { LocalFilestore } from "./local_filestore.ts";

async function makeBase(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "cr8tor-filestore-"));
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  return base;
}

Deno.test("LocalFilestore passes the Filestore contract", async (t) => {
  await filestoreContract(t, async () => {
    const base = await makeBase();
    return {
      filestore: new LocalFilestore(base),
      breakArea: async (area) => {
        await rm(join(base, area), { recursive: true });
      },
      cleanup: () => rm(base, { recursive: true, force: true }),
    };
  });
});

Deno.test("LocalFilestore checkReady() specifics", async (t) => {
  const base = await makeBase();
  try {
    await t.step("refuses a file where the staging directory should be", async () => {
      await rm(join(base, "staging"), { recursive: true });
      await writeFile(join(base, "staging"), "");
      const error = await new LocalFilestore(base).checkReady().catch((e: Error) => e);
      assert.ok(error instanceof FilestoreNotReadyError);
      assert.equal(error.message, "Cannot use the staging area: it is not a directory");
    });
    await t.step("never names the mount path", async () => {
      const error = await new LocalFilestore(join(base, "missing")).checkReady().catch((e: Error) =>
        e
      );
      assert.ok(error instanceof FilestoreNotReadyError);
      assert.ok(!error.message.includes(base));
    });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
