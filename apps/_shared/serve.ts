/**
 * Starting and stopping a service process: the only code that listens on a port or exits.
 *
 * The services listen through `node:http`, not `Deno.serve`: `Deno.serve` (Deno 2.9) has no timeout for
 * reading a request's headers and none can be configured (denoland/deno#3515), so a client that trickles
 * its headers, or sends none, keeps its connection for ever; and after answering a request whose body it
 * did not read it keeps reading that body. `node:http` closes a connection whose headers are not complete
 * within `headersTimeout` (checked every {@link CONNECTION_CHECK_MS}), and {@link listen} closes every
 * connection whose request body was not read to its end once the reply is sent, after a bounded lingering
 * close ({@link LINGER_MS}, {@link LINGER_MAX_BYTES}), so a refused upload of any size costs little more.
 * Body timeouts are the body reader's (`apps/_shared/request_body.ts`).
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { ConfigError } from "./app_errors.ts";
import type { CommonConfig } from "./config.ts";
import type { Logger } from "./log.ts";

/** How often the server looks for connections whose headers are late. */
export const CONNECTION_CHECK_MS = 500;

/**
 * How long, and for how many more body bytes, a connection whose request body was not read to its end
 * stays open after its reply, discarding what the client still sends. A client that is still uploading
 * (a refused oversized body) can so finish sending and read the reply: closing at once would make its
 * kernel reset the connection and the client would see an error, not the reply. Bounded, so a slow or
 * endless sender cannot hold the connection.
 */
export const LINGER_MS = 2000;
/** See {@link LINGER_MS}. */
export const LINGER_MAX_BYTES = 8 * 1024 * 1024;

/** Where and how a service listens. */
export interface ListenOptions {
  /** `BIND_ADDRESS`. */
  readonly hostname: string;
  /** 0 for any free port. */
  readonly port: number;
  /** `HEADERS_TIMEOUT_SECONDS`, in ms. */
  readonly headersTimeoutMs: number;
}

/** The listening options {@link CommonConfig} sets, for a service on `port`. */
export function listenOptionsFrom(config: CommonConfig, port: number): ListenOptions {
  return {
    hostname: config.BIND_ADDRESS,
    port,
    headersTimeoutMs: config.HEADERS_TIMEOUT_SECONDS * 1000,
  };
}

/** A built service, ready to listen where its {@link ListenOptions} say. */
export interface RunnableService extends ListenOptions {
  readonly fetch: (request: Request) => Response | Promise<Response>;
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

/** A listening server. */
export interface HttpServer {
  /** The port it listens on. */
  readonly port: number;
  /**
   * Stops accepting connections, closes idle ones, answers the requests in flight with `Connection: close`
   * and resolves once every connection is closed.
   */
  shutdown(): Promise<void>;
}

/**
 * Serves `fetch` over HTTP/1.1 with `node:http`; see the module's documentation for the limits it applies.
 *
 * @returns the server, once it listens.
 */
export function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  options: ListenOptions,
): Promise<HttpServer> {
  let draining = false;
  // Requests in flight per connection: shutdown closes the connections that have none (idle keep-alive
  // ones, and ones still sending headers, which node:http stops timing once it is closed).
  const inFlight = new Map<Socket, number>();
  const server = createServer({
    headersTimeout: options.headersTimeoutMs,
    // Bodies are timed by the body reader; an unread body closes its connection after the reply.
    requestTimeout: 0,
    connectionsCheckingInterval: CONNECTION_CHECK_MS,
  }, (req, res) => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, left);
      if (draining && left === 0) socket.end();
    });
    void answer(fetch, req, res, () => draining);
  });
  server.on("connection", (socket: Socket) => {
    inFlight.set(socket, 0);
    socket.once("close", () => inFlight.delete(socket));
  });
  const closed = new Promise<void>((resolve) => server.once("close", () => resolve()));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        shutdown: async () => {
          draining = true;
          server.close();
          for (const [socket, requests] of inFlight) if (requests === 0) socket.destroy();
          await closed;
        },
      });
    });
  });
}

