/**
 * Structured JSON-line logs. One line per event; never request bodies, row data or secrets.
 *
 * @module
 */

/** Fields attached to a log line. Values must be safe to log. */
export type LogFields = Record<
  string,
  string | number | boolean | null | undefined | readonly string[]
>;

/** Writes structured log lines. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** Where finished lines go. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();

/** Writes each line to standard output. */
export function stdoutSink(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Creates a logger that tags every line with the service name. */
export function createLogger(service: string, sink: LogSink = stdoutSink): Logger {
  function write(level: string, event: string, fields: LogFields = {}): void {
    try {
      sink(JSON.stringify({ time: new Date().toISOString(), level, service, event, ...fields }));
    } catch {
      // A closed or full log stream must never fail the request being logged.
    }
  }
  return {
    info: (event, fields) => write("info", event, fields),
    warn: (event, fields) => write("warn", event, fields),
    error: (event, fields) => write("error", event, fields),
  };
}

/** A logger that keeps its lines in memory, for tests. */
export function memoryLogger(service = "test"): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger(service, (line) => lines.push(line)), { lines });
}
