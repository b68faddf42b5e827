/**
 * Request examples for the services' OpenAPI documents. Swagger UI fills "Try it out" with a schema's
 * example; without one it makes a body up from the schema's patterns, at random, and that body breaks
 * rules a pattern cannot say (a secret name generated with `..` in it), so the same click got a 422
 * now and then (tests/browser/docs_test.ts failed that way once in CI).
 *
 * @module
 */
import type { z } from "zod";
import { DataContractTransferRequest } from "../../domain/contract.ts";
import { openApiComponent } from "./envelope.ts";

/** A CLI request for one PostgreSQL table into CSV files (`examples_test.ts` checks it is valid). */
export const TRANSFER_REQUEST_EXAMPLE: z.input<typeof DataContractTransferRequest> = {
  project_name: "Pr004",
  project_start_time: "20250611_093000",
  destination: { type: "filestore", name: "LSC", format: "csv" },
  source: {
    type: "postgresql",
    host_url: "db.example.org",
    port: 5432,
    database: "clinical",
    credentials: {
      provider: "AzureKeyVault",
      username_key: "pg-user",
      password_key: "pg-password",
    },
  },
  extract_config: { backend_engine: "pyarrow" },
  dataset: {
    name: "Oncology visits",
    schema_name: "oncology",
    tables: [{ name: "visits", columns: [{ name: "visit_id" }, { name: "visit_date" }] }],
  },
};

/** The transfer request as every service's OpenAPI document names it, with its example. */
export const TransferRequestComponent = openApiComponent(
  DataContractTransferRequest,
  "DataContractTransferRequest",
  TRANSFER_REQUEST_EXAMPLE,
);
