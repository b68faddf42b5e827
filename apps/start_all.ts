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

/** Serves all three services on their default ports until SIGINT or SIGTERM. */
export async function runAllServices(env: Record<string, string | undefined>): Promise<void> {
  const shared: Record<string, string | undefined> = {
    METADATA_CONTAINER_NAME: "localhost",
    PUBLISH_CONTAINER_NAME: "localhost",
    ...env,
    PORT: undefined,
  };
  await Promise.all([
    runService(createLogger("metadata"), () => buildMetadataService(shared)),
    runService(createLogger("publish"), () => buildPublishService(shared)),
    runService(createLogger("approval"), () => buildApprovalService(shared)),
  ]);
}

if (import.meta.main) {
  await runAllServices(Deno.env.toObject());
  Deno.exit(0);
}
