import assert from "node:assert/strict";
import { destinationDatabaseContract } from "../../tests/contracts/destination_database_contract.ts";
import {
  DestinationConnectionError,
  DestinationUnavailableError,
} from "../../ports/destination_database.ts";
import { MemoryDestinationDatabase } from "./memory_destination_database.ts";

Deno.test("MemoryDestinationDatabase passes the DestinationDatabase contract", async (t) => {
  await destinationDatabaseContract(t, () => {
    const database = new MemoryDestinationDatabase();
    return Promise.resolve({
      database,
      schemas: () => Promise.resolve(database.schemas()),
      rows: (table) => Promise.resolve(database.rows(table)?.map((row) => [...row])),
      readableTables: () => Promise.resolve(database.readableTables()),
      addForeignSchema: (name) => Promise.resolve(database.addForeignSchema(name)),
      cleanup: () => Promise.resolve(),
    });
  });
});

Deno.test("MemoryDestinationDatabase breakConnection() fails every later call as a connection failure", async () => {
  await using database = new MemoryDestinationDatabase();
  await database.checkReady();
  database.breakConnection();
  await assert.rejects(database.checkReady(), DestinationConnectionError);
  await assert.rejects(
    database.packagedTables({ project: "p", startTime: "20250101_000000" }),
    DestinationConnectionError,
  );
});

Deno.test("MemoryDestinationDatabase reopen() shares the database, not the closed state", async () => {
  const first = new MemoryDestinationDatabase();
  first.addForeignSchema("dba_notes");
  await first.close();
  await using second = first.reopen();
  await second.checkReady();
  assert.deepEqual(second.schemas(), ["dba_notes"]);
  await assert.rejects(first.checkReady(), DestinationUnavailableError);
  second.breakConnection();
  await assert.rejects(first.reopen().checkReady(), DestinationConnectionError);
});
