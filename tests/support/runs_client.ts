/**
 * A client of the runs API for end-to-end tests: JSON calls with a key, polling a run until a condition
 * holds, and a streaming Server-Sent Events reader that parses events as their bytes arrive.
 *
 * @module
 */
import { readServerSentEvents } from "../../tools/demo_progress.ts";

/** A run view as the API returns it (only what the tests read is typed). */
export interface RunView {
  readonly id: string;
  readonly state: string;
  readonly version: number;
  readonly project_name: string;
  readonly created_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly tables: readonly {
    readonly name: string;
    readonly state: string;
    readonly rows: number | null;
    readonly bytes: number;
    readonly started_at: string | null;
    readonly finished_at: string | null;
    readonly sha512: string | null;
    readonly expected_rows: { readonly value: number; readonly estimate: true } | null;
  }[];
  // deno-lint-ignore no-explicit-any
  readonly outcome: { readonly status: number; readonly body: any } | null;
}

/** A reply, parsed, with its headers. */
export interface ApiReply {
  readonly status: number;
  readonly headers: Headers;
  // deno-lint-ignore no-explicit-any
  readonly json: Record<string, any>;
}

/** Calls `url` with the key in `x-api-key` and reads the JSON reply. */
export async function callApi(
  url: string,
  key: string,
  init: {
    method?: string;
    body?: unknown;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<ApiReply> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: {
      "x-api-key": key,
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      ...init.headers,
    },
    body: init.body === undefined ? null : JSON.stringify(init.body),
    signal: init.signal ?? null,
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` every 50 ms until it returns something other than `undefined`; fails with `what` after
 * `timeoutMs`.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Reads `GET {base}/runs/{id}` until `accept` holds for the run; returns that run. */
export function pollRun(
  base: string,
  key: string,
  id: string,
  accept: (run: RunView) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<RunView> {
  return pollUntil(what, async () => {
    const reply = await callApi(`${base}/runs/${id}`, key);
    if (reply.status !== 200) throw new Error(`GET /runs/${id}: ${JSON.stringify(reply.json)}`);
    const run = reply.json.payload as RunView;
    return accept(run) ? run : undefined;
  }, timeoutMs);
}

/** One Server-Sent Event (`id` is `undefined` when the stream gave none). */
export interface ServerSentEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/**
 * Opens `url` as an event stream and yields each event as soon as its blank line arrived (the stream is
 * parsed incrementally by the demo's reader, `readServerSentEvents`, not read to its end first).
 * Comments (`: keep-alive`) are skipped.
 */
export async function* readEvents(
  url: string,
  key: string,
  headers: Record<string, string> = {},
): AsyncGenerator<ServerSentEvent> {
  const res = await fetch(url, { headers: { "x-api-key": key, ...headers } });
  if (res.status !== 200 || res.body === null) {
    throw new Error(`event stream ${url}: ${res.status} ${await res.text()}`);
  }
  const type = res.headers.get("content-type") ?? "";
  if (!type.startsWith("text/event-stream")) throw new Error(`not an event stream: ${type}`);
  for await (const { id, event, data } of readServerSentEvents(res.body)) {
    yield { id: id ?? undefined, event, data };
  }
}
