/**
 * The gateway's routes, declared as data. Bodies are validated with the same schemas the sub-services use,
 * then forwarded unchanged.
 *
 * @module
 */
import { createRoute } from "@hono/zod-openapi";
import {
  DataContractPublishRequest,
  DataContractTransferRequest,
  DatasetMetadataPayload,
  PublishPayload,
  StageTransferPayload,
} from "../../domain/contract.ts";
import { API_KEY_SECURITY, errorResponses } from "../_shared/create_app.ts";
import { openApiComponent, successEnvelope } from "../_shared/envelope.ts";

function jsonBody<T>(schema: T) {
  return { body: { required: true, content: { "application/json": { schema } } } };
}

const GATEWAY_ERRORS = errorResponses(404, 409, 501, 502, 504);

/** `POST /project/validate`: publish validate, then metadata; returns the metadata. */
export const validateProject = createRoute({
  method: "post",
  path: "/project/validate",
  summary: "Validate the destination and source, then return the dataset's metadata",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(DataContractTransferRequest, "DataContractTransferRequest")),
  responses: {
    200: {
      description: "The dataset's metadata",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(DatasetMetadataPayload, "DatasetMetadata")),
        },
      },
    },
    ...GATEWAY_ERRORS,
  },
});

/** `POST /project/package`: forwards to the publish service's package. */
export const packageProject = createRoute({
  method: "post",
  path: "/project/package",
  summary: "Stage the approved tables (forwarded to the publish service)",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(DataContractTransferRequest, "DataContractTransferRequest")),
  responses: {
    200: {
      description: "What was staged",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(StageTransferPayload, "StageTransferPayload")),
        },
      },
    },
    ...GATEWAY_ERRORS,
  },
});

/** `POST /project/publish`: forwards to the publish service's publish. */
export const publishProject = createRoute({
  method: "post",
  path: "/project/publish",
  summary: "Publish staging to production (forwarded to the publish service)",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(DataContractPublishRequest, "DataContractPublishRequest")),
  responses: {
    200: {
      description: "What was published",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(PublishPayload, "PublishPayload")),
        },
      },
    },
    ...GATEWAY_ERRORS,
  },
});
