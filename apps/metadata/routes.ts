/**
 * The metadata service's routes, declared as data.
 *
 * @module
 */
import { TransferRequestComponent } from "../_shared/examples.ts";
import { createRoute } from "@hono/zod-openapi";
import { DatasetMetadataPayload } from "../../domain/contract.ts";
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
          schema: TransferRequestComponent,
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
