import { secretStoreContract } from "../../tests/contracts/secret_store_contract.ts";
import { MemorySecretStore } from "./memory_secret_store.ts";

Deno.test("MemorySecretStore passes the SecretStore contract", async (t) => {
  await secretStoreContract(t, (values) => Promise.resolve(new MemorySecretStore(values)));
});
