/**
 * The publish service's routes, declared as data.
 *
 * @module
 */
import { createRoute } from "@hono/zod-openapi";
import {
  DataContractPublishRequest,
  DataContractSourceAccessRequest,
  DataContractTransferRequest,
  PublishPayload,
  StageTransferPayload,
  ValidationPayload,
} from "../../domain/contract.ts";
import { API_KEY_SECURITY, errorResponses } from "../_shared/create_app.ts";
import { openApiComponent, successEnvelope } from "../_shared/envelope.ts";

function jsonBody<T>(schema: T) {
  return { body: { required: true, content: { "application/json": { schema } } } };
}

/** `POST /data-publish/validate`: check the destination and connect to the source. */
export const validateRoute = createRoute({
  method: "post",
  path: "/data-publish/validate",
  summary: "Check that the destination is usable and the source accepts the credentials",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(
    openApiComponent(DataContractSourceAccessRequest, "DataContractSourceAccessRequest"),
  ),
  responses: {
    200: {
      description: "Destination and source are usable",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(ValidationPayload, "ValidationPayload")),
        },
      },
    },
    ...errorResponses(404, 501, 502),
  },
});

/** `POST /data-publish/package`: extract the approved tables into staging. */
export const packageRoute = createRoute({
  method: "post",
  path: "/data-publish/package",
  summary: "Extract the approved tables and columns into staging",
  tags: ["publish"],
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
    ...errorResponses(404, 409, 501, 502),
  },
});

/** `POST /data-publish/publish`: move staging into production with checksums. */
export const publishRoute = createRoute({
  method: "post",
  path: "/data-publish/publish",
  summary: "Publish the project's staging to production with SHA-512 checksums",
  tags: ["publish"],
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
    ...errorResponses(404, 409, 501, 502),
  },
});
