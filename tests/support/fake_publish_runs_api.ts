/**
 * A test double of the publish service's HTTP runs API (the shape in `docs/runs.md`), listening on a real
 * port, for testing the gateway's forwarding. It keeps runs in memory, checks `x-api-key`, records every
 * request it gets, and lets a test drive each event stream by hand (send an event, end it, see it closed).
 * It is not the publish service: it checks no body and runs no work.
 *
 * @module
 */

/** One request the double received. */
export interface ReceivedRequest {
  readonly method: string;
  /** Path and query string, as received. */
  readonly target: string;
  readonly headers: Headers;
  readonly body: string;
}

/** An open `GET /runs/{id}/events` stream, driven by the test. */
export interface FakeEventStream {
  readonly runId: string;
  /** The `Last-Event-ID` the request carried, or null. */
  readonly lastEventId: string | null;
  /** Sends one `event: run` with `id: <version>` and the run as data. */
  send(run: Record<string, unknown>): void;
  /** Sends a `: keep-alive` comment. */
  keepAlive(): void;
  /** Ends the stream as the publish service does after a final state. */
  end(): void;
  /** Resolves when the stream was closed from the reading side (the gateway hung up). */
  readonly closedByReader: Promise<void>;
}

const encoder = new TextEncoder();

/** A run view as the publish service shows one, with overrides. */
export function aRunView(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "0b6f1c2e-6d1a-4b8e-9c39-2f4f7f5f0a01",
    action: "package",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    dataset: { source_host: "db.internal", schema_name: "oncology", tables: ["tumour_stage"] },
    destination: { type: "filestore", name: "LSC", format: "csv" },
    state: "queued",
    tables: [],
    outcome: null,
    caller_key_id: "k-1",
    created_at: "2025-06-11T10:00:00.000Z",
    updated_at: "2025-06-11T10:00:00.000Z",
    started_at: null,
    finished_at: null,
    version: 1,
    ...overrides,
  };
}

/** The publish runs API double; `await using` it to stop it. */
export class FakePublishRunsApi implements AsyncDisposable {
  readonly received: ReceivedRequest[] = [];
  readonly runs = new Map<string, Record<string, unknown>>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #streamWaiters: ((stream: FakeEventStream) => void)[] = [];
  readonly #streams: FakeEventStream[] = [];
  readonly #ends = new Set<() => void>();

  /** Starts listening on a free local port; requests must carry `apiKey`. */
  constructor(readonly apiKey: string) {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
    const run = aRunView();
    this.runs.set(run.id as string, run);
  }

  /** The base URL the gateway is given, ending in `/`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/`;
  }

  /** The next event stream a client opens (or the one already open and not yet taken). */
  nextStream(): Promise<FakeEventStream> {
    const open = this.#streams.shift();
    if (open !== undefined) return Promise.resolve(open);
    return new Promise((resolve) => this.#streamWaiters.push(resolve));
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    this.received.push({
      method: request.method,
      target: url.pathname + url.search,
      headers: request.headers,
      body: await request.text(),
    });
    if (request.headers.get("x-api-key") !== this.apiKey) {
      return envelope(403, { detail: "Could not validate API key", code: "forbidden" });
    }
    const path = url.pathname;
    if (request.method === "POST" && /^\/data-publish\/(package|publish)$/.test(path)) {
      return this.#startRun(request, path.endsWith("package") ? "package" : "publish");
    }
    if (request.method === "GET" && path === "/runs") return this.#list(url);
    const match = /^\/runs\/([^/]+)(\/events|\/cancel|\/resume)?$/.exec(path);
    const run = match === null ? undefined : this.runs.get(decodeURIComponent(match[1]!));
    if (match === null) return envelope(404, { detail: "Not Found", code: "not_found" });
    if (run === undefined) {
      return envelope(404, { detail: `Cannot find run "${match[1]}"`, code: "run_not_found" });
    }
    const action = `${request.method} ${match[2] ?? ""}`;
    if (action === "GET ") return success(200, run);
    if (action === "GET /events") return this.#events(request, run.id as string);
    if (action === "POST /cancel") return this.#move(run, "cancelled", ["queued", "running"], 200);
    if (action === "POST /resume") return this.#move(run, "queued", ["interrupted"], 202);
    return envelope(405, { detail: "Method Not Allowed", code: "method_not_allowed" });
  }

  #startRun(request: Request, action: string): Response {
    const prefer = request.headers.get("prefer") ?? "";
    if (!/\brespond-async\b/.test(prefer)) {
      return success(200, action === "package" ? { data_retrieved: [] } : { data_published: [] });
    }
    const run = aRunView({ id: crypto.randomUUID(), action });
    this.runs.set(run.id as string, run);
    return success(202, run, {
      location: `/runs/${run.id}`,
      "preference-applied": "respond-async",
    });
  }

  #list(url: URL): Response {
    const limit = Number(url.searchParams.get("limit") ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return envelope(400, { detail: "limit must be 1 to 1000", code: "invalid_request" });
    }
    const project = url.searchParams.get("project");
    const runs = [...this.runs.values()].filter((r) =>
      project === null || r.project_name === project
    );
    const next = new URLSearchParams(url.searchParams);
    next.set("cursor", "c2");
    return success(200, { runs: runs.slice(0, limit), next: `/runs?${next}` });
  }

  #move(run: Record<string, unknown>, to: string, from: string[], status: 200 | 202): Response {
    if (run.state === to && to === "cancelled") return success(200, run);
    if (!from.includes(run.state as string)) {
      return envelope(409, {
        detail: `Cannot move a run that is ${run.state} to ${to}`,
        code: "invalid_run_transition",
      });
    }
    run.state = to;
    run.version = (run.version as number) + 1;
    return success(status, run, status === 202 ? { location: `/runs/${run.id}` } : {});
  }

  #events(request: Request, runId: string): Response {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let readerClosed!: () => void;
    const closedByReader = new Promise<void>((resolve) => readerClosed = resolve);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        readerClosed();
      },
    });
    const ends = this.#ends;
    function endOnce(): void {
      if (!ends.delete(endOnce)) return;
      try {
        controller.close();
      } catch {
        // Already cancelled by the reader.
      }
    }
    ends.add(endOnce);
    closedByReader.then(() => ends.delete(endOnce));
    const stream: FakeEventStream = {
      runId,
      lastEventId: request.headers.get("last-event-id"),
      send(run) {
        const text = `id: ${run.version}\nevent: run\ndata: ${JSON.stringify(run)}\n\n`;
        controller.enqueue(encoder.encode(text));
      },
      keepAlive() {
        controller.enqueue(encoder.encode(": keep-alive\n\n"));
      },
      end: endOnce,
      closedByReader,
    };
    const waiter = this.#streamWaiters.shift();
    if (waiter === undefined) this.#streams.push(stream);
    else waiter(stream);
    return new Response(body, {
      status: 200,
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  }

  /** Ends every stream still open, then stops listening. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const end of [...this.#ends]) end();
    await this.#server.shutdown();
  }
}

function success(status: number, payload: unknown, headers: Record<string, string> = {}): Response {
  return Response.json({ status: "success", payload }, { status, headers });
}

function envelope(status: number, payload: { detail: string; code: string }): Response {
  return Response.json({ status: "error", payload: { ...payload, request_id: "fake" } }, {
    status,
  });
}
