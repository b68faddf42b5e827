/**
 * Runs the three services in one process for local use (`deno task start`): approval on 8000, metadata on
 * 8002, publish on 8003, with the gateway pointed at the other two on localhost. Production runs each
 * service on its own (`deno task start:<service>`, the compiled binaries, or the containers).
 *
 * @module
 */
import { buildApprovalService } from "./approval/main.ts";
import { createLogger } from "./_shared/log.ts";
import { runService } from "./_shared/serve.ts";
import { buildMetadataService } from "./metadata/main.ts";
import { buildPublishService } from "./publish/main.ts";

const env = Deno.env.toObject();
const withoutPort = { ...env, PORT: undefined };
await Promise.all([
  runService(createLogger("metadata"), () => Promise.resolve(buildMetadataService(withoutPort))),
  runService(createLogger("publish"), () => Promise.resolve(buildPublishService(withoutPort))),
  runService(createLogger("approval"), () =>
    Promise.resolve(buildApprovalService({
      METADATA_CONTAINER_NAME: "localhost",
      PUBLISH_CONTAINER_NAME: "localhost",
      ...withoutPort,
    }))),
]);