/** Answers one request: builds a `Request`, calls `fetch`, writes the `Response`. */
async function answer(
  fetch: (request: Request) => Response | Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
  draining: () => boolean,
): Promise<void> {
  const aborted = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) aborted.abort();
  });
  let response: Response;
  try {
    response = await fetch(toRequest(req, aborted.signal));
  } catch {
    // Only a request the Fetch API cannot represent (a bad header) gets here: the app catches the rest.
    response = new Response(null, { status: 400 });
  }
  // A connection whose request body was not read to its end is not reused: reading the rest would cost
  // time and bandwidth for a request already answered (a refused upload of any size).
  const close = draining() || !req.complete ||
    response.headers.get("connection")?.toLowerCase() === "close";
  res.statusCode = response.status;
  for (const [name, value] of response.headers) {
    if (name !== "connection") res.setHeader(name, value);
  }
  if (close) res.setHeader("connection", "close");
  if (!req.complete) lingerAfterReply(req);
  if (response.body === null) {
    res.end();
    return;
  }
  // An event stream's first event may come long after its headers: send them now, not with it.
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) res.flushHeaders();
  try {
    for await (const chunk of response.body) {
      if (res.destroyed) break;
      if (!res.write(chunk)) {
        await new Promise<void>((resolve) => {
          res.once("drain", resolve);
          res.once("close", resolve);
        });
      }
    }
  } catch {
    res.destroy();
    return;
  }
  res.end();
}

/**
 * A bounded lingering close for a request whose body was not read to its end. Once the reply is written,
 * `node:http` (Node's and Deno's) closes the connection with `socket.destroySoon()`; for this socket that
 * instead ends the sending side only (the client sees the end of the reply) and reads and discards the
 * rest of the body until it ends, the client closes, or {@link LINGER_MS} or {@link LINGER_MAX_BYTES} are
 * exceeded, and then closes the connection.
 */
function lingerAfterReply(req: IncomingMessage): void {
  const socket = req.socket;
  const destroySoon = socket.destroySoon.bind(socket);
  socket.destroySoon = () => {
    if (req.complete || req.destroyed) return destroySoon();
    let discarded = 0;
    const closeNow = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const closeOnceSent = () => {
      if (socket.writableFinished) closeNow();
      else socket.once("finish", closeNow);
    };
    const timer = setTimeout(closeNow, LINGER_MS);
    socket.once("close", () => clearTimeout(timer));
    socket.once("end", closeOnceSent);
    req.once("end", closeOnceSent);
    req.once("error", closeNow);
    req.on("data", (chunk: Uint8Array) => {
      discarded += chunk.byteLength;
      if (discarded > LINGER_MAX_BYTES) closeNow();
    });
    socket.end();
    req.resume();
  };
}

/**
 * The `Request` for a `node:http` request. Its body is read from the connection only as it is pulled, so an
 * unread body costs no memory; cancelling it stops reading without closing the connection, so the reply
 * can still be sent.
 */
function toRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const method = req.method ?? "GET";
  const url = new URL(req.url ?? "/", `http://${headers.get("host") ?? "localhost"}`);
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    signal,
    ...(hasBody ? { body: bodyStream(req), duplex: "half" } : {}),
  } as RequestInit);
}

function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  // The listeners of the pull under way: a cancel (the app stopped reading, e.g. a body timeout)
  // removes them, so that bytes arriving later (the lingering close reads and discards them) never
  // reach a stream that is closed.
  let stopPulling: (() => void) | undefined;
  return new ReadableStream<Uint8Array>({
    pull: (controller) =>
      new Promise<void>((resolve) => {
        const done = () => {
          req.off("readable", tryRead);
          req.off("end", tryRead);
          req.off("error", failed);
          req.off("close", tryRead);
          stopPulling = undefined;
          resolve();
        };
        const failed = (e: Error) => {
          controller.error(e);
          done();
        };
        function tryRead(): void {
          const chunk = req.read() as Uint8Array | null;
          if (chunk !== null) {
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            done();
          } else if (req.readableEnded) {
            controller.close();
            done();
          } else if (req.destroyed) {
            failed(new Error("The connection closed before the request body was complete"));
          }
        }
        stopPulling = done;
        req.on("readable", tryRead);
        req.on("end", tryRead);
        req.on("error", failed);
        req.on("close", tryRead);
        tryRead();
      }),
    cancel: () => {
      stopPulling?.();
      req.pause();
    },
  }, { highWaterMark: 0 });
}

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
): Promise<void> {
  let service: RunnableService;
  try {
    service = await build();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    log.error("startup_failed", { message: e.message });
    Deno.exit(1);
  }
  const server = await listen(service.fetch, service);
  log.info("listening", { hostname: service.hostname, port: server.port });
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
