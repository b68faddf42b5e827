/**
 * The demo's progress lines: a small streaming parser of Server-Sent Events (`GET /runs/{id}/events`)
 * and the printer that turns each run version into at most one line per table per second, plus one line
 * when a table is done. On a terminal a table's running line is rewritten in place (carriage return);
 * anywhere else every line ends with a newline, so a log or a pipe stays readable.
 *
 * @module
 */
import { estimateProgress, type RunView, type TableProgress } from "../domain/run.ts";

/** One Server-Sent Event: its `id`, `event` name (default `message`) and `data` (lines joined by `\n`). */
export interface ServerSentEvent {
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

/**
 * Reads Server-Sent Events from a byte stream as they arrive (the WHATWG event-stream format: fields
 * `id`, `event`, `data`; comment lines starting with `:` ignored; an empty line ends an event; CR, LF
 * or CRLF line ends). An event cut off by the end of the stream is dropped, as the format says.
 */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  let buffer = "";
  let id: string | null = null;
  let event = "";
  let data: string[] = [];
  for await (const text of body.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    for (;;) {
      const end = buffer.search(/\r\n|\r|\n/);
      // A lone CR at the end may be the first half of a CRLF: wait for the next chunk.
      if (end === -1 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) {
          yield { id, event: event === "" ? "message" : event, data: data.join("\n") };
        }
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id") id = value;
    }
  }
}

/** `1,234` */
function thousands(n: number): string {
  return n.toLocaleString("en");
}

/** Bytes in B, KB or MB (powers of 1000, as `ls --si`). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${Math.round(bytes / 1000)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** Milliseconds as `4 s` or `2 min 5 s`. */
function formatEta(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/**
 * One table's line, e.g. `packaging clinical.patients: 300 rows (~300 expected), 54 KB, done` or
 * `packaging clinical.lab_results: 450 of ~900 rows (50 %, about 2 s left), 30 KB`. Rows are left out
 * while none are counted (the CSV fast path counts bytes only); the expected rows, percentage and ETA
 * only where the source estimated the table's rows (marked `~`: an estimate from its statistics).
 */
export function progressLine(schema: string, table: TableProgress, nowMs: number): string {
  const parts: string[] = [];
  const expected = table.expected_rows;
  const counted = table.rows > 0 || (table.state === "done" && table.bytes === 0);
  const rowsWord = (n: number) => `${thousands(n)} row${n === 1 ? "" : "s"}`;
  if (counted && table.state === "running" && expected !== null) {
    const startedMs = table.started_at === null ? nowMs : Date.parse(table.started_at);
    const estimate = estimateProgress(expected, table.rows, nowMs - startedMs)!;
    parts.push(
      `${thousands(table.rows)} of ~${rowsWord(expected.value)} (${Math.floor(estimate.percent)} %${
        estimate.eta_ms === null ? "" : `, about ${formatEta(estimate.eta_ms)} left`
      })`,
    );
  } else if (counted) {
    parts.push(
      rowsWord(table.rows) + (expected === null ? "" : ` (~${thousands(expected.value)} expected)`),
    );
  } else if (expected !== null) {
    parts.push(`~${rowsWord(expected.value)} expected`);
  }
  parts.push(formatBytes(table.bytes));
  if (table.state === "done") parts.push("done");
  if (table.state === "failed") parts.push("FAILED");
  return `packaging ${schema}.${table.name}: ${parts.join(", ")}`;
}

/** Where the printer writes: text as given (it adds its own newlines and carriage returns). */
export type TextSink = (text: string) => void;

/**
 * Turns the versions of one run into progress lines: for each table at most one running line per
 * `intervalMs` (default 1 s) and exactly one line when it is done or failed. With `terminal`, a running
 * line is rewritten in place until the next line replaces it.
 */
export class ProgressPrinter {
  readonly #write: TextSink;
  readonly #indent: string;
  readonly #terminal: boolean;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #lastShownMs = new Map<string, number>();
  readonly #finished = new Set<string>();
  /** A running line is on the screen without its newline (terminal only). */
  #open = false;

  constructor(
    write: TextSink,
    options: {
      readonly indent?: string;
      readonly terminal?: boolean;
      readonly intervalMs?: number;
      readonly now?: () => number;
    } = {},
  ) {
    this.#write = write;
    this.#indent = options.indent ?? "";
    this.#terminal = options.terminal ?? false;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /** Shows what changed in this version of the run. */
  show(run: RunView): void {
    const now = this.#now();
    for (const table of run.tables) {
      if (this.#finished.has(table.name)) continue;
      const line = this.#indent + progressLine(run.dataset.schema_name, table, now);
      if (table.state === "done" || table.state === "failed") {
        this.#finished.add(table.name);
        this.#line(line, true);
      } else if (table.state === "running") {
        const last = this.#lastShownMs.get(table.name);
        if (last !== undefined && now - last < this.#intervalMs) continue;
        this.#lastShownMs.set(table.name, now);
        this.#line(line, false);
      }
    }
  }

  /** Ends a running line left open on a terminal. */
  end(): void {
    if (this.#open) this.#write("\n");
    this.#open = false;
  }

  #line(line: string, final: boolean): void {
    if (!this.#terminal) {
      this.#write(line + "\n");
      return;
    }
    // Replace the open running line, if any; leave a final line on the screen.
    this.#write(`${this.#open ? "\r\x1b[2K" : ""}${line}${final ? "\n" : ""}`);
    this.#open = !final;
  }
}
