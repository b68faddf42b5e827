import { releaseStoreContract } from "../../tests/contracts/release_store_contract.ts";
import { type MemoryReleaseStorage, MemoryReleaseStore } from "./memory_release_store.ts";

Deno.test("MemoryReleaseStore passes the ReleaseStore contract", async (t) => {
  await releaseStoreContract(t, () => {
    const storage: MemoryReleaseStorage = new Map();
    return Promise.resolve({
      store: new MemoryReleaseStore(storage),
      reopen: () => Promise.resolve(new MemoryReleaseStore(storage)),
    });
  });
});
