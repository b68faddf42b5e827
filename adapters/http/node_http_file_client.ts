/**
 * The HTTP-file client on `node:http`/`node:https`: the host is resolved here, every address checked
 * (`domain/network_address.ts`), and the connection made to the checked address through the request's
 * `lookup`, so a second resolution (DNS rebinding) cannot send it elsewhere. TLS still verifies the
 * certificate against the URL's host name. No redirect is followed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { mkdir, open, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { dirname } from "node:path";
import { isNonPublicAddress } from "../../domain/network_address.ts";
import {
  HttpAddressNotAllowedError,
  type HttpFileClient,
  type HttpFileRequest,
  type HttpFileResponse,
  HttpFileTooLargeError,
  HttpFileTruncatedError,
  HttpFileUnreachableError,
  type SavedBody,
} from "../../ports/http_file_client.ts";

/** Options of {@link NodeHttpFileClient}. */
export interface NodeHttpFileClientOptions {
  /** CA certificates (PEM) trusted instead of the system's: tests, or a closed network's own CA. */
  readonly ca?: string | undefined;
}

/** The {@link HttpFileClient} of the publish service. */
export class NodeHttpFileClient implements HttpFileClient {
  readonly #ca: string | undefined;

  /** @param options see {@link NodeHttpFileClientOptions}. */
  constructor(options: NodeHttpFileClientOptions = {}) {
    this.#ca = options.ca;
  }

  /** {@inheritDoc HttpFileClient.get} */
  async get(request: HttpFileRequest): Promise<HttpFileResponse> {
    const url = new URL(request.url);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    let addresses: { address: string; family: number }[];
    if (isIP(host) !== 0) addresses = [{ address: host, family: isIP(host) }];
    else {
      try {
        addresses = await lookup(host, { all: true });
      } catch (e) {
        throw new HttpFileUnreachableError(`Cannot resolve ${host}`, { cause: e });
      }
    }
    if (
      addresses.length === 0 ||
      (!request.allowPrivate && addresses.some((a) => isNonPublicAddress(a.address)))
    ) {
      throw new HttpAddressNotAllowedError(host);
    }
    const chosen = addresses[0]!;
    const pinned: LookupFunction = (_name, options, callback) => {
      if ((options as { all?: boolean }).all === true) {
        (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [chosen]);
      } else callback(null, chosen.address, chosen.family);
    };
    const module = url.protocol === "https:" ? https : http;
    request.signal.throwIfAborted();
    return await new Promise<HttpFileResponse>((resolve, reject) => {
      const req = module.request(url, {
        method: "GET",
        headers: { ...request.headers, "accept-encoding": "identity" },
        lookup: pinned,
        // A connection per request: no kept-alive socket is reused past its own checked address, and
        // an abort stops the wait for headers (on a reused socket it does not here).
        agent: false,
        ...(this.#ca === undefined || url.protocol !== "https:" ? {} : { ca: this.#ca }),
      });
      // Destroyed on abort by hand: the `signal` option does not stop a wait for the headers here.
      const aborted = () => req.destroy(new Error("aborted"));
      request.signal.addEventListener("abort", aborted, { once: true });
      req.on("response", (res) => {
        request.signal.removeEventListener("abort", aborted);
        resolve(new NodeResponse(res, request.signal));
      });
      req.on("error", (e) => {
        request.signal.removeEventListener("abort", aborted);
        reject(
          new HttpFileUnreachableError(
            request.signal.aborted
              ? `Cannot fetch from ${url.host}: no answer in time`
              : `Cannot fetch from ${url.host}: ${e.message}`,
            { cause: e },
          ),
        );
      });
      req.end();
    });
  }
}

class NodeResponse implements HttpFileResponse {
  readonly status: number;
  readonly #res: http.IncomingMessage;
  readonly #signal: AbortSignal;

  constructor(res: http.IncomingMessage, signal: AbortSignal) {
    this.status = res.statusCode ?? 0;
    this.#res = res;
    this.#signal = signal;
  }

  header(name: string): string | null {
    const value = this.#res.headers[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }

  async text(maxBytes: number): Promise<string> {
    const chunks: Uint8Array[] = [];
    await this.#read(maxBytes, (chunk) => {
      chunks.push(chunk);
      return Promise.resolve();
    });
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return new TextDecoder().decode(all);
  }

  async save(path: string, maxBytes: number, onBytes: (bytes: number) => void): Promise<SavedBody> {
    await mkdir(dirname(path), { recursive: true });
    const file = await open(path, "wx", 0o600);
    const hash = createHash("sha512");
    try {
      const bytes = await this.#read(maxBytes, async (chunk, total) => {
        hash.update(chunk);
        await file.write(chunk);
        onBytes(total);
      });
      await file.sync();
      return { sha512: hash.digest("hex"), bytes };
    } catch (e) {
      await file.close().catch(() => {});
      await rm(path, { force: true });
      throw e;
    } finally {
      await file.close().catch(() => {});
    }
  }

  discard(): void {
    this.#res.destroy();
  }

  /** Reads the body, chunk by chunk, checking its size against the limit and its Content-Length. */
  async #read(
    maxBytes: number,
    onChunk: (chunk: Uint8Array, total: number) => Promise<void>,
  ): Promise<number> {
    const announced = this.header("content-length");
    const expected = announced !== null && /^\d{1,15}$/.test(announced)
      ? Number(announced)
      : undefined;
    if (expected !== undefined && expected > maxBytes) {
      this.discard();
      throw new HttpFileTooLargeError(maxBytes);
    }
    let total = 0;
    const aborted = () => this.#res.destroy(new Error("aborted"));
    this.#signal.addEventListener("abort", aborted, { once: true });
    try {
      for await (const chunk of this.#res) {
        const data = chunk as Uint8Array;
        total += data.length;
        if (total > maxBytes) throw new HttpFileTooLargeError(maxBytes);
        await onChunk(data, total);
      }
    } catch (e) {
      this.discard();
      if (e instanceof HttpFileTooLargeError) throw e;
      if (expected !== undefined && total < expected && !this.#signal.aborted) {
        throw new HttpFileTruncatedError(expected, total);
      }
      throw new HttpFileUnreachableError(
        this.#signal.aborted ? "The file did not arrive in time" : "The file's transfer broke off",
        { cause: e },
      );
    } finally {
      this.#signal.removeEventListener("abort", aborted);
    }
    if (this.#signal.aborted) throw new HttpFileUnreachableError("The file did not arrive in time");
    if (expected !== undefined && total !== expected) {
      throw new HttpFileTruncatedError(expected, total);
    }
    return total;
  }
}
