/**
 * The metadata service's routes, declared as data.
 *
 * @module
 */
import { TRANSFER_REQUEST_EXAMPLE } from "../_shared/examples.ts";
import { createRoute } from "@hono/zod-openapi";
import { DataContractTransferRequest, DatasetMetadataPayload } from "../../domain/contract.ts";
import { API_KEY_SECURITY, errorResponses } from "../_shared/create_app.ts";
import { openApiComponent, successEnvelope } from "../_shared/envelope.ts";

/** `POST /metadata/project`: describe the requested tables and columns of one schema. */
export const projectMetadata = createRoute({
  method: "post",
  path: "/metadata/project",
  summary: "Describe the dataset's tables and columns (names, types, descriptions; never row data)",
  tags: ["metadata"],
  security: API_KEY_SECURITY,
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: openApiComponent(
            DataContractTransferRequest,
            "DataContractTransferRequest",
            TRANSFER_REQUEST_EXAMPLE,
          ),
        },
      },
    },
  },
  responses: {
    200: {
      description: "The dataset's metadata",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(DatasetMetadataPayload, "DatasetMetadata")),
        },
      },
    },
    ...errorResponses(404, 501, 502),
  },
});
