import { MemoryReleaseReader } from "./memory_release_reader.ts";
import { releaseReaderContract } from "../../tests/contracts/release_reader_contract.ts";
import { DATASET } from "../../tests/contracts/release_reader_contract.ts";

Deno.test("MemoryReleaseReader passes the release reader contract", async (t) => {
  await releaseReaderContract(t, () => {
    const reader = new MemoryReleaseReader();
    const run = { project: "demo_project", startTime: "20260101_120000" };
    return Promise.resolve({
      reader,
      run,
      publish: (tables) => {
        reader.publish(
          run,
          tables.map(({ table, rows }) => ({
            table: {
              name: table.name,
              dataset: DATASET,
              key: table.primaryKey,
              columns: table.columns.map((c) => ({
                name: c.name,
                type: c.dataType,
                description: c.description,
              })),
            },
            rows,
          })),
        );
        return Promise.resolve();
      },
      revoke: () => Promise.resolve(reader.revoke(run)),
      pagesByKey: true,
      describesColumns: true,
      cleanup: () => Promise.resolve(),
    });
  });
});
