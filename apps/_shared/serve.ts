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
  /** How long a shutdown lets requests in flight finish (`SHUTDOWN_GRACE_SECONDS`). */
  readonly shutdownGraceMs: number;
  /**
   * Cancels the requests still running when the grace period is over (by closing their database
   * connections), so that they fail down their normal error path and discard their partial work.
   */
  readonly abort?: () => Promise<void>;
  /** Releases what the service holds (connections), after the server stopped. */
  readonly close?: () => Promise<void>;
}

/** How long cancelled requests get to clean up before the process exits anyway. */
export const CLEANUP_MS = 10_000;

/** Resolves to `false` after `ms`, unless cancelled first. */
function timeout(ms: number): { expired: Promise<false>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return { expired, cancel: () => clearTimeout(timer) };
}

/**
 * Builds a service and serves it until SIGINT or SIGTERM. Then it stops accepting connections, lets the
 * requests in flight finish for the service's grace period, cancels those still running (see
 * {@link RunnableService.abort}) and gives them {@link CLEANUP_MS} to clean up before exiting anyway. A
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
  const stopped = Promise.withResolvers<void>();
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { grace_seconds: service.shutdownGraceMs / 1000 });
    const drained = server.shutdown().then(() => true as const);
    const grace = timeout(service.shutdownGraceMs);
    const inTime = await Promise.race([drained, grace.expired]);
    grace.cancel();
    if (!inTime) {
      log.warn("grace_period_over", { action: "cancelling the requests still running" });
      await service.abort?.();
      const cleanup = timeout(CLEANUP_MS);
      const cleaned = await Promise.race([drained, cleanup.expired]);
      cleanup.cancel();
      if (!cleaned) {
        log.error("shutdown_forced", { reason: "requests did not end after cancelling" });
        await service.close?.().catch(() => {});
        Deno.exit(1);
      }
    }
    await service.close?.();
    log.info("stopped");
    stopped.resolve();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void stop());
  }
  await stopped.promise;
}
