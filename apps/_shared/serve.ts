/**
 * Starting and stopping a service process: the only code that listens on a port or exits.
 *
 * @module
 */
import { ConfigError } from "./app_errors.ts";
import type { Logger } from "./log.ts";

/** A built service, ready to listen. */
export interface RunnableService {
  readonly fetch: (request: Request) => Response | Promise<Response>;
  readonly port: number;
  /** Releases what the service holds (connections), after the server stopped. */
  readonly close?: () => Promise<void>;
}

/**
 * Builds a service and serves it until SIGINT or SIGTERM, then drains in-flight requests. A
 * {@link ConfigError} while building is logged and ends the process with exit code 1.
 */
export async function runService(
  log: Logger,
  build: () => Promise<RunnableService>,
  hostname = "0.0.0.0",
): Promise<void> {
  let service: RunnableService;
  try {
    service = await build();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    log.error("startup_failed", { message: e.message });
    Deno.exit(1);
  }
  const server = Deno.serve({
    hostname,
    port: service.port,
    onListen: ({ port }) => log.info("listening", { port }),
  }, service.fetch);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info("stopping");
    await server.shutdown();
    await service.close?.();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void stop());
  }
  await server.finished;
}
