import assert from "node:assert/strict";
import { join } from "node:path";
import { fileRegistryContract } from "../../tests/contracts/file_registry_contract.ts";
import { FileRegistryUnavailableError } from "../../ports/file_registry.ts";
import { openSqliteFileRegistry } from "./sqlite_file_registry.ts";

Deno.test("SqliteFileRegistry passes the FileRegistry contract", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    let n = 0;
    await fileRegistryContract(t, async () => {
      const path = join(dir, `registry-${n++}.sqlite`);
      return {
        registry: await openSqliteFileRegistry({ path }),
        reopen: () => openSqliteFileRegistry({ path }),
      };
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a closed SqliteFileRegistry is unavailable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const registry = await openSqliteFileRegistry({ path: join(dir, "r.sqlite") });
    await registry.close();
    await assert.rejects(registry.records("weekly"), FileRegistryUnavailableError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
