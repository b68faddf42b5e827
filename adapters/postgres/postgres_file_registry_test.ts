import { fileRegistryContract } from "../../tests/contracts/file_registry_contract.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import {
  postgresStoreOptions,
  withStoreSchemas,
} from "../../tests/support/postgres_store_tests.ts";
import { openPostgresFileRegistry } from "./postgres_file_registry.ts";

Deno.test({
  name: "PostgresFileRegistry passes the FileRegistry contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withStoreSchemas("files_test", async (schema) => {
      await fileRegistryContract(t, async () => {
        const options = postgresStoreOptions(schema());
        return {
          registry: await openPostgresFileRegistry(options),
          reopen: () => openPostgresFileRegistry(options),
        };
      });
    });
  },
});
