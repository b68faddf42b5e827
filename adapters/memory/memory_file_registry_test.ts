import { fileRegistryContract } from "../../tests/contracts/file_registry_contract.ts";
import { MemoryFileRegistry } from "./memory_file_registry.ts";

Deno.test("MemoryFileRegistry passes the FileRegistry contract", async (t) => {
  await fileRegistryContract(t, () => Promise.resolve({ registry: new MemoryFileRegistry() }));
});
