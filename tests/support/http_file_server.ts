/**
 * A local HTTP file server for the HTTP-file source tests (issue 18): serves files with ETag and
 * Last-Modified (answering conditional requests with 304), a JSON and an HTML index of them, and per
 * path misbehaviour: 500s, a slow answer, a body that stalls half way, a body cut short of its Content-Length, a redirect to another
 * host or to the same host. It counts every request, so a test can assert that a run fetched nothing.
 * Built on `node:http` rather than `Deno.serve`, which cannot send a body shorter than its
 * Content-Length.
 *
 * @module
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** How a path misbehaves. */
export type Misbehaviour =
  | { readonly kind: "status"; readonly status: number }
  | { readonly kind: "slow"; readonly delayMs: number }
  | { readonly kind: "stall"; readonly sendBytes: number; readonly delayMs: number }
  | { readonly kind: "truncate"; readonly sendBytes: number }
  | { readonly kind: "redirect"; readonly location: string };

/** One file the server holds. */
interface ServedFile {
  body: Uint8Array;
  type: string;
  etag: string;
  lastModified: string;
}

/** One request the server answered. */
export interface ServedRequest {
  readonly path: string;
  readonly status: number;
  readonly conditional: boolean;
}

/** The server; close it with `await using` or {@link HttpFileServer.close}. */
export class HttpFileServer implements AsyncDisposable {
  readonly files = new Map<string, ServedFile>();
  readonly misbehaviours = new Map<string, Misbehaviour>();
  readonly requests: ServedRequest[] = [];
  readonly #server: http.Server;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #version = 0;

  private constructor(server: http.Server) {
    this.#server = server;
  }

  /** Starts a server on 127.0.0.1, on a free port. */
  static async start(): Promise<HttpFileServer> {
    const server = http.createServer();
    const files = new HttpFileServer(server);
    server.on("request", (req, res) => files.#answer(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return files;
  }

  /** `http://127.0.0.1:{port}`. */
  get origin(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The port, for the allow-list entry. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Puts (or changes) a file at `path` (`/data/a.csv`): a new ETag and Last-Modified. */
  put(path: string, text: string | Uint8Array, type = "text/csv"): void {
    const body = typeof text === "string" ? new TextEncoder().encode(text) : text;
    this.#version++;
    this.files.set(path, {
      body,
      type,
      etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}-${this.#version}"`,
      lastModified: new Date(Date.UTC(2026, 0, 1, 0, 0, this.#version)).toUTCString(),
    });
  }

  /** The requests made for `path` so far that got its body (status 200). */
  bodiesServed(path?: string): number {
    return this.requests.filter((r) => r.status === 200 && (path === undefined || r.path === path))
      .length;
  }

  /** Stops the server and its pending slow answers. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = new URL(req.url ?? "/", this.origin).pathname;
    const conditional = req.headers["if-none-match"] !== undefined ||
      req.headers["if-modified-since"] !== undefined;
    const log = (status: number) => this.requests.push({ path, status, conditional });
    const bad = this.misbehaviours.get(path);
    if (bad?.kind === "status") {
      log(bad.status);
      res.writeHead(bad.status, { "content-type": "text/plain" }).end("no");
      return;
    }
    if (bad?.kind === "redirect") {
      log(302);
      res.writeHead(302, { location: bad.location }).end();
      return;
    }
    if (path === "/index.json" || path === "/index.html") {
      const names = [...this.files.keys()];
      const body = path === "/index.json"
        ? JSON.stringify({ files: names.map((n) => ({ url: n })) })
        : `<html><body>${names.map((n) => `<a href="${n}">${n}</a>`).join("\n")}</body></html>`;
      log(200);
      res.writeHead(200, {
        "content-type": path === "/index.json" ? "application/json" : "text/html",
      }).end(body);
      return;
    }
    const file = this.files.get(path);
    if (file === undefined) {
      log(404);
      res.writeHead(404).end();
      return;
    }
    if (
      req.headers["if-none-match"] === file.etag ||
      (req.headers["if-none-match"] === undefined &&
        req.headers["if-modified-since"] === file.lastModified)
    ) {
      log(304);
      res.writeHead(304, { etag: file.etag }).end();
      return;
    }
    const headers = {
      "content-type": file.type,
      "content-length": String(file.body.length),
      etag: file.etag,
      "last-modified": file.lastModified,
    };
    if (bad?.kind === "truncate") {
      log(200);
      res.writeHead(200, headers);
      res.write(file.body.subarray(0, bad.sendBytes), () => res.socket?.destroy());
      return;
    }
    if (bad?.kind === "stall") {
      log(200);
      res.writeHead(200, headers);
      res.write(file.body.subarray(0, bad.sendBytes));
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        res.end(file.body.subarray(bad.sendBytes));
      }, bad.delayMs);
      this.#timers.add(timer);
      return;
    }
    if (bad?.kind === "slow") {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        log(200);
        res.writeHead(200, headers).end(file.body);
      }, bad.delayMs);
      this.#timers.add(timer);
      return;
    }
    log(200);
    res.writeHead(200, headers).end(file.body);
  }
}
