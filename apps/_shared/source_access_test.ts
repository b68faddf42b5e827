import assert from "node:assert/strict";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import { DataContractTransferRequest } from "../../domain/contract.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../../tests/support/catalogs.ts";
import { aTransferRequest } from "../../tests/support/requests.ts";
import { OpenConnections } from "./open_connections.ts";
import { openSource, type SourceAccess } from "./source_access.ts";

function accessTo(db: MemorySourceDatabase): SourceAccess {
  const { source } = DataContractTransferRequest.parse(aTransferRequest());
  return {
    allowedSources: new AllowedSources([{
      type: "postgresql",
      host: source.host_url,
      port: source.port,
      database: "research",
      credentials: [{ username: "sourceuser", password: "sourcepassword" }],
    }]),
    secrets: new MemorySecretStore({ sourceuser: "reader", sourcepassword: "s3cret-pw" }),
    connections: new OpenConnections(),
    connectors: { postgresql: () => Promise.resolve(db) },
    connectTimeoutMs: 1000,
    statementTimeoutMs: 1000,
  };
}

Deno.test("openSource() keeps the source's row estimates (runs show percentages with them)", async () => {
  const db = new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS);
  const { source } = DataContractTransferRequest.parse(aTransferRequest());
  await using opened = await openSource(source, accessTo(db), "oncology");
  assert.ok(opened.estimateRows !== undefined, "estimateRows was dropped");
  assert.deepEqual(
    await opened.estimateRows("oncology", ["tumour_stage"]),
    await db.estimateRows!("oncology", ["tumour_stage"]),
  );
});
