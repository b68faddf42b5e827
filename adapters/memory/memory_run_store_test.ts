import { runStoreContract } from "../../tests/contracts/run_store_contract.ts";
import { MemoryRunStore } from "./memory_run_store.ts";

Deno.test("MemoryRunStore passes the RunStore contract", async (t) => {
  await runStoreContract(t, () => Promise.resolve({ store: new MemoryRunStore() }));
});
