import { filestoreContract } from "../../tests/contracts/filestore_contract.ts";
import { MemoryFilestore } from "./memory_filestore.ts";

Deno.test("MemoryFilestore passes the Filestore contract", async (t) => {
  await filestoreContract(t, () => {
    const filestore = new MemoryFilestore();
    return Promise.resolve({
      filestore,
      breakArea: (area) =>
        Promise.resolve(filestore.setProblem(`Cannot use the ${area} area: broken`)),
      cleanup: () => Promise.resolve(),
    });
  });
});
