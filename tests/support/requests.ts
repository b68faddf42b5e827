/**
 * Request builders for tests: valid bodies as the CR8TOR CLI sends them, with overrides.
 *
 * @module
 */

import { DataContractTransferRequest } from "../../domain/contract.ts";

type Json = Record<string, unknown>;

/** A valid `DataContractTransferRequest` for a PostgreSQL source and a CSV filestore destination. */
export function aTransferRequest(overrides: Json = {}): Json {
  return {
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "csv" },
    extract_config: { backend_engine: "pyarrow" },
    source: {
      type: "postgresql",
      host_url: "db.internal",
      port: 5432,
      database: "research",
      credentials: {
        provider: "AzureKeyVault",
        username_key: "sourceuser",
        password_key: "sourcepassword",
      },
    },
    dataset: {
      name: "oncology_extract",
      schema_name: "oncology",
      description: "Tumour staging extract",
      tables: [{ name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "stage_label" }] }],
      staging_path: null,
      publish_path: null,
    },
    ...overrides,
  };
}

/**
 * {@link aTransferRequest} asking for both ONCOLOGY tables (`tests/support/catalogs.ts`): `tumour_stage`
 * and `treatment_line`, parsed as the services parse it.
 */
export function aBothTablesTransfer(overrides: Json = {}): DataContractTransferRequest {
  const request = aTransferRequest(overrides);
  return DataContractTransferRequest.parse({
    ...request,
    dataset: {
      ...request.dataset as Json,
      tables: [
        { name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "stage_label" }] },
        { name: "treatment_line", columns: [{ name: "line_no" }] },
      ],
    },
  });
}

/** {@link aTransferRequest} with one column fewer: the same dataset, other staged bytes. */
export function aNarrowerTransferRequest(overrides: Json = {}): Json {
  const request = aTransferRequest(overrides);
  return {
    ...request,
    dataset: {
      ...request.dataset as Json,
      tables: [{ name: "tumour_stage", columns: [{ name: "stage_id" }] }],
    },
  };
}

/** A valid `DataContractPublishRequest`. */
export function aPublishRequest(overrides: Json = {}): Json {
  return {
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "csv" },
    ...overrides,
  };
}

/** A JSON POST request with an API key. */
export function postJson(
  path: string,
  body: unknown,
  apiKey: string,
  headers: Record<string, string> = {},
) {
  return new Request(`http://test.local${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": apiKey, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}
