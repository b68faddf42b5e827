import assert from "node:assert/strict";
import { DataContractTransferRequest } from "../../domain/contract.ts";
import { TRANSFER_REQUEST_EXAMPLE } from "./examples.ts";

Deno.test("the OpenAPI documents' transfer request example is a valid request", () => {
  const parsed = DataContractTransferRequest.safeParse(TRANSFER_REQUEST_EXAMPLE);
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
});
